package duckdb

import (
	"context"
	"fmt"
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

// randomEvents returns n events over rollupDay and the 4 days after it,
// with few distinct values per dim so that rollup rows are shared, create
// times up to 2 h before or after the receive time (sensor clocks), and the
// edge values the keys must survive: NoPort, -0 and +0 coordinates, country
// codes with two names.
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
		// Microsecond steps around bucket edges as well as anywhere.
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
		e.URL = []string{"", "/", "/a.php", "Attack on port 22/tcp"}[r.IntN(4)]
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
// duplicates, and checks that rollup answers equal raw answers on random
// windows, before and after retention.
func TestRollupsMatchRaw(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t, Options{Threads: 2})
	r := rand.New(rand.NewPCG(1, 2))
	evs := randomEvents(r, 3000, 0)
	for i := 0; i < len(evs); i += 250 {
		batch := evs[i:min(i+250, len(evs))]
		if i > 0 {
			batch = append(slices.Clone(batch), evs[i-1]) // a stored duplicate
		}
		if _, err := s.AppendEvents(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	checkRollupsMatchRaw(t, s, r, 25)
	s = checkBackfill(t, s, path)

	// Retention at an unaligned time: the rollups lose exactly the deleted
	// events, including those in the created-time buckets after the cutoff.
	cut := rollupDay.Add(37*time.Hour + 17*time.Minute + 3*time.Microsecond)
	n, err := s.DeleteEventsBefore(ctx, cut)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("DeleteEventsBefore deleted nothing")
	}
	checkRollupsMatchRaw(t, s, r, 10)
	checkBackfill(t, s, path)
}

// rollupRows returns the rows of every rollup table, sorted.
func rollupRows(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	for _, ru := range rollups {
		rows, err := s.db.Query("SELECT t, dim, community, peer_type, k, l, lat, lon, cnt FROM " + ru.table)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var (
				ts       time.Time
				dim      uint8
				comm     bool
				pt, k, l string
				lat, lon float64
				cnt      int64
			)
			if err := rows.Scan(&ts, &dim, &comm, &pt, &k, &l, &lat, &lon, &cnt); err != nil {
				t.Fatal(err)
			}
			if cnt <= 0 {
				t.Errorf("%s: row with count %d", ru.table, cnt)
			}
			out = append(out, fmt.Sprintf("%s %s %d %v %q %q %q %v %v %d", ru.table, ts.UTC().Format(time.RFC3339), dim, comm, pt, k, l, lat, lon, cnt))
		}
		rows.Close()
	}
	slices.Sort(out)
	return out
}

// checkBackfill rebuilds the rollups with the backfill of 0002_rollups.sql
// (dropping the tables and reopening the store) and checks that they equal
// the maintained ones. It closes s and returns the reopened store.
func checkBackfill(t *testing.T, s *Store, path string) *Store {
	t.Helper()
	maintained := rollupRows(t, s)
	for _, ru := range rollups {
		if _, err := s.db.Exec("DROP TABLE " + ru.table); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.db.Exec("DELETE FROM schema_migrations WHERE version = 2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	backfilled := rollupRows(t, s)
	if !slices.Equal(maintained, backfilled) {
		t.Errorf("maintained rollups (%d rows) differ from the backfill (%d rows)", len(maintained), len(backfilled))
		for i := range min(len(maintained), len(backfilled)) {
			if maintained[i] != backfilled[i] {
				t.Errorf("first difference:\n  maintained %s\n  backfilled %s", maintained[i], backfilled[i])
				break
			}
		}
	}
	return s
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
		{"unbounded from", peba.Window{To: h(1.5)}, peba.DimNone, 24 * time.Hour, []seg{
			{"rollup_recv_day", time.Time{}, h(0)}, {"rollup_recv_hour", h(0), h(1)}, {"", h(1), h(1.5)}}},
		{"within one hour", peba.Window{From: h(0.1), To: h(0.2)}, peba.DimPeerType, 24 * time.Hour, []seg{
			{"", h(0.1), h(0.2)}}},
		{"now-5m, unbounded", peba.Window{From: h(0.9)}, peba.DimNone, 24 * time.Hour, []seg{
			{"", h(0.9), h(1)}, {"rollup_recv_day", h(24), time.Time{}}, {"rollup_recv_hour", h(1), h(24)}}},
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
// first look-back windows hold fewer than limit of them.
func TestLatestWidens(t *testing.T) {
	ctx := context.Background()
	s := openStats(t).(*Store)
	now := time.Now().UTC()
	var evs []peba.Event
	for i, ago := range []time.Duration{time.Minute, 2 * time.Hour, 30 * time.Hour, 40 * 24 * time.Hour, 400 * 24 * time.Hour} {
		e := sampleEvent(i, "")
		e.ReceivedTime, e.CreateTime = now.Add(-ago), now.Add(-ago)
		evs = append(evs, e)
	}
	if _, err := s.AppendEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	w := peba.Window{Domains: []peba.Domain{peba.DomainCommunity}}
	for limit := 1; limit <= 6; limit++ {
		got, err := s.Latest(ctx, w, netip.Addr{}, limit)
		if err != nil {
			t.Fatal(err)
		}
		if want := min(limit, len(evs)); len(got) != want {
			t.Fatalf("Latest(limit %d) gave %d events, want %d", limit, len(got), want)
		}
		for i := range got {
			if got[i].ID != evs[i].ID {
				t.Errorf("Latest(limit %d)[%d] = %s, want %s", limit, i, got[i].ID, evs[i].ID)
			}
		}
	}
	w.From = now.Add(-35 * time.Hour)
	got, err := s.Latest(ctx, w, netip.Addr{}, 10)
	if err != nil || len(got) != 3 {
		t.Errorf("Latest(from now-35h) = %d events, %v; want 3", len(got), err)
	}
}

// BenchmarkRollupAppend times 500-event appends (the ingest batcher's
// group size) with the rollups maintained, on a store that already holds
// some hours of events.
func BenchmarkRollupAppend(b *testing.B) {
	ctx := context.Background()
	s, _ := openTemp(b, Options{Threads: 2})
	r := rand.New(rand.NewPCG(3, 4))
	i := 0
	for b.Loop() {
		if _, err := s.AppendEvents(ctx, randomEvents(r, 500, i)); err != nil {
			b.Fatal(err)
		}
		i += 500
	}
}
