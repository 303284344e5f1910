package postgres

import (
	"context"
	"maps"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/peba-go/peba"
)

// recentEvents returns n events received in the 30 hours before now (a
// few in the last minutes), created up to 10 minutes before (some hours
// before, some after), with randomEvents' variety of keys.
func recentEvents(r *rand.Rand, n, first int, now time.Time) []peba.Event {
	evs := randomEvents(r, n, first)
	for i := range evs {
		e := &evs[i]
		e.ReceivedTime = now.Add(-time.Duration(r.Int64N(int64(30 * time.Hour))))
		if r.IntN(10) == 0 {
			e.ReceivedTime = now.Add(-time.Duration(r.Int64N(int64(5 * time.Minute))))
		}
		e.CreateTime = e.ReceivedTime.Add(-time.Duration(r.Int64N(int64(10 * time.Minute))))
		switch r.IntN(20) {
		case 0:
			e.CreateTime = e.ReceivedTime.Add(-7 * time.Hour)
		case 1:
			e.CreateTime = e.ReceivedTime.Add(3 * time.Minute)
		}
	}
	return evs
}

// memoWindows are the windows of the endpoints that memoTop serves, as
// pebaapi builds them at now: retrieveIPs (2 h, 15 min), LatLon (the last
// 24 h by create time, and a past day), tops of URLs (1 day, Webpage).
func memoWindows(now time.Time) []struct {
	w   peba.Window
	dim peba.Dim
} {
	all := []peba.Domain{peba.DomainCommunity, peba.DomainPrivate}
	comm := all[:1]
	day := now.UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	return []struct {
		w   peba.Window
		dim peba.Dim
	}{
		{peba.Window{Domains: all, Field: peba.Received, From: now.Add(-2 * time.Hour)}, peba.DimSrcIP},
		{peba.Window{Domains: comm, Field: peba.Received, From: now.Add(-15 * time.Minute)}, peba.DimSrcIP},
		{peba.Window{Domains: all, Field: peba.Created, From: now.Add(-24 * time.Hour), To: now}, peba.DimSrcLocation},
		{peba.Window{Domains: comm, Field: peba.Created, From: now.Add(-24 * time.Hour), To: now}, peba.DimDstLocation},
		{peba.Window{Domains: all, Field: peba.Created, From: day, To: day.Add(24 * time.Hour)}, peba.DimDstLocation},
		{peba.Window{Domains: all, Field: peba.Received, From: now.Add(-24 * time.Hour).Truncate(time.Second), PeerType: "Webpage"}, peba.DimURL},
		{peba.Window{Domains: all, Field: peba.Received, From: now.Add(-24 * time.Hour).Truncate(time.Second)}, peba.DimURL},
	}
}

// checkMemoWindows compares the answers of s (rollups and memo) on the
// endpoint windows at now with the raw answers, for several limits, and
// returns them.
func checkMemoWindows(t *testing.T, s *Store, now time.Time) [][]peba.Bucket {
	t.Helper()
	ctx := context.Background()
	var out [][]peba.Bucket
	for _, c := range memoWindows(now) {
		if _, ok := memoPlan(c.w, c.dim, time.Now()); !ok {
			t.Fatalf("memoPlan(%+v, %d) does not apply", c.w, c.dim)
		}
		for _, limit := range []int{0, 1, 3, 10} {
			got, err := s.top(ctx, c.w, c.dim, limit, true)
			if err != nil {
				t.Fatal(err)
			}
			want, err := s.top(ctx, c.w, c.dim, limit, false)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Top(%+v, dim %d, %d) =\n  %v through the memo\n  %v raw", c.w, c.dim, limit, got, want)
			}
			out = append(out, got)
		}
		if c.dim == peba.DimURL || c.dim == peba.DimSrcIP {
			all, err := s.top(ctx, c.w, c.dim, 0, false)
			if err != nil {
				t.Fatal(err)
			}
			keys := []string{"no such key"}
			for i, b := range all {
				if i%3 != 1 {
					keys = append(keys, b.Key)
				}
			}
			for _, width := range []time.Duration{time.Hour, 6 * time.Hour, 24 * time.Hour} {
				got, err := s.series(ctx, c.w, width, c.dim, keys, true)
				if err != nil {
					t.Fatal(err)
				}
				s.bg.Wait() // the hours memoSeries missed are in the memo
				want, err := s.series(ctx, c.w, width, c.dim, keys, false)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("Series(%+v, %s, dim %d) =\n  %v through the memo\n  %v raw", c.w, width, c.dim, got, want)
				}
			}
		}
	}
	return out
}

// TestMemoMatchesRaw: the endpoint windows give the raw answers, from the
// memo on the second pass, and again after late events (received hours
// ago, created a day ago) were appended into remembered ranges.
func TestMemoMatchesRaw(t *testing.T) {
	s, _ := openTemp(t)
	r := rand.New(rand.NewPCG(5, 6))
	now := time.Now()
	evs := recentEvents(r, 3000, 0, now)
	for i := 0; i < len(evs); i += 500 {
		mustAppend(t, s, evs[i:i+500]...)
	}
	checkMemoWindows(t, s, now)
	h0, _ := s.memo.Stats()
	checkMemoWindows(t, s, now)
	if h1, _ := s.memo.Stats(); h1 == h0 {
		t.Fatal("the second pass found nothing in the memo")
	}

	// Late events into every remembered range: received 90 minutes ago,
	// 20 hours ago, created 20 hours ago, in the minutes of the edges.
	late := recentEvents(r, 200, 10000, now)
	for i := range late {
		e := &late[i]
		switch i % 4 {
		case 0:
			e.ReceivedTime = now.Add(-90 * time.Minute)
		case 1:
			e.ReceivedTime = now.Add(-20 * time.Hour)
		case 2:
			e.CreateTime = now.Add(-20 * time.Hour)
		case 3:
			e.CreateTime = now.Add(-24*time.Hour + time.Duration(r.IntN(50))*time.Minute)
			e.ReceivedTime = now.Add(-24*time.Hour + time.Duration(r.IntN(50))*time.Minute)
		}
	}
	mustAppend(t, s, late...)
	checkMemoWindows(t, s, now)
}

// TestMemoTwoNodes: a node's memo follows another node's late appends and
// retention on the same database: both nodes answer alike, and as the raw
// events do.
func TestMemoTwoNodes(t *testing.T) {
	ctx := context.Background()
	a, dsn := openTemp(t)
	b, err := Open(ctx, dsn, Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r := rand.New(rand.NewPCG(7, 8))
	now := time.Now()
	mustAppend(t, a, recentEvents(r, 2000, 0, now)...)
	sensorsDay := peba.Window{Domains: []peba.Domain{peba.DomainCommunity}, Field: peba.Received,
		From: now.UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)}
	sensorsDay.To = sensorsDay.From.Add(24 * time.Hour)
	same := func() {
		t.Helper()
		got := checkMemoWindows(t, a, now)
		if other := checkMemoWindows(t, b, now); !reflect.DeepEqual(got, other) {
			t.Fatal("the nodes answer differently")
		}
		today := sensorsDay
		today.From, today.To = today.To, today.To.Add(24*time.Hour)
		twoDays := sensorsDay
		twoDays.To, twoDays.Domains = today.To, []peba.Domain{peba.DomainCommunity, peba.DomainPrivate}
		for _, w := range []peba.Window{sensorsDay, today, twoDays} {
			ga, err := a.Sensors(ctx, w)
			if err != nil {
				t.Fatal(err)
			}
			gb, err := b.Sensors(ctx, w)
			if err != nil {
				t.Fatal(err)
			}
			want, err := a.sensors(ctx, w, false)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ga, want) || !reflect.DeepEqual(gb, want) {
				t.Fatalf("Sensors(%+v):\n  %v node a\n  %v node b\n  %v raw", w, ga, gb, want)
			}
		}
	}
	same()
	same() // from the memos

	// Node b appends late events (its clock may be behind): one into each
	// remembered kind of range, including yesterday's sensors with a new
	// peer ident.
	late := recentEvents(r, 4, 20000, now)
	late[0].ReceivedTime = now.Add(-100 * time.Minute)
	late[1].CreateTime = now.Add(-23 * time.Hour)
	late[2].ReceivedTime = now.Add(-24*time.Hour + 7*time.Minute)
	late[3].ReceivedTime = sensorsDay.From.Add(5 * time.Hour)
	late[3].Domain, late[3].PeerIdent, late[3].Hostname = peba.DomainCommunity, "new-ident", "tpot-1"
	mustAppend(t, b, late...)
	same()

	// Counts change, sets do not: an event of a known group and ident.
	again := recentEvents(r, 1, 30000, now)
	again[0].ReceivedTime, again[0].Domain = late[3].ReceivedTime.Add(time.Second), peba.DomainCommunity
	again[0].Hostname, again[0].PeerIdent, again[0].PeerType = late[3].Hostname, late[3].PeerIdent, late[3].PeerType
	mustAppend(t, a, again...)
	same()

	// Retention by node b, inside the remembered ranges.
	if _, err := b.DeleteEventsBefore(ctx, now.Add(-23*time.Hour-17*time.Minute)); err != nil {
		t.Fatal(err)
	}
	same()
}

// TestMemoSlidingWindow moves the memo's clock through three hours in
// steps of 13 minutes, as the endpoints' windows slide (ranges are then
// built from the last one, hours added and removed), with late events
// appended on the way: every answer is the raw one.
func TestMemoSlidingWindow(t *testing.T) {
	s, _ := openTemp(t)
	r := rand.New(rand.NewPCG(9, 10))
	real := time.Now()
	mustAppend(t, s, recentEvents(r, 3000, 0, real)...)
	defer func() { memoNow = time.Now }()
	for i, now := 0, real.Add(-5*time.Hour); now.Before(real.Add(-2 * time.Hour)); i, now = i+1, now.Add(13*time.Minute) {
		memoNow = func() time.Time { return now }
		checkMemoWindows(t, s, now)
		if i%4 == 3 {
			late := recentEvents(r, 20, 40000+100*i, now)
			mustAppend(t, s, late...)
		}
	}
	if len(s.last) == 0 {
		t.Fatal("no range was remembered")
	}
}

// TestMemoOpenHour: the current hour of created-time windows is read from
// its bucket through the memo while no event is created at or after the
// window's end; an event created in it (received now) changes the
// answer at once.
func TestMemoOpenHour(t *testing.T) {
	s, _ := openTemp(t)
	r := rand.New(rand.NewPCG(11, 12))
	now := time.Now()
	evs := recentEvents(r, 1500, 0, now)
	for i := range evs {
		if !evs[i].CreateTime.Before(now) {
			evs[i].CreateTime = now.Add(-time.Second)
		}
	}
	mustAppend(t, s, evs...)
	all := []peba.Domain{peba.DomainCommunity, peba.DomainPrivate}
	check := func() {
		t.Helper()
		end := time.Now()
		for _, dim := range []peba.Dim{peba.DimSrcLocation, peba.DimDstLocation} {
			w := peba.Window{Domains: all, Field: peba.Created, From: end.Add(-24 * time.Hour), To: end}
			got, err := s.top(context.Background(), w, dim, 0, true)
			if err != nil {
				t.Fatal(err)
			}
			want, err := s.top(context.Background(), w, dim, 0, false)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Top(%+v, dim %d) =\n  %v through the memo\n  %v raw", w, dim, got, want)
			}
		}
	}
	check()
	check()
	late := recentEvents(r, 3, 50000, now)
	for i := range late {
		late[i].ReceivedTime = time.Now()
		late[i].CreateTime = time.Now().Add(-time.Duration(i+1) * time.Millisecond)
	}
	mustAppend(t, s, late...)
	check()
}

// TestAddWanted: both ways of picking the wanted keys of an entry (lookup
// of few keys, walk of a small entry) add the same counts.
func TestAddWanted(t *testing.T) {
	m := sliceMap{"a": 3, "b": 5, "c": 7, "d": 11}
	for _, tc := range []struct {
		want map[string]bool
		neg  bool
		exp  map[pk]int64
	}{
		{map[string]bool{"a": true, "x": true}, false, map[pk]int64{{1, "a"}: 3 + 1}},
		{map[string]bool{"b": true, "c": true, "d": true, "x": true, "y": true}, true, map[pk]int64{{1, "a"}: 1, {1, "b"}: -5, {1, "c"}: -7, {1, "d"}: -11}},
	} {
		counts := map[pk]int64{{1, "a"}: 1}
		addWanted(counts, m, tc.want, 1, tc.neg)
		if !maps.Equal(counts, tc.exp) {
			t.Errorf("want %v neg %v: got %v, want %v", tc.want, tc.neg, counts, tc.exp)
		}
	}
}
