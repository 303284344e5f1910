package duckdb

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/storetest"
)

func openStats(t testing.TB) storetest.StatsStore {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "peba.duckdb"), Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStatsContract(t *testing.T) {
	storetest.RunStats(t, openStats)
}

// TestStatsEdgeValues checks the DuckDB-specific choices documented on
// Sensors and Top: an empty hostname groups by target address, and -0
// coordinates share the key "0,0" with +0.
func TestStatsEdgeValues(t *testing.T) {
	ctx := context.Background()
	s := openStats(t)
	a, b := sampleEvent(1, ""), sampleEvent(2, "")
	a.Hostname, b.Hostname = "", "undefined"
	a.Src.Lat, a.Src.Lon = math.Copysign(0, -1), 0
	b.Src.Lat, b.Src.Lon = 0, math.Copysign(0, -1)
	if _, err := s.AppendEvents(ctx, []peba.Event{a, b}); err != nil {
		t.Fatal(err)
	}
	w := peba.Window{Domains: []peba.Domain{peba.DomainCommunity}}
	groups, err := s.Sensors(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	want := []peba.SensorGroup{{TargetIP: "172.29.0.2", PeerIdent: []string{"cowrie-01"}, PeerType: []string{"SSH/console(cowrie)"}, Count: 2}}
	if !reflect.DeepEqual(groups, want) {
		t.Errorf("Sensors = %+v, want %+v", groups, want)
	}
	top, err := s.Top(ctx, w, peba.DimSrcLocation, 0)
	if err != nil {
		t.Fatal(err)
	}
	if wantTop := []peba.Bucket{{Key: "0,0", Count: 2}}; !reflect.DeepEqual(top, wantTop) {
		t.Errorf("Top(DimSrcLocation) = %+v, want %+v", top, wantTop)
	}
	pts, err := s.Series(ctx, w, time.Hour, peba.DimSrcLocation, []string{"0,0"})
	if err != nil {
		t.Fatal(err)
	}
	wantPts := []peba.Point{{Start: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC), Key: "0,0", Count: 2}}
	if !reflect.DeepEqual(pts, wantPts) {
		t.Errorf("Series(DimSrcLocation) = %+v, want %+v", pts, wantPts)
	}
	for _, dim := range []peba.Dim{peba.DimNone, peba.Dim(200)} {
		if _, err := s.Top(ctx, w, dim, 0); peba.ErrorCode(err) != peba.EINVALID {
			t.Errorf("Top(dim %d) error = %v, want EINVALID", dim, err)
		}
	}
	if _, err := s.Count(ctx, peba.Window{Domains: w.Domains, Field: 9}); peba.ErrorCode(err) != peba.EINVALID {
		t.Errorf("Count(field 9) error = %v, want EINVALID", err)
	}
}

// BenchmarkStats appends 200k synthetic events over 30 days (one store for
// all sub-benchmarks) and times each Stats method on a month-wide window.
func BenchmarkStats(b *testing.B) {
	ctx := context.Background()
	s := openStats(b)
	const n, batch = 200_000, 5000
	start := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	step := 30 * 24 * time.Hour / n
	countries := []peba.Geo{
		{Country: "CN", CountryName: "China", Lat: 34.77, Lon: 113.72},
		{Country: "US", CountryName: "United States", Lat: 37.751, Lon: -97.822},
		{Country: "DE", CountryName: "Germany", Lat: 51.2993, Lon: 9.491},
		peba.UnknownGeo,
	}
	types := []string{"SSH/console(cowrie)", "Webpage", "Network(Dionaea)", "Passwords(heralding)"}
	for i := 0; i < n; i += batch {
		evs := make([]peba.Event, batch)
		for j := range evs {
			k := i + j
			e := sampleEvent(k, "")
			e.ReceivedTime = start.Add(time.Duration(k) * step)
			e.CreateTime = e.ReceivedTime.Add(-time.Second)
			e.Domain = peba.Domain(1 + k%5/4) // 80% community
			e.PeerType = types[k%len(types)]
			e.Hostname = fmt.Sprintf("h%d", k%50)
			e.DstPort = int32(k % 100)
			e.URL = fmt.Sprintf("/p%d", k%300)
			e.Src = countries[k%len(countries)]
			evs[j] = e
		}
		if _, err := s.AppendEvents(ctx, evs); err != nil {
			b.Fatal(err)
		}
	}
	w := peba.Window{Domains: []peba.Domain{peba.DomainCommunity}, From: start, To: start.Add(30 * 24 * time.Hour)}
	for _, c := range []struct {
		name string
		fn   func() error
	}{
		{"Count", func() error { _, err := s.Count(ctx, w); return err }},
		{"TopSrcIP", func() error { _, err := s.Top(ctx, w, peba.DimSrcIP, 10); return err }},
		{"TopSrcCountry", func() error { _, err := s.Top(ctx, w, peba.DimSrcCountry, 10); return err }},
		{"TopSrcLocation", func() error { _, err := s.Top(ctx, w, peba.DimSrcLocation, 10); return err }},
		{"TopDstPort", func() error { _, err := s.Top(ctx, w, peba.DimDstPort, 10); return err }},
		{"Series24h", func() error { _, err := s.Series(ctx, w, 24*time.Hour, peba.DimNone, nil); return err }},
		{"Series1hURL", func() error {
			_, err := s.Series(ctx, w, time.Hour, peba.DimURL, []string{"/p1", "/p2", "/p3"})
			return err
		}},
		{"Latest35", func() error { _, err := s.Latest(ctx, w, netip.Addr{}, 35); return err }},
		{"Sensors", func() error { _, err := s.Sensors(ctx, w); return err }},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if err := c.fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestRecentCache checks Latest's cache of the newest events (recent.go)
// against the events table: while batches arrive out of order, with
// received-time ties, events older than the cache covers, attributes and
// payloads (not stored), and after retention.
func TestRecentCache(t *testing.T) {
	defer func(n, m, c int, d time.Duration) {
		recentMax, recentTimesMax, srcCompactMin, recentSpan = n, m, c, d
	}(recentMax, recentTimesMax, srcCompactMin, recentSpan)
	recentMax, recentTimesMax, srcCompactMin = 40, 300, 4 // trimmed and compacted often
	recentSpan = 100 * 365 * 24 * time.Hour               // the test's times are in 2024
	ctx := context.Background()
	s := openStats(t).(*Store)
	r := rand.New(rand.NewPCG(5, 6))
	base := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	var times []time.Time                // received times of the stored events
	counted := 0                         // Counts answered from the times
	sourced := 0                         // Tops by source answered from the times
	bySource := map[peba.TimeField]int{} // Latest of a source answered from the cache
	// Sources of the events: some repeat, some are not IPv4 (interned,
	// compacted often) or not global, some have no address.
	srcPool := []netip.Addr{{}, netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("10.0.0.1"),
		netip.MustParseAddr("::ffff:203.0.113.9"), netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("203.0.113.10")}
	check := func(when string) {
		t.Helper()
		for range 25 {
			w := storetest.RandomWindow(r, rollupDay)
			w.Field = peba.Received
			w.From, w.To = time.Time{}, time.Time{}
			switch r.IntN(3) {
			case 0:
				w.From = base.Add(time.Duration(r.IntN(100)) * time.Minute)
			case 1:
				// An instant that events share, such as the cache's edge.
				if len(times) > 0 {
					w.From = times[r.IntN(len(times))]
				}
			}
			if r.IntN(4) == 0 {
				w.To = base.Add(time.Duration(50+r.IntN(100)) * time.Minute)
			}
			limit := []int{1, 5, 35, 39, 40, 100}[r.IntN(6)]
			got, err := s.Latest(ctx, w, netip.Addr{}, limit)
			if err != nil {
				t.Fatal(err)
			}
			want, err := s.latestStored(ctx, w, limit)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: Latest(%+v, %d) from the cache =\n  %v\nfrom the table\n  %v", when, w, limit, ids(got), ids(want))
			}
			w.PeerType = ""
			n, err := s.Count(ctx, w)
			if err != nil {
				t.Fatal(err)
			}
			wantN, err := s.count(ctx, w, false)
			if err != nil {
				t.Fatal(err)
			}
			if n != wantN {
				t.Fatalf("%s: Count(%+v) = %d from the times, %d from the table", when, w, n, wantN)
			}
			if _, ok := s.countRecent(w); ok {
				counted++
			}
			// Sources, by address, from the times (recent_sources.go).
			top, err := s.Top(ctx, w, peba.DimSrcIP, limit)
			if err != nil {
				t.Fatal(err)
			}
			wantTop, err := s.top(ctx, w, peba.DimSrcIP, limit, false)
			if err != nil {
				t.Fatal(err)
			}
			if (len(top) > 0 || len(wantTop) > 0) && !reflect.DeepEqual(top, wantTop) {
				t.Fatalf("%s: Top(%+v, src ip, %d) from the times =\n  %v\nfrom the table\n  %v", when, w, limit, top, wantTop)
			}
			q := peba.SourceQuery{MinCount: int64(r.IntN(3)), GlobalOnly: r.IntN(2) == 0, Limit: []int{0, 1, 3, 100}[r.IntN(4)]}
			srcs, err := s.Sources(ctx, w, q)
			if err != nil {
				t.Fatal(err)
			}
			wantSrcs, err := s.sourcesStored(ctx, w, q)
			if err != nil {
				t.Fatal(err)
			}
			if (len(srcs) > 0 || len(wantSrcs) > 0) && !reflect.DeepEqual(srcs, wantSrcs) {
				t.Fatalf("%s: Sources(%+v, %+v) from the times =\n  %v\nfrom the table\n  %v", when, w, q, srcs, wantSrcs)
			}
			if _, ok := s.topSourcesRecent(w, limit); ok {
				sourced++
			}
			// Latest of one source, by either time field (create times are
			// not in the order of the received ones).
			for _, f := range []peba.TimeField{peba.Received, peba.Created} {
				sw, src := w, srcPool[1+r.IntN(len(srcPool)-1)]
				sw.Field = f
				got, err := s.Latest(ctx, sw, src, limit)
				if err != nil {
					t.Fatal(err)
				}
				want, err := s.latest(ctx, sw, src, limit, false)
				if err != nil {
					t.Fatal(err)
				}
				if (len(got) > 0 || len(want) > 0) && !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: Latest(%+v, %s, %d) =\n  %v\nfrom the table\n  %v", when, sw, src, limit, ids(got), ids(want))
				}
				if _, ok, err := s.latestRecentSource(ctx, sw, src, limit); err != nil {
					t.Fatal(err)
				} else if ok {
					bySource[f]++
				}
			}
		}
	}
	check("empty store")
	n := 0
	var hits int
	for batch := range 25 {
		evs := make([]peba.Event, 1+r.IntN(30))
		for i := range evs {
			e := sampleEvent(n, "")
			n++
			// Mostly new minutes, some far older, many on the same instant.
			e.ReceivedTime = base.Add(time.Duration(batch*4+r.IntN(6))*time.Minute + time.Duration(r.IntN(3))*time.Nanosecond)
			if r.IntN(8) == 0 {
				e.ReceivedTime = base.Add(time.Duration(r.IntN(batch*4+1)) * time.Minute)
			}
			e.Domain = peba.Domain(1 + r.IntN(2))
			e.PeerType = []string{"Webpage", "SSH/console(cowrie)"}[r.IntN(2)]
			switch r.IntN(4) {
			case 0:
				e.SrcIP = srcPool[r.IntN(len(srcPool))]
			case 1:
				e.SrcIP = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(r.IntN(200))})
			}
			if r.IntN(2) == 0 {
				e.Fields, e.Requests = []peba.Attr{}, []peba.Attr{{Key: "raw", Value: "x"}}
			}
			e.Payload = &peba.Payload{MD5: "m"}
			evs[i] = e
			times = append(times, e.ReceivedTime)
		}
		if _, err := s.AppendEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		if batch == 12 {
			s.forgetRecent() // loaded again from a full table
		}
		check(fmt.Sprintf("after batch %d", batch))
		if _, ok := s.latestRecent(peba.Window{Domains: []peba.Domain{peba.DomainCommunity}, Field: peba.Received}, 5); ok {
			hits++
		}
	}
	if counted < 100 {
		t.Errorf("the times answered %d Counts; want most of those with a start", counted)
	}
	if bySource[peba.Received] < 50 || bySource[peba.Created] < 20 {
		t.Errorf("the cache answered %v Latest of a source; want more", bySource)
	}
	if sourced < 100 {
		t.Errorf("the times answered %d Tops by source; want most of those with a start", sourced)
	}
	if hits < 15 {
		t.Errorf("the cache answered %d of 25 newest-5 queries; want most", hits)
	}
	if _, err := s.DeleteEventsBefore(ctx, base.Add(100*time.Minute)); err != nil {
		t.Fatal(err)
	}
	check("after retention")
	// A retention that deletes nothing the caches hold keeps them.
	if _, err := s.DeleteEventsBefore(ctx, base.Add(100*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if !s.recent.valid || !s.times.valid {
		t.Errorf("a retention of nothing they hold emptied the cache (%v) or the times (%v)", !s.recent.valid, !s.times.valid)
	}
	check("after a second retention")
}

// forgetRecent empties the cache of the newest events and the times, so
// that the next use loads them from the tables.
func (s *Store) forgetRecent() {
	s.forgetTimes()
	s.recent.mu.Lock()
	s.recent.valid, s.recent.events = false, nil
	s.recent.mu.Unlock()
}

func ids(evs []peba.Event) []string {
	out := make([]string, len(evs))
	for i := range evs {
		out[i] = evs[i].ID[len(evs[i].ID)-4:] + "@" + evs[i].ReceivedTime.Format("15:04:05.000000000")
	}
	return out
}

// TestRecentCacheEdge loads the cache when the newest recentMax events end
// inside a group of events received at the same instant: those of the
// group that were loaded must not count as covered, or a window starting
// at that instant would miss the others.
func TestRecentCacheEdge(t *testing.T) {
	defer func(n int) { recentMax = n }(recentMax)
	recentMax = 12
	ctx := context.Background()
	s := openStats(t).(*Store)
	tie := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	var evs []peba.Event
	for i := range 15 {
		e := sampleEvent(i, "")
		e.ReceivedTime = tie.Add(time.Duration(i) * time.Second) // 5..14 are newer
		if i < 5 {
			e.ReceivedTime = tie // 0..4 tie; 0 and 1 are loaded
		}
		evs = append(evs, e)
	}
	evs[4].Domain = peba.DomainPrivate // the one private event, cut off by the load
	if _, err := s.AppendEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	w := peba.Window{Domains: []peba.Domain{peba.DomainPrivate}, Field: peba.Received, From: tie}
	got, err := s.Latest(ctx, w, netip.Addr{}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != evs[4].ID {
		t.Errorf("Latest(private, from the tie) = %v, want [%s]", ids(got), evs[4].ID)
	}
	if _, ok := s.latestRecent(peba.Window{Domains: []peba.Domain{peba.DomainCommunity}, Field: peba.Received}, 5); !ok {
		t.Error("the cache was not loaded")
	}
}
