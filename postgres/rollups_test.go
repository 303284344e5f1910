package postgres

import (
	"cmp"
	"context"
	"math"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/internal/pgtest"
	"github.com/peba-go/peba/storetest"
)

var rollupDay = time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)

// randomEvents returns n random events for the rollup tests
// (storetest.RollupEvents), numbered from first.
func randomEvents(r *rand.Rand, n, first int) []peba.Event {
	return storetest.RollupEvents(r, n, rollupDay, func(i int) peba.Event { return sampleEvent(first+i, "") })
}

// checkRollupsMatchRaw compares every Stats answer that can use a rollup
// with the raw-table answer, on random windows.
func checkRollupsMatchRaw(t *testing.T, s *Store, r *rand.Rand, windows int) {
	t.Helper()
	for range windows {
		compareWindow(t, s, r, storetest.RandomWindow(r, rollupDay))
	}
}

// compareWindow compares every Stats answer on w that can use a rollup with
// the raw-table answer (storetest.CompareRollups).
func compareWindow(t *testing.T, s *Store, r *rand.Rand, w peba.Window) {
	t.Helper()
	dims := []peba.Dim{peba.DimPeerType, peba.DimSrcIP, peba.DimSrcCountry, peba.DimDstCountry,
		peba.DimSrcLocation, peba.DimDstLocation, peba.DimURL, peba.DimDstPort}
	storetest.CompareRollups(t, r, w, dims, storetest.Rollups{Count: s.count, Sensors: s.sensors, Top: s.top, Series: s.series})
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

// TestEdgesMatchRaw: windows whose start is late in an hour (the bucket
// minus the raw events before the start) or early, ending after every
// stored event (the tail read from the bucket) or inside the data (from
// the raw events), or on the hour right after a start early in the hour
// (only the bucket minus the raw start), in both time fields, give the raw
// answers.
func TestEdgesMatchRaw(t *testing.T) {
	s, _ := openTemp(t)
	r := rand.New(rand.NewPCG(3, 4))
	mustAppend(t, s, randomEvents(r, 2000, 0)...)
	all := []peba.Domain{peba.DomainCommunity, peba.DomainPrivate}
	for _, from := range []time.Duration{26*time.Hour + 50*time.Minute, 26*time.Hour + 10*time.Minute, 3*time.Hour + 59*time.Minute} {
		for _, to := range []time.Duration{30*24*time.Hour + 7*time.Minute, 60*time.Hour + 7*time.Minute, 60*time.Hour + 53*time.Minute, 27 * time.Hour} {
			for _, f := range []peba.TimeField{peba.Received, peba.Created} {
				compareWindow(t, s, r, peba.Window{Domains: all, Field: f, From: rollupDay.Add(from), To: rollupDay.Add(to)})
				compareWindow(t, s, r, peba.Window{Domains: all[:1], Field: f, From: rollupDay.Add(from), To: rollupDay.Add(to), PeerType: "Webpage"})
			}
		}
	}
}

// TestPlan checks how windows are split between rollups and raw edges.
func TestPlan(t *testing.T) {
	h := func(n float64) time.Time { return rollupDay.Add(time.Duration(n * float64(time.Hour))) }
	type seg struct {
		table    string
		from, to time.Time
		cond     string // "": always; "empty": if no event at or after the window's end; "some": if some
	}
	for _, c := range []struct {
		name    string
		w       peba.Window
		dim     peba.Dim
		maxGran time.Duration
		want    []seg
	}{
		{"unaligned month", peba.Window{From: h(-47.5), To: h(49.25)}, peba.DimDstPort, 24 * time.Hour, []seg{
			{"", h(-47.5), h(-47), ""}, {"rollup_recv_hour", h(-47), h(-24), ""}, {"rollup_recv_day", h(-24), h(48), ""},
			{"rollup_recv_day", h(48), h(72), "empty"}, {"rollup_recv_hour", h(48), h(49), "some"}, {"", h(49), h(49.25), "some"}}},
		{"6h series uses no day rows", peba.Window{From: h(-47.5), To: h(49.25)}, peba.DimDstPort, 6 * time.Hour, []seg{
			{"", h(-47.5), h(-47), ""}, {"rollup_recv_hour", h(-47), h(49), ""},
			{"rollup_recv_hour", h(49), h(50), "empty"}, {"", h(49), h(49.25), "some"}}},
		{"long leading edge: bucket minus raw", peba.Window{From: h(-47.75), To: h(-40)}, peba.DimDstPort, 24 * time.Hour, []seg{
			{"rollup_recv_hour", h(-48), h(-47), ""}, {"-", h(-48), h(-47.75), ""}, {"rollup_recv_hour", h(-47), h(-40), ""}}},
		{"src ip by hour only", peba.Window{From: h(-48), To: h(48)}, peba.DimSrcIP, 24 * time.Hour, []seg{
			{"rollup_recv_hour", h(-48), h(48), ""}}},
		{"no rollup for src ip by created time", peba.Window{Field: peba.Created, From: h(-48), To: h(48)}, peba.DimSrcIP, 24 * time.Hour, []seg{
			{"", h(-48), h(48), ""}}},
		{"created locations", peba.Window{Field: peba.Created, From: h(0.5), To: h(30)}, peba.DimSrcLocation, 24 * time.Hour, []seg{
			{"", h(0.5), h(1), ""}, {"rollup_created_hour", h(1), h(30), ""}}},
		{"empty", peba.Window{From: h(2), To: h(1)}, peba.DimNone, 24 * time.Hour, nil},
		{"totals use minutes", peba.Window{From: h(-0.5).Add(20 * time.Second), To: h(2).Add(10*time.Minute + 5*time.Second)},
			peba.DimNone, 24 * time.Hour, []seg{
				{"", h(-0.5).Add(20 * time.Second), h(-0.5).Add(time.Minute), ""},
				{"rollup_recv_minute", h(-0.5).Add(time.Minute), h(0), ""},
				{"rollup_recv_hour", h(0), h(2), ""}, {"rollup_recv_minute", h(2), h(2).Add(10 * time.Minute), ""},
				{"", h(2).Add(10 * time.Minute), h(2).Add(10*time.Minute + 5*time.Second), ""}}},
		{"typed totals use no minutes", peba.Window{From: h(-0.5), To: h(1), PeerType: "Webpage"}, peba.DimNone, 24 * time.Hour, []seg{
			{"", h(-0.5), h(0), ""}, {"rollup_recv_day", h(0), h(24), "empty"}, {"rollup_recv_hour", h(0), h(1), "some"}}},
		{"created peer types by day", peba.Window{Field: peba.Created, From: h(-48), To: h(25)}, peba.DimPeerType, 24 * time.Hour, []seg{
			{"rollup_created_day", h(-48), h(24), ""},
			{"rollup_created_day", h(24), h(48), "empty"}, {"rollup_created_hour", h(24), h(25), "some"}}},
		{"long leading edge ending on the hour: no tail alternatives", peba.Window{From: h(10).Add(20 * time.Minute), To: h(11)}, peba.DimSrcCountry,
			24 * time.Hour, []seg{{"rollup_recv_hour", h(10), h(11), ""}, {"-", h(10), h(10).Add(20 * time.Minute), ""}}},
		{"today from the day bucket", peba.Window{From: h(-24 * 20), To: h(18.2)}, peba.DimSrcCountry, 24 * time.Hour, []seg{
			{"rollup_recv_day", h(-24 * 20), h(0), ""}, {"rollup_recv_day", h(0), h(24), "empty"},
			{"rollup_recv_hour", h(0), h(18), "some"}, {"", h(18), h(18.2), "some"}}},
	} {
		var got []seg
		for _, sg := range plan(c.w, c.dim, c.maxGran, true) {
			name, cond := "", ""
			if sg.r != nil {
				name = sg.r.table
			}
			if sg.neg {
				name = "-" + name
			}
			if !sg.cut.IsZero() {
				cond = map[bool]string{true: "empty", false: "some"}[sg.ifEmpty]
			}
			got = append(got, seg{name, sg.from, sg.to, cond})
		}
		order := func(a, b seg) int { return cmp.Or(a.from.Compare(b.from), strings.Compare(a.table, b.table)) }
		slices.SortFunc(got, order)
		slices.SortFunc(c.want, order)
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

// TestMigration0002Backfill stores events and their rollups as a 0001
// database held them (one table per time field and granularity, no
// minute, created-day or sensor rollups), then opens the database with
// every migration: 0002's backfill gives exactly the rollups that appends
// would have written, and the rollup answers equal the raw ones.
func TestMigration0002Backfill(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	old, err := openTo(ctx, dsn, Options{MaxConns: 2, Logger: testLogger(t)}, 1)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	evs := randomEvents(r, 2000, 0)
	days := map[int64]bool{}
	var rows [][]any
	ids, times := make([]string, len(evs)), make([]time.Time, len(evs))
	for i := range evs {
		row, err := rowValues(&evs[i])
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row)
		days[dayOf(evs[i].ReceivedTime)] = true
		ids[i], times[i] = escText(evs[i].ID), dbTime(evs[i].ReceivedTime)
	}
	if err := old.ensurePartitions(ctx, days); err != nil {
		t.Fatal(err)
	}
	if _, err := old.pool.CopyFrom(ctx, pgx.Identifier{"events"}, eventColumnNames, pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}
	if _, err := old.pool.Exec(ctx, "INSERT INTO event_ids SELECT * FROM unnest($1::text[], $2::timestamp[])", ids, times); err != nil {
		t.Fatal(err)
	}
	for _, r := range []rollup{
		{"rollup_recv_hour", peba.Received, time.Hour, []peba.Dim{1, 3, 4, 7, 8}},
		{"rollup_recv_day", peba.Received, 24 * time.Hour, []peba.Dim{1, 3, 4, 7, 8}},
		{"rollup_created_hour", peba.Created, time.Hour, []peba.Dim{1, 5, 6}},
	} {
		d := rollupDelta{}
		for i := range evs {
			for _, dim := range r.dims {
				d[rollupKeyOf(&evs[i], r.field, r.gran, dim)]++
			}
		}
		keys, rids := d.sorted()
		var rrows [][]any
		for i, k := range keys {
			rrows = append(rrows, []any{k.t, int16(k.dim), k.community, rids[i].h, int16(0), k.peerType, k.k, k.l,
				math.Float64frombits(k.lat), math.Float64frombits(k.lon), d[k]})
		}
		if _, err := old.pool.CopyFrom(ctx, pgx.Identifier{r.table},
			[]string{"t", "dim", "community", "h", "shard", "peer_type", "k", "l", "lat", "lon", "cnt"},
			pgx.CopyFromRows(rrows)); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()

	s, err := Open(ctx, dsn, Options{MaxConns: 2, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkRollupsExact(t, s)
	checkRollupsMatchRaw(t, s, r, 6)
}

// TestTopBounded fills a store with long-tail ports, URLs and source
// locations, counted into several rollup shards (another connection holds
// the lower shards during some appends), deletes an unaligned prefix
// (retention folds shard rows), and checks topBounded against the raw
// answers. It must succeed on most windows, so that the bounds are
// actually tested rather than the fallback.
func TestTopBounded(t *testing.T) {
	ctx := context.Background()
	s, dsn := openTemp(t)
	r := rand.New(rand.NewPCG(7, 8))
	evs := randomEvents(r, 4000, 0)
	portZipf := rand.NewZipf(r, 1.3, 1, 3000)
	locZipf := rand.NewZipf(r, 1.2, 1, 500)
	for i := range evs {
		e := &evs[i]
		e.ReceivedTime = rollupDay.Add(time.Duration(r.Int64N(int64(48 * time.Hour))))
		e.CreateTime = e.ReceivedTime.Add(-time.Duration(r.Int64N(int64(90 * time.Minute))))
		e.DstPort = int32(portZipf.Uint64())
		if e.DstPort == 0 {
			e.DstPort = peba.NoPort
		}
		l := locZipf.Uint64()
		e.Src.Lat, e.Src.Lon = float64(l%50)-25, float64(l/50)
		e.URL = "/u" + strconv.FormatUint(portZipf.Uint64(), 10)
	}
	other, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	for i := 0; i < len(evs); i += 200 {
		held := i / 200 % 3 // shards held by the other connection
		tx, err := other.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for sh := range held {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", shardLockClass, int32(sh)); err != nil {
				t.Fatal(err)
			}
		}
		mustAppend(t, s, evs[i:i+200]...)
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := queryInt(t, s, "SELECT count(DISTINCT shard) FROM rollup_recv_hour"); n != 3 {
		t.Fatalf("rollup rows in %d shards, want 3", n)
	}
	if _, err := s.DeleteEventsBefore(ctx, rollupDay.Add(13*time.Hour+20*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, s, "SELECT count(*) FROM rollup_recv_hour WHERE cnt = 0"); n == 0 {
		t.Log("retention left no rows of count 0")
	}
	checkRollupsExact(t, s)

	h := func(x float64) time.Time { return rollupDay.Add(time.Duration(x * float64(time.Hour))) }
	all := []peba.Domain{peba.DomainCommunity, peba.DomainPrivate}
	var tried, bounded int
	for _, w := range []peba.Window{
		{Domains: all},
		{Domains: all, From: h(10.5)},
		{Domains: all[:1], From: h(14.75), To: h(40.1)},
		{Domains: all[1:], From: h(24), To: h(48)},
		{Domains: all, Field: peba.Created, From: h(20.2), To: h(47.9)},
		{Domains: all[:1], Field: peba.Created, From: h(30)},
		{Domains: all, From: h(24), PeerType: "Webpage"},
		{Domains: all[:1], From: h(12.9), To: h(44.6), PeerType: "Webpage"},
	} {
		for _, dim := range []peba.Dim{peba.DimDstPort, peba.DimSrcLocation, peba.DimURL} {
			for _, limit := range []int{1, 3, 10} {
				want, err := s.top(ctx, w, dim, limit, false)
				if err != nil {
					t.Fatal(err)
				}
				got, ok, err := s.topBounded(ctx, w, dim, limit)
				if err != nil {
					t.Fatal(err)
				}
				if !boundedDim(dim, w) || !slices.ContainsFunc(plan(w, dim, 24*time.Hour, true), func(sg segment) bool { return sg.r != nil }) {
					continue
				}
				tried++
				if !ok {
					continue
				}
				bounded++
				if !reflect.DeepEqual(got, want) {
					t.Errorf("topBounded(%+v, dim %d, %d) =\n  %v\nraw\n  %v", w, dim, limit, got, want)
				}
			}
		}
	}
	t.Logf("topBounded answered %d of %d", bounded, tried)
	if bounded < tried*2/3 {
		t.Errorf("topBounded answered only %d of %d windows", bounded, tried)
	}
}

// TestTopStream: Top of source addresses summed in Go from the hour
// rollup and raw edges (topStream) equals the SQL grouping of the raw
// events, for windows with a leading complement, a tail from the bucket
// or from the raw events, whole hours only, raw events only (a peer type,
// the created time, a short window) and none; and a window of more than
// topStreamMax rows is left to the SQL grouping.
func TestTopStream(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	r := rand.New(rand.NewPCG(5, 6))
	evs := randomEvents(r, 1500, 0)
	for i := range evs {
		evs[i].SrcIP = netip.AddrFrom4([4]byte{10, 0, byte(r.IntN(3)), byte(r.IntN(200))})
	}
	mustAppend(t, s, evs...)
	all := []peba.Domain{peba.DomainCommunity, peba.DomainPrivate}
	h := func(n float64) time.Time { return rollupDay.Add(time.Duration(n * float64(time.Hour))) }
	for _, w := range []peba.Window{
		{Domains: all},
		{Domains: all[:1], From: h(26.8), To: h(29.1)},       // bucket minus raw, raw tail
		{Domains: all[1:], From: h(26.2), To: h(5*24 + 0.5)}, // raw lead, tail from the bucket
		{Domains: all[1:], From: h(26.2)},                    // ends now: rollup rows up to endOfTime
		{Domains: all, From: h(30), To: h(32)},               // whole hours
		{Domains: all, From: h(30), To: h(32), PeerType: "Webpage"},
		{Domains: all, Field: peba.Created, From: h(10.5), To: h(14)},
		{Domains: all, From: h(30.1), To: h(30.4)},
		{Domains: all, From: h(3), To: h(2)}, // empty
	} {
		for _, limit := range []int{0, 1, 7} {
			want, err := s.top(ctx, w, peba.DimSrcIP, limit, false)
			if err != nil {
				t.Fatal(err)
			}
			got, ok, err := s.topStream(ctx, w, peba.DimSrcIP, limit)
			if err != nil || !ok {
				t.Fatalf("topStream(%+v, %d): ok %v, %v", w, limit, ok, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("topStream(%+v, %d) =\n  %v\nwant\n  %v", w, limit, got, want)
			}
		}
	}

	defer func(n int) { topStreamMax = n }(topStreamMax)
	topStreamMax = 999
	w := peba.Window{Domains: all}
	if _, ok, err := s.topStream(ctx, w, peba.DimSrcIP, 5); err != nil || ok {
		t.Fatalf("topStream over more than topStreamMax rows: ok %v, %v", ok, err)
	}
	got, err := s.Top(ctx, w, peba.DimSrcIP, 5)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := s.top(ctx, w, peba.DimSrcIP, 5, false); len(got) != 5 || !reflect.DeepEqual(got, want) {
		t.Fatalf("Top after the fallback = %v, want %v", got, want)
	}
}
