package postgres

import (
	"encoding/json"
	"math"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/peba-go/peba"
)

// fullEvent returns an event with every field set to a non-zero value
// derived from seed, by reflection, so that a field added to peba.Event is
// set too; Payload stays nil (the feed does not carry it). A field of a
// type it does not know fails the test: the codec must learn it first.
func fullEvent(t *testing.T, seed int) peba.Event {
	t.Helper()
	var e peba.Event
	v := reflect.ValueOf(&e).Elem()
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		n := seed*100 + i
		switch x := f.Addr().Interface().(type) {
		case *string:
			*x = name + "\x00\x01é\xff" + string(rune('a'+n%26))
		case *peba.Domain:
			*x = peba.DomainPrivate
		case *time.Time:
			*x = time.Unix(int64(1_700_000_000+n), int64(123_456_789+n)).UTC()
		case *netip.Addr:
			*x = []netip.Addr{netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("::ffff:1.2.3.4"),
				netip.AddrFrom4([4]byte{203, 0, 113, byte(n)})}[n%3]
		case *int32:
			*x = int32(-5 - n)
		case *[]peba.Attr:
			*x = []peba.Attr{{Key: name, Value: "v\x00"}, {}}
		case *peba.Geo:
			*x = peba.Geo{Country: "C" + name, CountryName: "N", ASN: "AS1", Lat: -0.5 - float64(n), Lon: math.Inf(1)}
		case **peba.Payload:
		default:
			t.Fatalf("peba.Event.%s has a type (%s) that the live feed codec (feedcodec.go) does not encode", name, f.Type())
		}
	}
	return e
}

// TestFeedCodecCoversEvent: events with every field set, and with every
// field zero, decode to exactly what was encoded.
func TestFeedCodecCoversEvent(t *testing.T) {
	evs := []peba.Event{fullEvent(t, 1), {}, fullEvent(t, 2)}
	evs[2].Fields = []peba.Attr{} // empty, not nil
	evs[2].SrcPort, evs[2].DstPort = peba.NoPort, math.MaxInt32
	evs[2].CreateTime = time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC) // outside int64 nanoseconds
	in := append([]peba.Event(nil), evs...)
	in[0].Payload = &peba.Payload{MD5: "x", Data: []byte("not in the feed")}
	got, err := DecodeFeed(encodeFeed(in))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, evs) {
		t.Errorf("round trip:\n  %+v\nwant\n  %+v", got, evs)
	}
	// Non-finite coordinates are kept (the JSON encoding had to zero them).
	e := peba.Event{Src: peba.Geo{Lat: math.NaN(), Lon: math.Inf(-1)}}
	got, err = DecodeFeed(encodeFeed([]peba.Event{e}))
	if err != nil || len(got) != 1 || !math.IsNaN(got[0].Src.Lat) || !math.IsInf(got[0].Src.Lon, -1) {
		t.Errorf("non-finite coordinates: %+v, %v", got, err)
	}
	if got, err := DecodeFeed(encodeFeed(nil)); err != nil || len(got) != 0 {
		t.Errorf("no events: %v, %v", got, err)
	}
}

// TestFeedDecodeJSON: rows of the first encoding (a JSON array) decode.
func TestFeedDecodeJSON(t *testing.T) {
	e := sampleEvent(1, "")
	b, err := json.Marshal([]peba.Event{e})
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeFeed(b)
	if err != nil || len(got) != 1 || got[0].ID != e.ID || got[0].SrcIP != e.SrcIP || !got[0].ReceivedTime.Equal(e.ReceivedTime) {
		t.Errorf("JSON row: %+v, %v", got, err)
	}
}

// TestFeedDecodeCorrupt: every truncation and a few bad bytes give an
// error, never a panic or wrong events.
func TestFeedDecodeCorrupt(t *testing.T) {
	b := encodeFeed([]peba.Event{fullEvent(t, 1), fullEvent(t, 2)})
	for n := range len(b) {
		if evs, err := DecodeFeed(b[:n]); err == nil {
			t.Fatalf("truncated to %d of %d bytes: no error, %d events", n, len(b), len(evs))
		}
	}
	for _, bad := range [][]byte{nil, []byte("x"), {0, 2, 0}, append(append([]byte(nil), b...), 0)} {
		if _, err := DecodeFeed(bad); err == nil {
			t.Errorf("DecodeFeed(%q...) gave no error", bad[:min(len(bad), 8)])
		}
	}
}

// BenchmarkFeedDecode compares the JSON encoding with format 1 on
// 100-event rows of ewsposter-like events (go test -bench FeedDecode).
func BenchmarkFeedDecode(b *testing.B) {
	evs := make([]peba.Event, 100)
	for i := range evs {
		evs[i] = sampleEvent(i, "")
		evs[i].AdditionalData = []peba.Attr{{Key: "payload_md5", Value: "0123456789abcdef0123456789abcdef"}}
	}
	js, _ := json.Marshal(evs)
	bin := encodeFeed(evs)
	b.Run("json", func(b *testing.B) {
		b.SetBytes(int64(len(js)))
		for range b.N {
			if _, err := DecodeFeed(js); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("format1", func(b *testing.B) {
		b.SetBytes(int64(len(bin)))
		for range b.N {
			if _, err := DecodeFeed(bin); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode-json", func(b *testing.B) {
		for range b.N {
			json.Marshal(evs)
		}
	})
	b.Run("encode-format1", func(b *testing.B) {
		for range b.N {
			encodeFeed(evs)
		}
	})
}
