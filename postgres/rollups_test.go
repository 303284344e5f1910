package postgres

import (
	"context"
	"math"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/peba-go/peba"
)

var rollupDay = time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)

// randomEvents returns n events over rollupDay and the 4 days after it
// (as duckdb's test does): few distinct values per dim so that rollup rows
// are shared, create times up to 2 h before or after the receive time, and
// the edge values the keys must survive: NoPort, -0 and +0 coordinates,
// country codes with two names, a NUL in a URL.
func randomEvents(r *rand.Rand, n, first int) []peba.Event {
	types := []string{"SSH/console(cowrie)", "Webpage", "Network(Dionaea)"}
	geos := []peba.Geo{
		{Country: "DE", CountryName: "Germany", Lat: 51.2993, Lon: 9.491},
		{Country: "DE", CountryName: "Deutschland", Lat: 51.2993, Lon: 9.491},
		{Country: "US", CountryName: "USA", Lat: 37.751, Lon: -97.822},
		{Country: "-", CountryName: "-", Lat: math.Copysign(0, -1), Lon: 0},
		peba.UnknownGeo,
	}
	out := make([]peba.Event, n)
	for i := range out {
		e := sampleEvent(first+i, "")
		e.ReceivedTime = rollupDay.Add(time.Duration(r.Int64N(int64(5 * 24 * time.Hour))))
		if r.IntN(4) == 0 {
			e.ReceivedTime = e.ReceivedTime.Truncate(time.Hour).Add(time.Duration(r.IntN(3)-1) * time.Microsecond)
		}
		e.CreateTime = e.ReceivedTime.Add(time.Duration(r.Int64N(int64(4*time.Hour))) - 2*time.Hour)
		if r.IntN(5) == 0 {
			e.Domain = peba.DomainPrivate
		}
		e.PeerType = types[r.IntN(len(types))]
		e.Src, e.Dst = geos[r.IntN(len(geos))], geos[r.IntN(len(geos))]
		e.DstPort = []int32{22, 80, 445, 2222, peba.NoPort}[r.IntN(5)]
		e.URL = []string{"", "/", "/a.php", "Attack on port 22/tcp", "/\x00"}[r.IntN(5)]
		e.SrcIP = netip.AddrFrom4([4]byte{10, 0, 0, byte(r.IntN(20))})
		out[i] = e
	}
	return out
}

// randomWindow returns a window with bounds that are unbounded, aligned to
// a day or an hour, or anywhere, within and around the data's days.
func randomWindow(r *rand.Rand) peba.Window {
	bound := func() time.Time {
		t := rollupDay.Add(time.Duration(r.Int64N(int64(7*24*time.Hour))) - 24*time.Hour)
		switch r.IntN(5) {
		case 0:
			return time.Time{}
		case 1:
			return t.Truncate(24 * time.Hour)
		case 2:
			return t.Truncate(time.Hour)
		}
		return t
	}
	w := peba.Window{From: bound(), To: bound()}
	if !w.From.IsZero() && !w.To.IsZero() && w.To.Before(w.From) && r.IntN(4) != 0 {
		w.From, w.To = w.To, w.From
	}
	w.Domains = [][]peba.Domain{
		{peba.DomainCommunity}, {peba.DomainPrivate}, {peba.DomainCommunity, peba.DomainPrivate}, nil,
	}[r.IntN(4)]
	if r.IntN(2) == 0 {
		w.Field = peba.Created
	}
	if r.IntN(4) == 0 {
		w.PeerType = "Webpage"
	}
	return w
}

// checkRollupsMatchRaw compares every Stats answer that can use a rollup
// with the raw-table answer, on random windows.
func checkRollupsMatchRaw(t *testing.T, s *Store, r *rand.Rand, windows int) {
	t.Helper()
	ctx := context.Background()
	dims := []peba.Dim{peba.DimPeerType, peba.DimSrcCountry, peba.DimDstCountry,
		peba.DimSrcLocation, peba.DimDstLocation, peba.DimURL, peba.DimDstPort}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for range windows {
		w := randomWindow(r)
		got, err := s.count(ctx, w, true)
		must(err)
		want, err := s.count(ctx, w, false)
		must(err)
		if got != want {
			t.Fatalf("Count(%+v) = %d with rollups, %d raw", w, got, want)
		}
		for _, d := range dims {
			limit := r.IntN(4)
			got, err := s.top(ctx, w, d, limit, true)
			must(err)
			want, err := s.top(ctx, w, d, limit, false)
			must(err)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Top(%+v, dim %d, %d) =\n  %v with rollups\n  %v raw", w, d, limit, got, want)
			}
			all, err := s.top(ctx, w, d, 0, false)
			must(err)
			keys := []string{"no such key"}
			for _, b := range all {
				if r.IntN(2) == 0 {
					keys = append(keys, b.Key)
				}
			}
			width := []time.Duration{time.Hour, 6 * time.Hour, 24 * time.Hour}[r.IntN(3)]
			for _, sd := range []peba.Dim{d, peba.DimNone} {
				got, err := s.series(ctx, w, width, sd, keys, true)
				must(err)
				want, err := s.series(ctx, w, width, sd, keys, false)
				must(err)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("Series(%+v, %s, dim %d, %q) =\n  %v with rollups\n  %v raw", w, width, sd, keys, got, want)
				}
			}
		}
	}
}

// TestRollupsMatchRaw fills a store in batches with overlapping buckets and
// duplicates, and checks that the rollup rows equal the raw aggregates and
// that rollup answers equal raw answers on random windows, before and
// after retention at an unaligned time.
func TestRollupsMatchRaw(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	r := rand.New(rand.NewPCG(1, 2))
	evs := randomEvents(r, 3000, 0)
	for i := 0; i < len(evs); i += 250 {
		batch := evs[i:min(i+250, len(evs))]
		if i > 0 {
			batch = append(slices.Clone(batch), evs[i-1]) // a stored duplicate
		}
		mustAppend(t, s, batch...)
	}
	checkRollupsExact(t, s)
	checkRollupsMatchRaw(t, s, r, 15)

	cut := rollupDay.Add(37*time.Hour + 17*time.Minute + 3*time.Microsecond)
	n, err := s.DeleteEventsBefore(ctx, cut)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("DeleteEventsBefore deleted nothing")
	}
	checkRollupsExact(t, s)
	checkRollupsMatchRaw(t, s, r, 8)
}

// TestPlan checks how windows are split between rollups and raw edges.
func TestPlan(t *testing.T) {
	h := func(n float64) time.Time { return rollupDay.Add(time.Duration(n * float64(time.Hour))) }
	type seg struct {
		table    string
		from, to time.Time
	}
	for _, c := range []struct {
		name    string
		w       peba.Window
		dim     peba.Dim
		maxGran time.Duration
		want    []seg
	}{
		{"unaligned month", peba.Window{From: h(-47.5), To: h(49.25)}, peba.DimDstPort, 24 * time.Hour, []seg{
			{"", h(-47.5), h(-47)}, {"rollup_recv_hour", h(-47), h(-24)}, {"rollup_recv_day", h(-24), h(48)},
			{"rollup_recv_hour", h(48), h(49)}, {"", h(49), h(49.25)}}},
		{"6h series uses no day rows", peba.Window{From: h(-47.5), To: h(49.25)}, peba.DimDstPort, 6 * time.Hour, []seg{
			{"", h(-47.5), h(-47)}, {"rollup_recv_hour", h(-47), h(49)}, {"", h(49), h(49.25)}}},
		{"no rollup for src ip", peba.Window{From: h(-48), To: h(48)}, peba.DimSrcIP, 24 * time.Hour, []seg{
			{"", h(-48), h(48)}}},
		{"created locations", peba.Window{Field: peba.Created, From: h(0.5), To: h(30)}, peba.DimSrcLocation, 24 * time.Hour, []seg{
			{"", h(0.5), h(1)}, {"rollup_created_hour", h(1), h(30)}}},
		{"empty", peba.Window{From: h(2), To: h(1)}, peba.DimNone, 24 * time.Hour, nil},
	} {
		var got []seg
		for _, sg := range plan(c.w, c.dim, c.maxGran, true) {
			name := ""
			if sg.r != nil {
				name = sg.r.table
			}
			got = append(got, seg{name, sg.from, sg.to})
		}
		slices.SortFunc(got, func(a, b seg) int { return a.from.Compare(b.from) })
		slices.SortFunc(c.want, func(a, b seg) int { return a.from.Compare(b.from) })
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: plan =\n  %v\nwant\n  %v", c.name, got, c.want)
		}
	}
}

// TestLatestWidens checks that Latest finds the newest events when the
// first look-back windows hold fewer than limit of them (created time).
func TestLatestWidens(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	now := time.Now().UTC()
	var evs []peba.Event
	for i, ago := range []time.Duration{time.Minute, 2 * time.Hour, 30 * time.Hour, 40 * 24 * time.Hour, 400 * 24 * time.Hour} {
		e := sampleEvent(i, "")
		e.ReceivedTime, e.CreateTime = now.Add(-ago), now.Add(-ago)
		evs = append(evs, e)
	}
	mustAppend(t, s, evs...)
	for _, field := range []peba.TimeField{peba.Received, peba.Created} {
		w := peba.Window{Domains: []peba.Domain{peba.DomainCommunity}, Field: field}
		for limit := 1; limit <= 6; limit++ {
			got, err := s.Latest(ctx, w, netip.Addr{}, limit)
			if err != nil {
				t.Fatal(err)
			}
			if want := min(limit, len(evs)); len(got) != want {
				t.Fatalf("field %d: Latest(limit %d) gave %d events, want %d", field, limit, len(got), want)
			}
			for i := range got {
				if got[i].ID != evs[i].ID {
					t.Errorf("field %d: Latest(limit %d)[%d] = %s, want %s", field, limit, i, got[i].ID, evs[i].ID)
				}
			}
		}
		w.From = now.Add(-35 * time.Hour)
		got, err := s.Latest(ctx, w, netip.Addr{}, 10)
		if err != nil || len(got) != 3 {
			t.Errorf("field %d: Latest(from now-35h) = %d events, %v; want 3", field, len(got), err)
		}
	}
}
