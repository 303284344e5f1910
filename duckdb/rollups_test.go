package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/internal/storerow"
	"github.com/peba-go/peba/storetest"
)

var rollupDay = time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)

// randomEvents returns n random events for the rollup tests
// (storetest.RollupEvents), numbered from first.
func randomEvents(r *rand.Rand, n, first int) []peba.Event {
	return storetest.RollupEvents(r, n, rollupDay, func(i int) peba.Event { return sampleEvent(first+i, "") })
}

// checkRollupsMatchRaw compares every Stats answer that can use a rollup
// with the raw-table answer (storetest.CompareRollups), Sensors also with
// an oracle over the exported events, and Latest with and without the
// source index, on random windows.
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
	var all []peba.Event
	must(s.ExportEvents(ctx, func(e *peba.Event) error { all = append(all, *e); return nil }))
	subtracting := 0 // windows whose plan subtracts a part of a bucket (cover)
	for range windows {
		w := storetest.RandomWindow(r, rollupDay)
		for _, sg := range plan(w, peba.DimPeerType, 24*time.Hour, true) {
			if sg.neg {
				subtracting++
				break
			}
		}
		storetest.CompareRollups(t, r, w, dims, storetest.Rollups{Count: s.count, Sensors: s.sensors, Top: s.top, Series: s.series})
		gotS, err := s.sensors(ctx, w, true)
		must(err)
		if oracle := sensorsOf(all, w); !reflect.DeepEqual(gotS, oracle) {
			t.Fatalf("Sensors(%+v) =\n  %+v\nwant\n  %+v", w, gotS, oracle)
		}
		// Sources with events (10.0.0.x), without (10.0.0.99), and sharing
		// the key of all IPv6 sources.
		src := netip.AddrFrom4([4]byte{10, 0, 0, byte(r.IntN(21))})
		if r.IntN(5) == 0 {
			src = []netip.Addr{netip.MustParseAddr("10.0.0.99"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")}[r.IntN(3)]
		}
		limit := []int{1, 5, 35, 1000}[r.IntN(4)]
		gotL, err := s.latest(ctx, w, src, limit, true)
		must(err)
		wantL, err := s.latest(ctx, w, src, limit, false)
		must(err)
		if !reflect.DeepEqual(gotL, wantL) {
			t.Fatalf("Latest(%+v, %s, %d) = %d events with the index, %d without", w, src, limit, len(gotL), len(wantL))
		}
	}
	if subtracting == 0 {
		t.Errorf("no window subtracts a part of a bucket: the check misses that path")
	}
}

// TestRollupsMatchRaw fills a store in batches with overlapping buckets and
// duplicates, and checks that rollup answers equal raw answers on random
// windows, before and after retention.
func TestRollupsMatchRaw(t *testing.T) {
	ctx := context.Background()
	// Merge the source index's tail often (srcindex.go).
	defer func(n int64) { srcTailMin = n }(srcTailMin)
	srcTailMin = 60
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
	s = checkBackfill(t, s, path, false)

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
	checkBackfill(t, s, path, true)
}

// storedRollupRows returns the rows of every rollup table, sorted, and the
// bounds of each key of the source index.
func storedRollupRows(t *testing.T, s *Store) (rows []string, src map[string]srcRow) {
	t.Helper()
	query := func(q string, scan func(*sql.Rows) (string, error)) {
		t.Helper()
		rs, err := s.db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		for rs.Next() {
			row, err := scan(rs)
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, row)
		}
		if err := rs.Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, ru := range rollups {
		query("SELECT t, dim, community, peer_type, k, l, lat, lon, cnt FROM "+ru.table, func(rs *sql.Rows) (string, error) {
			var (
				ts       time.Time
				dim      uint8
				comm     bool
				pt, k, l string
				lat, lon float64
				cnt      int64
			)
			if err := rs.Scan(&ts, &dim, &comm, &pt, &k, &l, &lat, &lon, &cnt); err != nil {
				return "", err
			}
			if cnt <= 0 {
				t.Errorf("%s: row with count %d", ru.table, cnt)
			}
			return fmt.Sprintf("%s %s %d %v %q %q %q %v %v %d", ru.table, ts.UTC().Format(time.RFC3339), dim, comm, pt, k, l, lat, lon, cnt), nil
		})
	}
	query("SELECT t, community, h, ip, peer_ident, peer_type, cnt FROM rollup_sensor_day", func(rs *sql.Rows) (string, error) {
		var (
			ts                 time.Time
			comm               bool
			h, ip, ident, ptyp string
			cnt                int64
		)
		if err := rs.Scan(&ts, &comm, &h, &ip, &ident, &ptyp, &cnt); err != nil {
			return "", err
		}
		if cnt <= 0 {
			t.Errorf("rollup_sensor_day: row with count %d", cnt)
		}
		return fmt.Sprintf("sensor %s %v %q %q %q %q %d", ts.UTC().Format(time.RFC3339), comm, h, ip, ident, ptyp, cnt), nil
	})
	slices.Sort(rows)
	src = map[string]srcRow{}
	rs, err := s.db.Query(`SELECT src, community, epoch_us(first_created), epoch_us(last_created), epoch_us(last_received), hours, all_hours
		FROM (` + srcMergeQuery(srcIndexRows) + `)`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	for rs.Next() {
		var b srcRow
		var hours []any
		if err := rs.Scan(&b.src, &b.community, &b.firstCreated, &b.lastCreated, &b.lastReceived, &hours, &b.allHours); err != nil {
			t.Fatal(err)
		}
		for _, h := range hours {
			b.hours = append(b.hours, h.(int32))
		}
		src[fmt.Sprint(b.src, b.community)] = b
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return rows, src
}

// checkBackfill rebuilds the rollups and the source index with the
// backfills of the migrations (dropping the tables and reopening the
// store) and checks that they equal the maintained ones. Maintained source
// bounds may be wider after retention, but must hold the exact ones. It
// closes s and returns the reopened store.
func checkBackfill(t *testing.T, s *Store, path string, retained bool) *Store {
	t.Helper()
	maintained, maintainedSrc := storedRollupRows(t, s)
	tables := []string{"rollup_sensor_day", "src_index", "src_index_tail"}
	for _, ru := range rollups {
		tables = append(tables, ru.table)
	}
	tables = append(tables, topsTables...)
	for _, table := range tables {
		if _, err := s.db.Exec("DROP TABLE " + table); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.db.Exec("DELETE FROM schema_migrations WHERE version >= 2"); err != nil {
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
	backfilled, backfilledSrc := storedRollupRows(t, s)
	if !slices.Equal(maintained, backfilled) {
		t.Errorf("maintained rollups (%d rows) differ from the backfill (%d rows)", len(maintained), len(backfilled))
		for i := range min(len(maintained), len(backfilled)) {
			if maintained[i] != backfilled[i] {
				t.Errorf("first difference:\n  maintained %s\n  backfilled %s", maintained[i], backfilled[i])
				break
			}
		}
	}
	if len(maintainedSrc) != len(backfilledSrc) {
		t.Errorf("source index: %d keys maintained, %d backfilled", len(maintainedSrc), len(backfilledSrc))
	}
	for k, b := range backfilledSrc {
		m, ok := maintainedSrc[k]
		wider := ok && m.firstCreated <= b.firstCreated && m.lastCreated >= b.lastCreated && m.lastReceived >= b.lastReceived
		if m.allHours {
			for _, h := range b.hours {
				wider = wider && slices.Contains(m.hours, h)
			}
		}
		if !wider || !retained && !reflect.DeepEqual(m, b) {
			t.Errorf("source index key %s: maintained %+v, backfilled %+v", k, m, b)
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
		neg      bool
	}
	for _, c := range []struct {
		name    string
		w       peba.Window
		dim     peba.Dim
		maxGran time.Duration
		want    []seg
	}{
		// The first day is read whole minus its first half hour, the
		// shorter part.
		{"unaligned month", peba.Window{From: h(-47.5), To: h(49.25)}, peba.DimDstPort, 24 * time.Hour, []seg{
			{"rollup_tail_day", h(-48), h(48), false}, {"", h(-48), h(-47.5), true},
			{"rollup_recv_hour", h(48), h(49), false}, {"", h(49), h(49.25), false}}},
		{"6h series uses no day rows", peba.Window{From: h(-47.5), To: h(49.25)}, peba.DimDstPort, 6 * time.Hour, []seg{
			{"", h(-47.5), h(-47), false}, {"rollup_recv_hour", h(-47), h(49), false}, {"", h(49), h(49.25), false}}},
		{"unbounded from", peba.Window{To: h(1.5)}, peba.DimNone, 24 * time.Hour, []seg{
			{"rollup_recv_day", time.Time{}, h(0), false}, {"rollup_recv_hour", h(0), h(1), false}, {"", h(1), h(1.5), false}}},
		{"within one hour", peba.Window{From: h(0.1), To: h(0.2)}, peba.DimPeerType, 24 * time.Hour, []seg{
			{"", h(0.1), h(0.2), false}}},
		{"now-5m, unbounded", peba.Window{From: h(0.9)}, peba.DimNone, 24 * time.Hour, []seg{
			{"rollup_recv_day", h(0), time.Time{}, false}, {"rollup_recv_hour", h(0), h(1), true}, {"", h(0.9), h(1), false}}},
		{"day minus its last minute", peba.Window{From: h(-240), To: h(-1.0 / 60)}, peba.DimNone, 24 * time.Hour, []seg{
			{"rollup_recv_day", h(-240), h(0), false}, {"", h(-1.0 / 60), h(0), true}}},
		{"most of one day", peba.Window{From: h(0.5), To: h(23.5)}, peba.DimSrcCountry, 24 * time.Hour, []seg{
			{"rollup_recv_day", h(0), h(24), false}, {"", h(0), h(0.5), true}, {"", h(23.5), h(24), true}}},
		{"no rollup for src ip", peba.Window{From: h(-48), To: h(48)}, peba.DimSrcIP, 24 * time.Hour, []seg{
			{"", h(-48), h(48), false}}},
		{"created locations", peba.Window{Field: peba.Created, From: h(0.5), To: h(30)}, peba.DimSrcLocation, 24 * time.Hour, []seg{
			{"", h(0.5), h(1), false}, {"rollup_created_hour", h(1), h(30), false}}},
		{"empty", peba.Window{From: h(2), To: h(1)}, peba.DimNone, 24 * time.Hour, nil},
	} {
		var got []seg
		for _, sg := range plan(c.w, c.dim, c.maxGran, true) {
			name := ""
			if sg.r != nil {
				name = sg.r.table
			}
			got = append(got, seg{name, sg.from, sg.to, sg.neg})
		}
		order := func(a, b seg) int {
			if c := a.from.Compare(b.from); c != 0 {
				return c
			}
			return strings.Compare(a.table, b.table)
		}
		slices.SortFunc(got, order)
		slices.SortFunc(c.want, order)
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

// TestHeavy checks the long-tail paths of Top and Series (topheavy.go) on
// data shaped like the benchmark's: two hot ports and URLs, a medium one
// that is heavy on one day only, and a tail of ports and URLs with one or
// two events each. The fast paths must be taken (ok) where they can prove
// the answer, and every answer must equal the raw one.
func TestHeavy(t *testing.T) {
	ctx := context.Background()
	s := openStats(t).(*Store)
	r := rand.New(rand.NewPCG(7, 8))
	var evs []peba.Event
	for i := range 3 * 24 * 40 {
		e := sampleEvent(i, "")
		e.ReceivedTime = rollupDay.Add(time.Duration(i) * 90 * time.Second).Add(time.Duration(r.IntN(1000)) * time.Millisecond)
		e.CreateTime = e.ReceivedTime
		e.Domain = peba.Domain(1 + r.IntN(5)/4)
		e.PeerType = "Webpage"
		switch x := r.IntN(10); {
		case x < 5:
			e.DstPort, e.URL = 22, "/"
		case x < 8:
			e.DstPort, e.URL = 445, "/login"
		default:
			e.DstPort, e.URL = int32(1000+r.IntN(2000)), fmt.Sprintf("/tail%d", r.IntN(3000))
		}
		if e.ReceivedTime.Before(rollupDay.Add(30*time.Hour)) && e.ReceivedTime.After(rollupDay.Add(24*time.Hour)) && r.IntN(2) == 0 {
			e.DstPort, e.URL = 8080, "/medium" // heavy on day 1 only
		} else if r.IntN(40) == 0 {
			e.DstPort, e.URL = 8080, "/medium"
		}
		evs = append(evs, e)
	}
	for i := 0; i < len(evs); i += 500 {
		if _, err := s.AppendEvents(ctx, evs[i:min(i+500, len(evs))]); err != nil {
			t.Fatal(err)
		}
	}
	com := []peba.Domain{peba.DomainCommunity}
	h := func(n float64) time.Time { return rollupDay.Add(time.Duration(n * float64(time.Hour))) }
	for _, c := range []struct {
		name   string
		w      peba.Window
		dim    peba.Dim
		limit  int
		fast   bool // topHeavy proves the answer
		series time.Duration
	}{
		{"ports, days and edges", peba.Window{Domains: com, From: h(5.5)}, peba.DimDstPort, 2, true, 24 * time.Hour},
		{"ports with the medium one", peba.Window{Domains: com, From: h(0), To: h(72)}, peba.DimDstPort, 3, true, 6 * time.Hour},
		{"ports, both domains, hours", peba.Window{Domains: []peba.Domain{peba.DomainCommunity, peba.DomainPrivate}, From: h(30.2), To: h(50.7)}, peba.DimDstPort, 2, true, time.Hour},
		{"ports into the tail", peba.Window{Domains: com, From: h(0), To: h(72)}, peba.DimDstPort, 40, false, 24 * time.Hour},
		{"ports, tail in the raw edge", peba.Window{Domains: com, From: h(5.5)}, peba.DimDstPort, 5, false, 0},
		{"urls of a type", peba.Window{Domains: com, From: h(20.5), PeerType: "Webpage"}, peba.DimURL, 3, true, time.Hour},
		{"urls of another type", peba.Window{Domains: com, From: h(20.5), PeerType: "Other"}, peba.DimURL, 3, true, time.Hour},
	} {
		got, ok, err := s.topHeavy(ctx, c.w, c.dim, c.limit)
		if err != nil {
			t.Fatal(err)
		}
		want, err := s.top(ctx, c.w, c.dim, c.limit, false)
		if err != nil {
			t.Fatal(err)
		}
		if ok != c.fast {
			t.Errorf("%s: topHeavy ok = %v, want %v", c.name, ok, c.fast)
		}
		if ok && !reflect.DeepEqual(got, want) {
			t.Errorf("%s: topHeavy =\n  %v\nraw\n  %v", c.name, got, want)
		}
		if got, err := s.Top(ctx, c.w, c.dim, c.limit); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: Top = %v, %v\nraw\n  %v", c.name, got, err, want)
		}
		// As many keys as proven, up to 3x the limit (the memo's closed
		// top, memo_tops.go): an exact prefix of the raw top.
		if got, all, ok, err := s.topHeavyN(ctx, c.w, c.dim, 3*c.limit, 1); err != nil {
			t.Fatal(err)
		} else if ok {
			wantN, err := s.top(ctx, c.w, c.dim, 0, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) > len(wantN) || !reflect.DeepEqual(got, wantN[:len(got)]) || all != (len(got) == len(wantN)) && all {
				t.Errorf("%s: topHeavyN(%d, 1) = %v (all %v)\nraw\n  %v", c.name, 3*c.limit, got, all, wantN)
			}
		} else if c.fast {
			t.Errorf("%s: topHeavyN(%d, 1) proves nothing", c.name, 3*c.limit)
		}
		if c.series == 0 {
			continue
		}
		keys := []string{"no such key"}
		for _, b := range want {
			keys = append(keys, b.Key)
		}
		gotS, ok, err := s.seriesHeavy(ctx, c.w, c.series, c.dim, keys)
		if err != nil || !ok {
			t.Fatalf("%s: seriesHeavy ok %v, %v", c.name, ok, err)
		}
		wantS, err := s.series(ctx, c.w, c.series, c.dim, keys, false)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(gotS, wantS) {
			t.Errorf("%s: seriesHeavy =\n  %v\nraw\n  %v", c.name, gotS, wantS)
		}
	}
}

// sensorsOf computes peba.Stats.Sensors of w over evs, in Go.
func sensorsOf(evs []peba.Event, w peba.Window) []peba.SensorGroup {
	type key struct{ h, ip string }
	groups := map[key]*peba.SensorGroup{}
	for i := range evs {
		e := &evs[i]
		t := e.ReceivedTime
		if w.Field == peba.Created {
			t = e.CreateTime
		}
		if !slices.Contains(w.Domains, e.Domain) || !w.From.IsZero() && t.Before(dbTime(w.From)) ||
			!w.To.IsZero() && !t.Before(dbTime(w.To)) || w.PeerType != "" && e.PeerType != w.PeerType {
			continue
		}
		h, ip := storerow.SensorGroup(e.Hostname, storerow.AddrText(e.DstIP))
		g := groups[key{h, ip}]
		if g == nil {
			g = &peba.SensorGroup{Hostname: h, TargetIP: ip}
			groups[key{h, ip}] = g
		}
		g.Count++
		if !slices.Contains(g.PeerIdent, e.PeerIdent) {
			g.PeerIdent = append(g.PeerIdent, e.PeerIdent)
		}
		if !slices.Contains(g.PeerType, e.PeerType) {
			g.PeerType = append(g.PeerType, e.PeerType)
		}
	}
	var out []peba.SensorGroup
	for _, g := range groups {
		slices.Sort(g.PeerIdent)
		slices.Sort(g.PeerType)
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b peba.SensorGroup) int {
		if a.Hostname != b.Hostname {
			return strings.Compare(a.Hostname, b.Hostname)
		}
		return strings.Compare(a.TargetIP, b.TargetIP)
	})
	return out
}

// TestAddHour checks the list of a source's newest hours (srcindex.go):
// distinct, newest first, at most srcHours, and whether an hour was left out.
func TestAddHour(t *testing.T) {
	var hours []int32
	for _, h := range []int32{5, 7, 5, 6} {
		var cut bool
		if hours, cut = addHour(hours, h); cut {
			t.Fatalf("addHour(%d) cut a short list", h)
		}
	}
	if want := []int32{7, 6, 5}; !slices.Equal(hours, want) {
		t.Fatalf("hours = %v, want %v", hours, want)
	}
	for h := int32(100); h < 100+srcHours; h++ {
		hours, _ = addHour(hours, h)
	}
	if len(hours) != srcHours || hours[0] != 100+srcHours-1 || hours[srcHours-1] != 100 {
		t.Fatalf("hours = %v, want the %d newest", hours, srcHours)
	}
	if _, cut := addHour(hours, 99); !cut {
		t.Error("an older hour than a full list holds was not reported cut")
	}
	if _, cut := addHour(hours, 100); cut {
		t.Error("an hour the list holds was reported cut")
	}
}

// srcRow is one key and domain of the source index; times in UTC
// microseconds, hours newest first.
type srcRow struct {
	src                                     uint64
	community                               bool
	firstCreated, lastCreated, lastReceived int64
	hours                                   []int32
	allHours                                bool
}
