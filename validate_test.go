package peba

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestValidateEventRejectsNonFiniteLocations(t *testing.T) {
	valid := func() Event {
		return Event{
			ID: "e1", Domain: DomainCommunity, ReceivedTime: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC),
			Src: Geo{Country: "CN", Lat: 34.77, Lon: 113.72}, Dst: Geo{Country: "DE", Lat: -0.0, Lon: 180},
		}
	}
	e := valid()
	if err := ValidateEvent(&e); err != nil {
		t.Fatalf("valid event: %v", err)
	}
	for _, c := range []struct {
		name string
		set  func(*Event)
		want string
	}{
		{"source lat NaN", func(e *Event) { e.Src.Lat = math.NaN() }, "source location"},
		{"source lon +Inf", func(e *Event) { e.Src.Lon = math.Inf(1) }, "source location"},
		{"target lat -Inf", func(e *Event) { e.Dst.Lat = math.Inf(-1) }, "target location"},
		{"target lon NaN", func(e *Event) { e.Dst.Lon = math.NaN() }, "target location"},
	} {
		e := valid()
		c.set(&e)
		err := ValidateEvent(&e)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one naming the %s", c.name, err, c.want)
		}
	}
}

// Ingest validates every event before acknowledging it, and the store
// again: a valid event, payload and attributes included, costs no
// allocation (it was 8% of everything ingest allocated).
func TestValidateEventDoesNotAllocate(t *testing.T) {
	e := Event{
		ID: "e1", Domain: DomainCommunity, ReceivedTime: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC),
		CreateTime: time.Date(2026, 11, 21, 11, 59, 0, 0, time.UTC), PeerIdent: "dionaea-01", URL: "/index.html",
		Src:            Geo{Country: "CN", Lat: 34.77, Lon: 113.72},
		AdditionalData: []Attr{{Key: "payload_md5", Value: "d41d8cd98f00b204e9800998ecf8427e"}},
		Requests:       []Attr{{Key: "description", Value: "Webpage"}},
		Payload:        &Payload{MD5: "d41d8cd98f00b204e9800998ecf8427e", MIME: "text/plain"},
	}
	if n := testing.AllocsPerRun(100, func() {
		if err := ValidateEvent(&e); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("ValidateEvent allocates %.0f times per event, want 0", n)
	}
}

// Attribute lists are bounded by their JSON length: the same number of
// bytes passes as plain text and fails where escapes make it too long.
func TestValidateEventBoundsAttributesAsJSON(t *testing.T) {
	for _, c := range []struct {
		name  string
		value string
		ok    bool
	}{
		{"short", "GET / HTTP/1.1", true},
		{"long plain", strings.Repeat("a", MaxFieldLen/2), true},
		{"long escaped", strings.Repeat("<", MaxFieldLen/2), false},
		{"just under as JSON", strings.Repeat("<", (MaxFieldLen-2-len(`{"k":"","v":""},`)-1)/6), true},
		{"too long plain", strings.Repeat("a", MaxFieldLen), false},
	} {
		e := Event{ID: "e1", Domain: DomainPrivate, Fields: []Attr{{Key: "k", Value: c.value}}}
		if err := ValidateEvent(&e); (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok %v", c.name, err, c.ok)
		}
	}
}
