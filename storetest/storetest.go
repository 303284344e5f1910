// Package storetest is the contract suite that every peba.Store
// implementation must pass. It tests behaviour through the interface only, so
// the embedded and the PostgreSQL store run the same checks.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/peba-go/peba"
)

// Run runs the contract suite. open must return a new, empty store for each
// call and arrange (with t.Cleanup) for it to be closed.
//
// Beyond the peba.Store doc comments, the suite pins down these contracts:
//   - times come back in UTC, truncated to microseconds;
//   - empty []Attr slices come back nil; Event.Payload is not stored;
//   - an event with an invalid Domain or with a string that is not valid
//     UTF-8 fails the whole call with code peba.EINVALID;
//   - FindPayload's FuzzyCount is the number of stored events whose payload
//     has the same (known) fuzzy hash but another md5;
//   - DeleteUser returns ErrNotFound for a missing user;
//   - FindEvents orders equal receive times by ID (byte order); EventFilter
//     After continues strictly after a key in that order (keyset paging,
//     each event exactly once), NoTotal gives a total of -1, and Sensor
//     matches the hostname, the sensor UUID or the peer ident.
func Run(t *testing.T, open func(t testing.TB) peba.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, peba.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"Idempotent", testIdempotent},
		{"DuplicateIDsInCall", testDuplicateIDsInCall},
		{"AllOrNothing", testAllOrNothing},
		{"Payloads", testPayloads},
		{"PayloadMetadata", testPayloadMetadata},
		{"Filters", testFilters},
		{"ExportOrder", testExportOrder},
		{"CursorPaging", testCursorPaging},
		{"Retention", testRetention},
		{"Users", testUsers},
		{"ConcurrentAppends", testConcurrentAppends},
		{"Ping", func(t *testing.T, s peba.Store) {
			if err := s.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

// base is a fixed instant with a microsecond part, so truncation bugs show.
var base = time.Date(2024, 3, 10, 12, 0, 0, 123456000, time.UTC)

// event returns an event with every field set, received at base+recv.
func event(id string, recv time.Duration) peba.Event {
	return peba.Event{
		ID:             id,
		Domain:         peba.DomainCommunity,
		Submitter:      "community-01",
		Origin:         "ews",
		ReceivedTime:   base.Add(recv),
		CreateTime:     base.Add(recv - time.Second),
		PeerIdent:      "cowrie-" + id,
		PeerType:       "SSH/console(cowrie)",
		SensorUUID:     "6a5c3f0e-1111-2222-3333-444455556666",
		Hostname:       "sensor-" + id,
		ExternalIP:     "5.4.4.4",
		InternalIP:     "10.1.1.1",
		SrcIP:          netip.MustParseAddr("192.0.2.7"),
		SrcPort:        43288,
		DstIP:          netip.MustParseAddr("2001:db8::1"),
		DstPort:        22,
		Transport:      "tcp",
		URL:            "/cgi-bin/x?a=1&b=<2>",
		VulnID:         "CVE-2017-999",
		Username:       "root",
		Password:       "p\"ä's\\w\x01rd",
		Login:          "Fail",
		ClientVersion:  "SSH-2.0-libssh-0.6.0",
		SessionStart:   "2024-03-10 11:59:59",
		SessionEnd:     "2024-03-10 12:00:01",
		RawHTTP:        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		PayloadMD5:     "",
		AdditionalData: []peba.Attr{{Key: "protocol", Value: "ssh"}, {Key: "payload_md5", Value: ""}},
		Fields: []peba.Attr{
			{Key: "hostname", Value: "a"}, {Key: "input", Value: "ls"}, {Key: "input", Value: "ls"},
			{Key: "input", Value: "uname -a"}, {Key: "", Value: "日本語"},
		},
		Requests: []peba.Attr{{Key: "description", Value: "Telnet login"}},
		Src:      peba.Geo{Country: "DE", CountryName: "Germany", ASN: "AS3320 Deutsche Telekom AG", Lat: 51.2993, Lon: 9.491},
		Dst:      peba.Geo{Country: "PIR", CountryName: "IANA Private IP Range", ASN: "IANA", Lat: -33.8688197, Lon: 151.2092955},
	}
}

// stored returns e as the store must give it back.
func stored(e peba.Event) peba.Event {
	e.ReceivedTime = e.ReceivedTime.UTC().Truncate(time.Microsecond)
	e.CreateTime = e.CreateTime.UTC().Truncate(time.Microsecond)
	e.Payload = nil
	for _, as := range []*[]peba.Attr{&e.AdditionalData, &e.Fields, &e.Requests} {
		if len(*as) == 0 {
			*as = nil
		}
	}
	return e
}

func mustAppend(t *testing.T, s peba.Store, evs ...peba.Event) peba.AppendResult {
	t.Helper()
	res, err := s.AppendEvents(context.Background(), evs)
	if err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	return res
}

func mustFind(t *testing.T, s peba.Store, f peba.EventFilter) ([]peba.Event, int64) {
	t.Helper()
	evs, total, err := s.FindEvents(context.Background(), f)
	if err != nil {
		t.Fatalf("FindEvents(%+v): %v", f, err)
	}
	return evs, total
}

func exportAll(t *testing.T, s peba.Store) []peba.Event {
	t.Helper()
	var out []peba.Event
	if err := s.ExportEvents(context.Background(), func(e *peba.Event) error {
		out = append(out, *e)
		return nil
	}); err != nil {
		t.Fatalf("ExportEvents: %v", err)
	}
	return out
}

func ids(evs []peba.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func equalIDs(t *testing.T, what string, got []peba.Event, want ...string) {
	t.Helper()
	if g := ids(got); !reflect.DeepEqual(g, want) && !(len(g) == 0 && len(want) == 0) {
		t.Errorf("%s: ids = %q, want %q", what, g, want)
	}
}

func testRoundTrip(t *testing.T, s peba.Store) {
	a := event("a", 0)
	b := event("b", time.Second)
	b.Domain = peba.DomainPrivate
	b.Submitter = "alice"
	b.SrcIP = netip.MustParseAddr("2a02:8108::dead:beef")
	b.DstIP = netip.MustParseAddr("172.29.0.2")
	b.SrcPort, b.DstPort = peba.NoPort, 0
	b.AdditionalData, b.Fields = nil, []peba.Attr{}
	b.Src, b.Dst = peba.UnknownGeo, peba.Geo{Country: "US", Lat: 37.751, Lon: -97.822}
	b.Payload = &peba.Payload{MD5: "x", Data: []byte{0xff}}
	b.PayloadMD5 = "x"
	c := event("c", 2*time.Second)
	c.SrcIP, c.DstIP = netip.Addr{}, netip.Addr{}
	c.SrcPort, c.DstPort = 65535, peba.NoPort
	// A non-UTC zone and sub-microsecond digits: stored as UTC microseconds.
	c.ReceivedTime = time.Date(2024, 3, 10, 14, 0, 2, 123456789, time.FixedZone("CEST", 2*3600))
	c.CreateTime = time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("X", -5*3600-1800))
	c.URL, c.RawHTTP = "", ""

	res := mustAppend(t, s, a, b, c)
	if res.Duplicates != 0 || len(res.Inserted) != 3 {
		t.Fatalf("result = %d inserted, %d duplicates; want 3, 0", len(res.Inserted), res.Duplicates)
	}
	for i, want := range []peba.Event{a, b, c} {
		if res.Inserted[i].ID != want.ID {
			t.Errorf("Inserted[%d].ID = %q, want %q (input order)", i, res.Inserted[i].ID, want.ID)
		}
	}

	want := map[string]peba.Event{"a": stored(a), "b": stored(b), "c": stored(c)}
	check := func(how string, got peba.Event) {
		t.Helper()
		w := want[got.ID]
		if !reflect.DeepEqual(got, w) {
			t.Errorf("%s %s:\n got %+v\nwant %+v", how, got.ID, got, w)
		}
		if got.ReceivedTime.Location() != time.UTC || got.CreateTime.Location() != time.UTC {
			t.Errorf("%s %s: times not in UTC", how, got.ID)
		}
	}
	for id := range want {
		evs, total := mustFind(t, s, peba.EventFilter{ID: id})
		if total != 1 || len(evs) != 1 {
			t.Fatalf("FindEvents(ID=%s) = %d events, total %d; want 1, 1", id, len(evs), total)
		}
		check("FindEvents", evs[0])
	}
	exported := exportAll(t, s)
	if len(exported) != 3 {
		t.Fatalf("ExportEvents gave %d events, want 3", len(exported))
	}
	for _, e := range exported {
		check("ExportEvents", e)
	}
}

func testIdempotent(t *testing.T, s peba.Store) {
	batch := []peba.Event{event("a", 0), event("b", time.Second), event("c", 2*time.Second)}
	mustAppend(t, s, batch...)
	res := mustAppend(t, s, batch...)
	if len(res.Inserted) != 0 || res.Duplicates != 3 {
		t.Errorf("second append: %d inserted, %d duplicates; want 0, 3", len(res.Inserted), res.Duplicates)
	}
	// A resent batch mixed with new events inserts only the new ones, in input order.
	res = mustAppend(t, s, event("d", 3*time.Second), batch[1], event("e", 4*time.Second), batch[0])
	equalIDs(t, "mixed append Inserted", res.Inserted, "d", "e")
	if res.Duplicates != 2 {
		t.Errorf("mixed append: %d duplicates, want 2", res.Duplicates)
	}
	if _, total := mustFind(t, s, peba.EventFilter{}); total != 5 {
		t.Errorf("total = %d, want 5", total)
	}
}

func testDuplicateIDsInCall(t *testing.T, s peba.Store) {
	a1 := event("a", 0)
	a2 := event("a", 0)
	a2.Username = "second"
	res := mustAppend(t, s, a1, event("b", time.Second), a2, a1)
	equalIDs(t, "Inserted", res.Inserted, "a", "b")
	if res.Duplicates != 2 {
		t.Errorf("duplicates = %d, want 2", res.Duplicates)
	}
	evs, total := mustFind(t, s, peba.EventFilter{ID: "a"})
	if total != 1 || len(evs) != 1 || evs[0].Username != a1.Username {
		t.Errorf("stored a: total %d, %+v; want the first occurrence only", total, evs)
	}
}

func testAllOrNothing(t *testing.T, s peba.Store) {
	ctx := context.Background()
	withPayload := func(id string) peba.Event {
		e := event(id, 0)
		e.PayloadMD5 = "00000000000000000000000000000001"
		return e
	}
	badDomain := event("bad", 0)
	badDomain.Domain = 0
	badUTF8 := event("bad", 0)
	badUTF8.Fields = []peba.Attr{{Key: "input", Value: "\xff\xfe"}}
	badUTF8b := event("bad", 0)
	badUTF8b.URL = "/\xc3("
	for name, bad := range map[string]peba.Event{"domain": badDomain, "attr utf8": badUTF8, "url utf8": badUTF8b} {
		_, err := s.AppendEvents(ctx, []peba.Event{withPayload("x"), bad, withPayload("y")})
		if code := peba.ErrorCode(err); code != peba.EINVALID {
			t.Errorf("invalid %s: error %v (code %q), want code %q", name, err, code, peba.EINVALID)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.AppendEvents(cctx, []peba.Event{withPayload("x"), withPayload("y")}); err == nil {
		t.Errorf("append with cancelled context succeeded")
	}
	if evs, total := mustFind(t, s, peba.EventFilter{}); total != 0 || len(evs) != 0 {
		t.Errorf("failed appends left %d events: %q", total, ids(evs))
	}
	if _, err := s.FindPayload(ctx, "00000000000000000000000000000001"); !errors.Is(err, peba.ErrNotFound) && peba.ErrorCode(err) != peba.ENOTFOUND {
		t.Errorf("failed appends left a payload record (FindPayload err %v)", err)
	}
	// The store is still usable afterwards.
	res := mustAppend(t, s, withPayload("x"), withPayload("y"))
	equalIDs(t, "append after failures", res.Inserted, "x", "y")
}

func testPayloads(t *testing.T, s peba.Store) {
	ctx := context.Background()
	const md5A, md5B, md5C = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "cccccccccccccccccccccccccccccccc"
	const fuzzyAB, fuzzyC = "fuzzy-ab", "fuzzy-c"
	mk := func(id, md5, fuzzy string, create time.Duration, srcIP string, dport int32) peba.Event {
		e := event(id, create)
		e.CreateTime = base.Add(create)
		e.PayloadMD5 = md5
		e.SrcIP = netip.MustParseAddr(srcIP)
		e.DstPort = dport
		e.Payload = &peba.Payload{MD5: md5, FuzzyHash: fuzzy, MIME: "text/plain", Size: 42, Data: []byte("GET /")}
		return e
	}
	// The first event of A is neither the earliest nor the latest.
	batch1 := []peba.Event{
		mk("a1", md5A, fuzzyAB, time.Hour, "198.51.100.1", 81),
		mk("a2", md5A, fuzzyAB, 0, "198.51.100.2", 82),
		mk("b1", md5B, fuzzyAB, time.Minute, "198.51.100.3", peba.NoPort),
		mk("c1", md5C, fuzzyC, time.Minute, "198.51.100.4", 80),
	}
	mustAppend(t, s, batch1...)
	// Second call: one more A, later than all; one B; and duplicates that must not count.
	mustAppend(t, s, mk("a3", md5A, fuzzyAB, 2*time.Hour, "198.51.100.5", 83), mk("b2", md5B, fuzzyAB, -time.Hour, "198.51.100.6", 84), batch1[0], batch1[2])
	mustAppend(t, s, batch1...)

	pa, err := s.FindPayload(ctx, md5A)
	if err != nil {
		t.Fatal(err)
	}
	wantA := peba.Payload{MD5: md5A, FuzzyHash: fuzzyAB, MIME: "text/plain", Size: 42,
		FirstSeen: base, LastSeen: base.Add(2 * time.Hour), MD5Count: 3, FuzzyCount: 2,
		InitialIP: "198.51.100.1", InitialDestPort: 81}
	if !reflect.DeepEqual(*pa, wantA) {
		t.Errorf("payload A:\n got %+v\nwant %+v", *pa, wantA)
	}
	pb, err := s.FindPayload(ctx, md5B)
	if err != nil {
		t.Fatal(err)
	}
	if pb.MD5Count != 2 || pb.FuzzyCount != 3 || !pb.FirstSeen.Equal(base.Add(-time.Hour)) ||
		!pb.LastSeen.Equal(base.Add(time.Minute)) || pb.InitialDestPort != peba.NoPort || pb.Data != nil {
		t.Errorf("payload B = %+v; want md5 count 2, fuzzy count 3, first -1h, last +1m, no port, no data", *pb)
	}
	pc, err := s.FindPayload(ctx, md5C)
	if err != nil {
		t.Fatal(err)
	}
	if pc.MD5Count != 1 || pc.FuzzyCount != 0 {
		t.Errorf("payload C counts = %d, %d; want 1, 0", pc.MD5Count, pc.FuzzyCount)
	}
	if _, err := s.FindPayload(ctx, "dddddddddddddddddddddddddddddddd"); peba.ErrorCode(err) != peba.ENOTFOUND {
		t.Errorf("FindPayload(unknown) error = %v, want code %q", err, peba.ENOTFOUND)
	}
}

func testPayloadMetadata(t *testing.T, s peba.Store) {
	ctx := context.Background()
	const md5 = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
	// Known only by md5 first (e.g. the sensor reported the md5 without bytes).
	e1 := event("m1", 0)
	e1.PayloadMD5 = md5
	mustAppend(t, s, e1)
	p, err := s.FindPayload(ctx, md5)
	if err != nil {
		t.Fatal(err)
	}
	if p.MD5Count != 1 || p.FuzzyCount != 0 || p.FuzzyHash != "" {
		t.Errorf("md5-only payload = %+v", *p)
	}
	e2 := event("m2", time.Second)
	e2.PayloadMD5 = md5
	e2.Payload = &peba.Payload{MD5: md5, FuzzyHash: "f", MIME: "application/octet-stream", Size: 7}
	mustAppend(t, s, e2)
	if p, err = s.FindPayload(ctx, md5); err != nil {
		t.Fatal(err)
	}
	if p.MD5Count != 2 || p.FuzzyHash != "f" || p.MIME != "application/octet-stream" || p.Size != 7 {
		t.Errorf("payload after metadata arrived = %+v; want count 2 and the metadata", *p)
	}
}

func testFilters(t *testing.T, s peba.Store) {
	var evs []peba.Event
	for i := range 10 {
		e := event(fmt.Sprintf("e%d", i), time.Duration(i)*time.Minute)
		if i%2 == 1 {
			e.Domain = peba.DomainPrivate
		}
		if i < 3 {
			e.SrcIP = netip.MustParseAddr("203.0.113.9")
			e.PeerIdent = "glutton-01"
			e.PeerType = "Network(glutton)"
		}
		evs = append(evs, e)
	}
	// Insert in two calls, out of time order.
	mustAppend(t, s, evs[5:]...)
	mustAppend(t, s, evs[:5]...)
	m := func(d int) time.Time { return base.Add(time.Duration(d) * time.Minute) }
	cases := []struct {
		name  string
		f     peba.EventFilter
		want  []string
		total int64
	}{
		{"all newest first", peba.EventFilter{}, []string{"e9", "e8", "e7", "e6", "e5", "e4", "e3", "e2", "e1", "e0"}, 10},
		{"community", peba.EventFilter{Domains: []peba.Domain{peba.DomainCommunity}}, []string{"e8", "e6", "e4", "e2", "e0"}, 5},
		{"private", peba.EventFilter{Domains: []peba.Domain{peba.DomainPrivate}}, []string{"e9", "e7", "e5", "e3", "e1"}, 5},
		{"both domains", peba.EventFilter{Domains: []peba.Domain{peba.DomainPrivate, peba.DomainCommunity}, Limit: 2}, []string{"e9", "e8"}, 10},
		{"id", peba.EventFilter{ID: "e4"}, []string{"e4"}, 1},
		{"missing id", peba.EventFilter{ID: "nope"}, nil, 0},
		{"src ip", peba.EventFilter{SrcIP: "203.0.113.9"}, []string{"e2", "e1", "e0"}, 3},
		{"peer ident", peba.EventFilter{PeerIdent: "glutton-01", Domains: []peba.Domain{peba.DomainCommunity}}, []string{"e2", "e0"}, 2},
		{"peer type", peba.EventFilter{PeerType: "Network(glutton)"}, []string{"e2", "e1", "e0"}, 3},
		{"since until", peba.EventFilter{Since: m(3), Until: m(6)}, []string{"e5", "e4", "e3"}, 3},
		{"limit offset", peba.EventFilter{Limit: 3, Offset: 2}, []string{"e7", "e6", "e5"}, 10},
		{"offset past end", peba.EventFilter{Offset: 20}, nil, 10},
		{"sensor by hostname", peba.EventFilter{Sensor: "sensor-e4"}, []string{"e4"}, 1},
		{"sensor by peer ident", peba.EventFilter{Sensor: "glutton-01"}, []string{"e2", "e1", "e0"}, 3},
		{"sensor by uuid", peba.EventFilter{Sensor: "6a5c3f0e-1111-2222-3333-444455556666", Limit: 1}, []string{"e9"}, 10},
		{"sensor unknown", peba.EventFilter{Sensor: "nope"}, nil, 0},
		// The total ignores the cursor, as it ignores Limit and Offset.
		{"after", peba.EventFilter{After: &peba.EventKey{ReceivedTime: m(6), ID: "e6"}, Limit: 2}, []string{"e5", "e4"}, 10},
		{"after with filter", peba.EventFilter{After: &peba.EventKey{ReceivedTime: m(2), ID: "e2"}, PeerType: "Network(glutton)"}, []string{"e1", "e0"}, 3},
		{"no total", peba.EventFilter{NoTotal: true, Limit: 1}, []string{"e9"}, -1},
	}
	for _, c := range cases {
		got, total := mustFind(t, s, c.f)
		equalIDs(t, c.name, got, c.want...)
		if total != c.total {
			t.Errorf("%s: total = %d, want %d", c.name, total, c.total)
		}
	}
}

// testCursorPaging pages with EventFilter.After through events with many
// ties on the receive time: every event comes exactly once, in FindEvents
// order (receive time descending, then ID ascending).
func testCursorPaging(t *testing.T, s peba.Store) {
	var evs []peba.Event
	for i := range 50 {
		// Groups of 7 events share a receive time; IDs are not in time order.
		e := event(fmt.Sprintf("k%02d", (i*37)%50), time.Duration(i/7)*time.Second)
		if i%5 == 0 {
			e.Domain = peba.DomainPrivate
		}
		evs = append(evs, e)
	}
	mustAppend(t, s, evs[20:]...)
	mustAppend(t, s, evs[:20]...)
	for _, f := range []peba.EventFilter{{}, {Domains: []peba.Domain{peba.DomainCommunity}}} {
		all, total := mustFind(t, s, f)
		for i := 1; i < len(all); i++ {
			a, b := all[i-1], all[i]
			if a.ReceivedTime.Before(b.ReceivedTime) || (a.ReceivedTime.Equal(b.ReceivedTime) && a.ID >= b.ID) {
				t.Fatalf("FindEvents order broken at %d: %s %v before %s %v", i, a.ID, a.ReceivedTime, b.ID, b.ReceivedTime)
			}
		}
		var paged []peba.Event
		page := f
		page.Limit, page.NoTotal = 4, true
		for n := 0; ; n++ {
			if n > len(all) {
				t.Fatal("paging does not end")
			}
			got, tot := mustFind(t, s, page)
			if tot != -1 {
				t.Errorf("NoTotal: total = %d, want -1", tot)
			}
			paged = append(paged, got...)
			if len(got) < page.Limit {
				break
			}
			last := got[len(got)-1]
			page.After = &peba.EventKey{ReceivedTime: last.ReceivedTime, ID: last.ID}
		}
		if int64(len(paged)) != total || !reflect.DeepEqual(ids(paged), ids(all)) {
			t.Errorf("domains %v: paged ids\n  %q\nwant (%d)\n  %q", f.Domains, ids(paged), total, ids(all))
		}
	}
}

func testExportOrder(t *testing.T, s peba.Store) {
	// Enough events for any reasonable export page size, with ties on the
	// receive time, appended in several out-of-order calls.
	const n = 12000
	var evs []peba.Event
	for i := range n {
		evs = append(evs, event(fmt.Sprintf("x%05d", i), time.Duration(i/3)*time.Millisecond))
	}
	mustAppend(t, s, evs[8000:]...)
	mustAppend(t, s, evs[:4000]...)
	mustAppend(t, s, evs[4000:8000]...)
	got := exportAll(t, s)
	if len(got) != n {
		t.Fatalf("exported %d events, want %d", len(got), n)
	}
	seen := map[string]bool{}
	for i, e := range got {
		if seen[e.ID] {
			t.Fatalf("event %s exported twice", e.ID)
		}
		seen[e.ID] = true
		if i > 0 && e.ReceivedTime.Before(got[i-1].ReceivedTime) {
			t.Fatalf("export not in receive-time order at %d: %v after %v", i, e.ReceivedTime, got[i-1].ReceivedTime)
		}
	}
	// fn's error stops the export and is returned.
	stop := errors.New("stop")
	calls := 0
	err := s.ExportEvents(context.Background(), func(*peba.Event) error {
		calls++
		if calls == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 10 {
		t.Errorf("ExportEvents with failing fn: err %v after %d calls; want %v after 10", err, calls, stop)
	}
}

func testRetention(t *testing.T, s peba.Store) {
	ctx := context.Background()
	var evs []peba.Event
	for i := range 6 {
		e := event(fmt.Sprintf("r%d", i), time.Duration(i)*time.Hour)
		e.PayloadMD5 = "ffffffffffffffffffffffffffffffff"
		evs = append(evs, e)
	}
	mustAppend(t, s, evs...)
	n, err := s.DeleteEventsBefore(ctx, base.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("deleted %d, want 2", n)
	}
	got, _ := mustFind(t, s, peba.EventFilter{})
	equalIDs(t, "after retention", got, "r5", "r4", "r3", "r2")
	if n, err = s.DeleteEventsBefore(ctx, base.Add(2*time.Hour)); err != nil || n != 0 {
		t.Errorf("second delete = %d, %v; want 0, nil", n, err)
	}
	if p, err := s.FindPayload(ctx, "ffffffffffffffffffffffffffffffff"); err != nil || p.MD5Count != 6 {
		t.Errorf("payload after retention = %+v, %v; want it kept with count 6", p, err)
	}
	// Deleted IDs may be appended again (they are no longer stored).
	res := mustAppend(t, s, evs[0])
	equalIDs(t, "re-append deleted", res.Inserted, "r0")
}

func testUsers(t *testing.T, s peba.Store) {
	ctx := context.Background()
	created := time.Date(2023, 1, 2, 3, 4, 5, 678901000, time.UTC)
	bob := peba.User{Name: "bob", TokenHash: "$argon2id$v=19$m=65536,t=1,p=2$c2FsdA$aGFzaA", Email: "bob@example.org", GetOnly: true, Created: created}
	alice := peba.User{Name: "alice", TokenHash: "5f4dcc3b5aa765d61d8327deb882cf99", CommunityOnly: true, Created: created.Add(time.Hour)}
	for _, u := range []peba.User{bob, alice} {
		if err := s.CreateUser(ctx, &u); err != nil {
			t.Fatalf("CreateUser(%s): %v", u.Name, err)
		}
	}
	dup := bob
	dup.Email = "other@example.org"
	if err := s.CreateUser(ctx, &dup); peba.ErrorCode(err) != peba.ECONFLICT {
		t.Errorf("CreateUser(existing) error = %v, want code %q", err, peba.ECONFLICT)
	}
	got, err := s.FindUser(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, bob) {
		t.Errorf("FindUser(bob) = %+v, want %+v", *got, bob)
	}
	if _, err := s.FindUser(ctx, "carol"); peba.ErrorCode(err) != peba.ENOTFOUND {
		t.Errorf("FindUser(missing) error = %v, want code %q", err, peba.ENOTFOUND)
	}
	list, err := s.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(list, []peba.User{alice, bob}) {
		t.Errorf("ListUsers = %+v, want alice, bob", list)
	}
	upd := bob
	upd.TokenHash, upd.Email, upd.GetOnly, upd.CommunityOnly = "new", "b@example.org", false, true
	if err := s.UpdateUser(ctx, &upd); err != nil {
		t.Fatal(err)
	}
	if got, err = s.FindUser(ctx, "bob"); err != nil || !reflect.DeepEqual(*got, upd) {
		t.Errorf("after update FindUser = %+v, %v; want %+v", got, err, upd)
	}
	missing := peba.User{Name: "carol"}
	if err := s.UpdateUser(ctx, &missing); peba.ErrorCode(err) != peba.ENOTFOUND {
		t.Errorf("UpdateUser(missing) error = %v, want code %q", err, peba.ENOTFOUND)
	}
	if err := s.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FindUser(ctx, "bob"); peba.ErrorCode(err) != peba.ENOTFOUND {
		t.Errorf("FindUser(deleted) error = %v, want code %q", err, peba.ENOTFOUND)
	}
	if err := s.DeleteUser(ctx, "bob"); peba.ErrorCode(err) != peba.ENOTFOUND {
		t.Errorf("DeleteUser(missing) error = %v, want code %q", err, peba.ENOTFOUND)
	}
	if list, _ = s.ListUsers(ctx); len(list) != 1 || list[0].Name != "alice" {
		t.Errorf("ListUsers after delete = %+v, want alice", list)
	}
}

func testConcurrentAppends(t *testing.T, s peba.Store) {
	// 8 writers, overlapping batches: each of the 200 IDs is inserted exactly once.
	const writers, ids = 8, 200
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		inserted int
		seen     = map[string]int{}
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for start := w * 10; start < ids; start += 50 {
				var batch []peba.Event
				for i := start; i < min(start+60, ids); i++ {
					batch = append(batch, event(fmt.Sprintf("c%03d", i), time.Duration(i)*time.Second))
				}
				res, err := s.AppendEvents(context.Background(), batch)
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				mu.Lock()
				inserted += len(res.Inserted)
				for _, e := range res.Inserted {
					seen[e.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if _, total := mustFind(t, s, peba.EventFilter{}); total != ids {
		t.Errorf("stored %d events, want %d", total, ids)
	}
	if inserted != ids || len(seen) != ids {
		t.Errorf("Inserted reported %d events (%d distinct), want %d", inserted, len(seen), ids)
	}
}
