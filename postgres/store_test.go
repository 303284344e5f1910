package postgres

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/internal/storerow"
)

var day0 = time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)

// sampleEvent returns a community event received at day0 + i ms.
func sampleEvent(i int, md5 string) peba.Event {
	t := day0.Add(time.Duration(i) * time.Millisecond)
	return peba.Event{
		ID: fmt.Sprintf("%032x", i), Domain: peba.DomainCommunity, Origin: "ews",
		ReceivedTime: t, CreateTime: t.Add(-time.Second),
		PeerIdent: "cowrie-01", PeerType: "SSH/console(cowrie)", Hostname: "h",
		SrcIP: netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), SrcPort: int32(1024 + i%60000),
		DstIP: netip.MustParseAddr("172.29.0.2"), DstPort: 22, Transport: "tcp",
		URL: "Attack on port 22/tcp", Username: "root", Password: "123456", PayloadMD5: md5,
		Fields: []peba.Attr{{Key: "input", Value: "uname -a"}},
		Src:    peba.Geo{Country: "CN", CountryName: "China", ASN: "AS4134 Chinanet", Lat: 34.77, Lon: 113.72},
		Dst:    peba.UnknownGeo,
	}
}

func mustAppend(t testing.TB, s *Store, evs ...peba.Event) peba.AppendResult {
	t.Helper()
	res, err := s.AppendEvents(context.Background(), evs)
	if err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	return res
}

func queryInt(t testing.TB, s *Store, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := s.pool.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// partitions returns the names of the events partitions, sorted.
func partitions(t testing.TB, s *Store) []string {
	t.Helper()
	rows, err := s.pool.Query(context.Background(), `SELECT c.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestConcurrentOpenMigratesOnce starts several nodes on a fresh database
// at once: all start, and each migration is applied (and recorded) once.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	dsn := openDSN(t)
	const nodes = 4
	var wg sync.WaitGroup
	stores := make([]*Store, nodes)
	errs := make([]error, nodes)
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = Open(context.Background(), dsn, Options{MaxConns: 2})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: Open: %v", i, err)
		}
		defer stores[i].Close()
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, stores[0], "SELECT count(*) FROM schema_migrations"); n != int64(len(ms)) || n == 0 {
		t.Errorf("%d migrations recorded, %d embedded", n, len(ms))
	}
	// The schema works from every node.
	for i, s := range stores {
		mustAppend(t, s, sampleEvent(i, ""))
	}
	if n := queryInt(t, stores[0], "SELECT count(*) FROM events"); n != nodes {
		t.Errorf("%d events stored, want %d", n, nodes)
	}
}

func openDSN(t testing.TB) string {
	t.Helper()
	_, dsn := openTemp(t) // creates the database (and the schema)
	return dsn
}

// TestRefusesNewerSchema: a node refuses to start against a database that
// records a migration it does not know.
func TestRefusesNewerSchema(t *testing.T) {
	s, dsn := openTemp(t)
	if _, err := s.pool.Exec(context.Background(),
		`INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future.sql')`); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(context.Background(), dsn, Options{})
	if err == nil {
		s2.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "9999") || !strings.Contains(err.Error(), "newer version") {
		t.Fatalf("Open of a newer schema: err = %v, want a clear 'newer version' error naming 9999", err)
	}
	// The existing node is unaffected.
	if err := s.Ping(context.Background()); err != nil {
		t.Error(err)
	}
}

func TestOpenBadDSN(t *testing.T) {
	_, err := Open(context.Background(), "postgres://u:secret@127.0.0.1:5432/x?sslmode=bogus", Options{})
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("Open(bad DSN) = %v; want an error that does not show the password", err)
	}
}

// TestPartitionsAndRetention checks that AppendEvents creates one
// partition per receive day, and that DeleteEventsBefore drops the
// partitions of whole days before the cutoff and deletes rows only from
// the cutoff's day, with ids, counts and rollups following.
func TestPartitionsAndRetention(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	var evs []peba.Event
	for d := range 4 {
		for h := range 24 {
			e := sampleEvent(d*100+h, "")
			e.ReceivedTime = day0.Add(time.Duration(d)*24*time.Hour + time.Duration(h)*time.Hour + 30*time.Minute)
			e.CreateTime = e.ReceivedTime.Add(-3 * time.Hour) // some created the day before
			evs = append(evs, e)
		}
	}
	mustAppend(t, s, evs...)
	want := []string{"events_p20240501", "events_p20240502", "events_p20240503", "events_p20240504"}
	if got := partitions(t, s); !slices.Equal(got, want) {
		t.Fatalf("partitions = %v, want %v", got, want)
	}
	for _, p := range want {
		if n := queryInt(t, s, "SELECT count(*) FROM "+p); n != 24 {
			t.Errorf("%s holds %d events, want 24", p, n)
		}
	}

	// Cut at day 2, 05:00: day 1 goes whole, day 2 loses 5 events.
	cut := day0.Add(29 * time.Hour)
	n, err := s.DeleteEventsBefore(ctx, cut)
	if err != nil {
		t.Fatal(err)
	}
	if n != 29 {
		t.Errorf("deleted %d, want 29", n)
	}
	if got := partitions(t, s); !slices.Equal(got, want[1:]) {
		t.Errorf("partitions after retention = %v, want %v", got, want[1:])
	}
	if n := queryInt(t, s, "SELECT count(*) FROM events_p20240502"); n != 19 {
		t.Errorf("boundary partition holds %d events, want 19", n)
	}
	if n := queryInt(t, s, "SELECT count(*) FROM event_ids"); n != 96-29 {
		t.Errorf("event_ids holds %d ids, want %d", n, 96-29)
	}
	if n := queryInt(t, s, "SELECT count(*) FROM event_ids WHERE received_time < $1", cut); n != 0 {
		t.Errorf("%d ids of deleted events left", n)
	}
	checkRollupsExact(t, s)

	// A cutoff at a day boundary drops without deleting rows; a repeat is a no-op.
	if n, err = s.DeleteEventsBefore(ctx, day0.Add(48*time.Hour)); err != nil || n != 19 {
		t.Errorf("DeleteEventsBefore(day 3) = %d, %v; want 19", n, err)
	}
	if n, err = s.DeleteEventsBefore(ctx, day0.Add(48*time.Hour)); err != nil || n != 0 {
		t.Errorf("repeated DeleteEventsBefore = %d, %v; want 0", n, err)
	}
	if got := partitions(t, s); !slices.Equal(got, want[2:]) {
		t.Errorf("partitions = %v, want %v", got, want[2:])
	}
	checkRollupsExact(t, s)

	// Old events may arrive again (an import): their partition is made anew.
	res := mustAppend(t, s, evs[0])
	if len(res.Inserted) != 1 {
		t.Errorf("re-append of a deleted event: %+v", res)
	}
	if got := partitions(t, s); !slices.Contains(got, want[0]) {
		t.Errorf("partition %s not recreated: %v", want[0], got)
	}
}

// checkRollupsExact compares every rollup key's count (summed over its
// shard rows) with the count the raw events give for it, and requires no
// rows for keys without events and no row with a count <= 0.
func checkRollupsExact(t *testing.T, s *Store) {
	t.Helper()
	checkSensorRollupExact(t, s)
	ctx := context.Background()
	for i := range rollups {
		r := &rollups[i]
		col, unit := "received_time", truncUnit(r.gran)
		if r.field == peba.Created {
			col = "create_time"
		}
		want := rollupDelta{}
		for _, dim := range r.dims {
			rows, err := s.pool.Query(ctx, fmt.Sprintf(`SELECT date_trunc('%s', %s), community, %s, count(*)
				FROM events GROUP BY 1, 2, 3, 4, 5, 6, 7`, unit, col, rawKeyColumns(dim)))
			if err != nil {
				t.Fatal(err)
			}
			k := rollupKey{dim: dim}
			var lat, lon float64
			var n int64
			if _, err := pgx.ForEachRow(rows, []any{&k.t, &k.community, &k.peerType, &k.k, &k.l, &lat, &lon, &n}, func() error {
				k.lat, k.lon = math.Float64bits(storerow.CanonFloat(lat)), math.Float64bits(storerow.CanonFloat(lon))
				want[k] += n
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		rows, err := s.pool.Query(ctx, "SELECT t, dim, community, h, peer_type, k, l, lat, lon, cnt FROM "+r.table)
		if err != nil {
			t.Fatal(err)
		}
		got := rollupDelta{}
		var (
			k        rollupKey
			dim      int16
			h        [16]byte
			lat, lon float64
			n        int64
		)
		if _, err := pgx.ForEachRow(rows, []any{&k.t, &dim, &k.community, &h, &k.peerType, &k.k, &k.l, &lat, &lon, &n}, func() error {
			k.dim = peba.Dim(dim)
			k.lat, k.lon = math.Float64bits(lat), math.Float64bits(lon)
			if h != k.hash() {
				t.Errorf("%s: row %+v has h %x, want %x", r.table, k, h, k.hash())
			}
			if n < 0 {
				t.Errorf("%s: row %+v has count %d", r.table, k, n)
			}
			got[k] += n // summed over the shards
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		// Rows of count 0 (other shards of a key that retention
		// folded) are only allowed next to a positive row of the key.
		maps.DeleteFunc(got, func(k rollupKey, n int64) bool {
			if n == 0 {
				t.Errorf("%s: key %+v has only rows of count 0", r.table, k)
			}
			return n == 0
		})
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %d rows, want %d", r.table, len(got), len(want))
			for k, n := range want {
				if got[k] != n {
					t.Errorf("  %+v: %d, want %d", k, got[k], n)
				}
			}
			for k, n := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("  %+v: %d, want no row", k, n)
				}
			}
		}
	}
}

// checkSensorRollupExact compares the sensor rollup (merged over shards)
// with the sensor groups of the raw events, per day and domain, and
// checks each row's h.
func checkSensorRollupExact(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	type row struct {
		idents, types []string
		n             int64
	}
	read := func(q string, checkHash bool) map[string]row {
		rows, err := s.pool.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]row{}
		var (
			day           time.Time
			community     bool
			h             [16]byte
			host, ip      string
			idents, types []string
			n             int64
		)
		if _, err := pgx.ForEachRow(rows, []any{&day, &community, &h, &host, &ip, &idents, &types, &n}, func() error {
			if checkHash && h != sensorHash(host, ip) {
				t.Errorf("rollup_sensor_day: row %s %q %q has h %x, want %x", day, host, ip, h, sensorHash(host, ip))
			}
			if checkHash {
				// Sensors reads a group of one row without merging.
				for _, l := range [][]string{idents, types} {
					for i := 1; i < len(l); i++ {
						if l[i-1] >= l[i] {
							t.Errorf("rollup_sensor_day: row %s %q %q: %q is not distinct and sorted", day, host, ip, l)
							break
						}
					}
				}
			}
			k := fmt.Sprintf("%s %t %q %q", day.Format(time.RFC3339), community, host, ip)
			r := out[k]
			r.idents = append(r.idents, idents...)
			r.types = append(r.types, types...)
			r.n += n
			out[k] = r
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for k, r := range out {
			slices.Sort(r.idents)
			slices.Sort(r.types)
			r.idents, r.types = slices.Compact(r.idents), slices.Compact(r.types)
			out[k] = r
		}
		return out
	}
	got := read("SELECT t, community, h, host, ip, peer_idents, peer_types, cnt FROM rollup_sensor_day", true)
	want := read(`SELECT date_trunc('day', received_time), community, '00000000-0000-0000-0000-000000000000'::uuid,
		`+sensorHostSQL+`, `+sensorIPSQL+`, array_agg(DISTINCT peer_ident), array_agg(DISTINCT peer_type), count(*)
		FROM events GROUP BY 1, 2, 4, 5`, false)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rollup_sensor_day: %d groups, want %d", len(got), len(want))
		for k, r := range want {
			if !reflect.DeepEqual(got[k], r) {
				t.Errorf("  %s: %+v, want %+v", k, got[k], r)
			}
		}
		for k, r := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("  %s: %+v, want no row", k, r)
			}
		}
	}
}

// TestResendOnAnotherDay: a resend arrives later, with a later receive
// time, so it would land in another partition: it is still a duplicate.
func TestResendOnAnotherDay(t *testing.T) {
	s, _ := openTemp(t)
	e := sampleEvent(1, "")
	mustAppend(t, s, e)
	resent := e
	resent.ReceivedTime = e.ReceivedTime.Add(3*24*time.Hour + time.Hour)
	res := mustAppend(t, s, resent, sampleEvent(2, ""))
	if len(res.Inserted) != 1 || res.Inserted[0].ID != sampleEvent(2, "").ID || res.Duplicates != 1 {
		t.Errorf("resend on another day: %d inserted, %d duplicates; want 1 (the new one), 1", len(res.Inserted), res.Duplicates)
	}
	if n := queryInt(t, s, "SELECT count(*) FROM events WHERE id = $1", e.ID); n != 1 {
		t.Errorf("event stored %d times, want once", n)
	}
}

// TestTwoNodesOverlappingAppends appends overlapping batches from two
// Stores (two nodes) on a fresh day at once: every id is stored once and
// reported inserted by exactly one call, and the concurrent partition
// creation does not fail.
func TestTwoNodesOverlappingAppends(t *testing.T) {
	a, dsn := openTemp(t)
	b, err := Open(context.Background(), dsn, Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const ids, writers = 3000, 6
	all := make([]peba.Event, ids)
	for i := range all {
		all[i] = sampleEvent(i, fmt.Sprintf("%032x", i%7))
		// Spread over three days, so several partitions are created at once.
		all[i].ReceivedTime = day0.Add(time.Duration(i) * 72 * time.Hour / ids)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[string]int{}
	)
	for w := range writers {
		s := []*Store{a, b}[w%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each writer covers all ids in batches of 250, starting at a
			// different offset and in a different order of batches.
			for j := range ids / 250 {
				start := ((j*5+w*3)%(ids/250))*250 + w*17%250
				batch := slices.Clone(all[start:min(start+250, ids)])
				slices.Reverse(batch) // a batch's order must not matter
				res, err := s.AppendEvents(context.Background(), batch)
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				mu.Lock()
				for _, e := range res.Inserted {
					seen[e.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Whatever the writers missed (offsets), append now.
	res := mustAppend(t, a, all...)
	for _, e := range res.Inserted {
		seen[e.ID]++
	}
	for _, e := range all {
		if seen[e.ID] != 1 {
			t.Fatalf("event %s reported inserted %d times", e.ID, seen[e.ID])
		}
	}
	if n := queryInt(t, a, "SELECT count(*) FROM events"); n != ids {
		t.Errorf("stored %d events, want %d", n, ids)
	}
	if n := queryInt(t, a, "SELECT count(DISTINCT id) FROM events"); n != ids {
		t.Errorf("stored %d distinct ids, want %d", n, ids)
	}
	var md5Total int64
	for i := range 7 {
		p, err := a.FindPayload(context.Background(), fmt.Sprintf("%032x", i))
		if err != nil {
			t.Fatal(err)
		}
		md5Total += p.MD5Count
	}
	if md5Total != ids {
		t.Errorf("payload counts sum to %d, want %d", md5Total, ids)
	}
	checkRollupsExact(t, a)
}

// TestRetentionDuringAppends runs retention on one node while two nodes
// append into the days being cut (old imports) and into later days: no
// call fails (no deadlock), and afterwards the rollups equal the raw
// aggregates and no event before the last cutoff is left.
func TestRetentionDuringAppends(t *testing.T) {
	ctx := context.Background()
	a, dsn := openTemp(t)
	b, err := Open(ctx, dsn, Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r := rand.New(rand.NewPCG(7, 8))
	mustAppend(t, a, randomEvents(r, 2000, 0)...)
	var wg sync.WaitGroup
	for w, s := range []*Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 9))
			for i := range 20 {
				if _, err := s.AppendEvents(ctx, randomEvents(r, 100, 10000*(w+1)+100*i)); err != nil {
					t.Errorf("node %d: append: %v", w, err)
					return
				}
			}
		}()
	}
	var last time.Time
	for h := 6; h <= 5*24; h += 19 {
		last = rollupDay.Add(time.Duration(h)*time.Hour + 7*time.Minute)
		if _, err := a.DeleteEventsBefore(ctx, last); err != nil {
			t.Errorf("retention at +%dh: %v", h, err)
		}
	}
	wg.Wait()
	if _, err := a.DeleteEventsBefore(ctx, last); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, a, "SELECT count(*) FROM events WHERE received_time < $1", last); n != 0 {
		t.Errorf("%d events before the cutoff left", n)
	}
	if n, m := queryInt(t, a, "SELECT count(*) FROM events"), queryInt(t, a, "SELECT count(*) FROM event_ids"); n != m {
		t.Errorf("%d events but %d ids", n, m)
	}
	checkRollupsExact(t, a)
}

// TestRollupShards: an append does not wait for another node's
// uncommitted append on the same (hot) rollup rows; it counts into another
// shard, readers sum the shards, and retention folds a key's shards into
// one row.
func TestRollupShards(t *testing.T) {
	ctx := context.Background()
	s, dsn := openTemp(t)
	e1 := sampleEvent(1, "")
	mustAppend(t, s, e1)

	// Another node, in the middle of an append: it holds shard 0 and has
	// updated its rows of the same keys, not yet committed.
	other, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	tx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var shard string
	if err := tx.QueryRow(ctx, claimShard, shardLockClass, int32(rollupShards)).Scan(&shard); err != nil || shard != "0" {
		t.Fatalf("the other node claimed shard %q, %v; want 0", shard, err)
	}
	for _, r := range rollups {
		if _, err := tx.Exec(ctx, "UPDATE "+r.table+" SET cnt = cnt + 1 WHERE shard = 0"); err != nil {
			t.Fatal(err)
		}
	}

	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	e2 := sampleEvent(2, "") // the same rollup keys as e1
	if _, err := s.AppendEvents(wctx, []peba.Event{e2}); err != nil {
		t.Fatalf("append while another node holds the rollup rows: %v", err)
	}
	if n := queryInt(t, s, "SELECT count(DISTINCT shard) FROM rollup_recv_hour"); n != 2 {
		t.Errorf("rollup rows in %d shards, want 2", n)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	w := peba.Window{Domains: []peba.Domain{peba.DomainCommunity}}
	if top, err := s.Top(ctx, w, peba.DimPeerType, 0); err != nil || len(top) != 1 || top[0].Count != 2 {
		t.Errorf("Top over two shards = %+v, %v; want one key counted 2", top, err)
	}
	checkRollupsExact(t, s)

	// Retention within the hour: e1 goes, the key's count is folded into
	// its first row; the other shard's row stays with count 0 (it records
	// that the shard wrote the bucket, see topBounded).
	if n, err := s.DeleteEventsBefore(ctx, e2.ReceivedTime); err != nil || n != 1 {
		t.Fatalf("DeleteEventsBefore = %d, %v; want 1", n, err)
	}
	if n := queryInt(t, s, "SELECT count(*) FROM rollup_recv_hour WHERE dim = 1 AND cnt > 0"); n != 1 {
		t.Errorf("%d rows with events for the peer type after retention, want 1 (folded)", n)
	}
	if n := queryInt(t, s, "SELECT count(*) FROM rollup_recv_hour WHERE dim = 1"); n != 2 {
		t.Errorf("%d rows for the peer type after retention, want 2 (one of count 0)", n)
	}
	checkRollupsExact(t, s)
}

// TestPartitionDroppedByAnotherNode: node A knows a day's partition; node
// B's retention drops it; A's next append into that day still succeeds.
func TestPartitionDroppedByAnotherNode(t *testing.T) {
	ctx := context.Background()
	a, dsn := openTemp(t)
	b, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	mustAppend(t, a, sampleEvent(1, ""))
	if n, err := b.DeleteEventsBefore(ctx, day0.Add(24*time.Hour)); err != nil || n != 1 {
		t.Fatalf("DeleteEventsBefore on node B = %d, %v", n, err)
	}
	if len(partitions(t, a)) != 0 {
		t.Fatalf("partition not dropped: %v", partitions(t, a))
	}
	if res := mustAppend(t, a, sampleEvent(2, "")); len(res.Inserted) != 1 {
		t.Errorf("append after the partition was dropped: %+v", res)
	}
}

// TestLiveFeedRowAndNotify listens on another connection: an append that
// inserts events notifies FeedChannel with the seq of a live_feed row that
// decodes to exactly the inserted events; an all-duplicate append adds no
// row and sends nothing.
func TestLiveFeedRowAndNotify(t *testing.T) {
	ctx := context.Background()
	s, dsn := openTemp(t)
	l, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	if _, err := l.Exec(ctx, "LISTEN "+FeedChannel); err != nil {
		t.Fatal(err)
	}
	next := func(timeout time.Duration) (*pgx.Conn, string, error) {
		wctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		n, err := l.WaitForNotification(wctx)
		if err != nil {
			return nil, "", err
		}
		return l, n.Payload, nil
	}

	first := sampleEvent(1, "")
	batch := []peba.Event{first, sampleEvent(2, "x"), first, sampleEvent(3, "")}
	batch[1].Payload = &peba.Payload{MD5: "x", Data: []byte("bytes")}
	batch[1].Password = "nul\x00byte" // json keeps \u0000 (jsonb would refuse it)
	res := mustAppend(t, s, batch...)
	_, payload, err := next(5 * time.Second)
	if err != nil {
		t.Fatalf("no notification after an append: %v", err)
	}
	seq, err := strconv.ParseInt(payload, 10, 64)
	if err != nil {
		t.Fatalf("notification payload %q is not a seq", payload)
	}
	var raw []byte
	if err := s.pool.QueryRow(ctx, "SELECT events FROM live_feed WHERE seq = $1", seq).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	got, err := DecodeFeed(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(res.Inserted)
	for i := range want {
		want[i].Payload = nil
	}
	if len(want) != 3 || !reflect.DeepEqual(got, want) {
		t.Errorf("feed row %d =\n  %+v\nwant the inserted events\n  %+v", seq, got, want)
	}

	// All duplicates: no row, no notification.
	rowsBefore := queryInt(t, s, "SELECT count(*) FROM live_feed")
	if res := mustAppend(t, s, batch...); len(res.Inserted) != 0 {
		t.Fatalf("second append inserted %d", len(res.Inserted))
	}
	if n := queryInt(t, s, "SELECT count(*) FROM live_feed"); n != rowsBefore {
		t.Errorf("all-duplicate append added %d feed rows", n-rowsBefore)
	}
	if _, p, err := next(300 * time.Millisecond); err == nil {
		t.Errorf("all-duplicate append notified %q", p)
	}
	// The listener connection is usable again after the timeout: the next
	// append's notification names the next row.
	mustAppend(t, s, sampleEvent(4, ""))
	_, payload, err = next(5 * time.Second)
	if err != nil || payload != strconv.FormatInt(seq+1, 10) {
		t.Errorf("third append: notification %q, %v; want seq %d", payload, err, seq+1)
	}

	// PruneFeed deletes rows by creation time.
	if n, err := s.PruneFeed(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Errorf("PruneFeed(an hour ago) = %d, %v; want 0", n, err)
	}
	if n, err := s.PruneFeed(ctx, time.Now().Add(time.Minute)); err != nil || n != 2 {
		t.Errorf("PruneFeed(now) = %d, %v; want 2", n, err)
	}
}

// TestStrangeStrings stores what PostgreSQL text cannot hold as is (NUL),
// the escape byte itself and keys longer than a btree entry, and reads them
// back unchanged through every path. (Non-finite coordinates never get here:
// peba.ValidateEvent refuses them.)
func TestStrangeStrings(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	longURL := "/" + strings.Repeat("a/b?c=%00&", 1000) // 10 kB
	longMD5 := strings.Repeat("f", 5000)
	a := sampleEvent(1, longMD5)
	a.URL = longURL
	a.Payload = &peba.Payload{MD5: longMD5, FuzzyHash: strings.Repeat("z", 4000), MIME: "x/y"}
	b := sampleEvent(2, "")
	b.ID = "id\x00with\x01nul"
	b.URL = "/\x00"
	b.Username, b.Password = "\x00\x00", "a\x01\x02b\x00"
	b.PeerType = "type\x00"
	b.Fields = []peba.Attr{{Key: "k\x00", Value: "v\x00\x01"}}
	c := sampleEvent(3, "")
	c.URL = "/\x01" // sorts after "/\x00", before "/\x02" and "/a"
	d := sampleEvent(4, "")
	d.URL = "/\x02"
	res := mustAppend(t, s, a, b, c, d)
	if len(res.Inserted) != 4 {
		t.Fatalf("inserted %d, want 4", len(res.Inserted))
	}
	evs, _, err := s.FindEvents(ctx, peba.EventFilter{ID: b.ID})
	if err != nil || len(evs) != 1 {
		t.Fatalf("FindEvents(NUL id) = %v, %v", evs, err)
	}
	got := evs[0]
	if got.URL != b.URL || got.Username != b.Username || got.Password != b.Password || got.PeerType != b.PeerType ||
		!reflect.DeepEqual(got.Fields, b.Fields) {
		t.Errorf("NUL event read back as %+v", got)
	}
	if evs, _, _ := s.FindEvents(ctx, peba.EventFilter{ID: a.ID}); len(evs) != 1 || evs[0].URL != longURL || evs[0].PayloadMD5 != longMD5 {
		t.Errorf("long-field event not read back")
	}
	if p, err := s.FindPayload(ctx, longMD5); err != nil || p.MD5 != longMD5 || p.MD5Count != 1 {
		t.Errorf("FindPayload(long md5) = %+v, %v", p, err)
	}
	// A resend is still recognized.
	if res := mustAppend(t, s, a, b); res.Duplicates != 2 {
		t.Errorf("resend of strange events: %d duplicates, want 2", res.Duplicates)
	}
	all := peba.Window{Domains: []peba.Domain{peba.DomainCommunity}}
	top, err := s.Top(ctx, all, peba.DimURL, 0)
	if err != nil {
		t.Fatal(err)
	}
	wantTop := []peba.Bucket{{Key: "/\x00", Count: 1}, {Key: "/\x01", Count: 1}, {Key: "/\x02", Count: 1}, {Key: longURL, Count: 1}}
	if !reflect.DeepEqual(top, wantTop) {
		t.Errorf("Top(URL) = %+v, want %+v (byte order, NUL first)", top, wantTop)
	}
	pts, err := s.Series(ctx, all, 24*time.Hour, peba.DimURL, []string{"/\x00", longURL})
	if err != nil || len(pts) != 2 || pts[0].Key != "/\x00" || pts[1].Key != longURL {
		t.Errorf("Series(URL keys) = %+v, %v", pts, err)
	}
	if c, err := s.Count(ctx, peba.Window{Domains: all.Domains, PeerType: "type\x00"}); err != nil || c != 1 {
		t.Errorf("Count(peer type with NUL) = %d, %v; want 1", c, err)
	}
	groups, err := s.Sensors(ctx, all)
	if err != nil || len(groups) != 1 || !slices.Contains(groups[0].PeerType, "type\x00") {
		t.Errorf("Sensors = %+v, %v", groups, err)
	}
	checkRollupsExact(t, s)
}

func TestPayloadBytes(t *testing.T) {
	s, _ := openTemp(t)
	const md5 = "5d41402abc4b2a76b9719d911017c592"
	if _, err := s.Get(md5); peba.ErrorCode(err) != peba.ENOTFOUND {
		t.Errorf("Get(missing) error = %v, want code %q", err, peba.ENOTFOUND)
	}
	if err := s.Put(md5, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	// Idempotent: a second Put (another node, a resend) changes nothing.
	if err := s.Put(md5, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Get(md5); err != nil || string(b) != "hello" {
		t.Errorf("Get = %q, %v", b, err)
	}
	if err := s.Put("../etc/passwd", []byte("x")); peba.ErrorCode(err) != peba.EINVALID {
		t.Errorf("Put(bad md5) error = %v, want code %q", err, peba.EINVALID)
	}
	const empty = "d41d8cd98f00b204e9800998ecf8427e"
	if err := s.Put(empty, nil); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Get(empty); err != nil || b == nil || len(b) != 0 {
		t.Errorf("Get(empty payload) = %v, %v; want empty, non-nil", b, err)
	}
}

func TestClosed(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendEvents(ctx, []peba.Event{sampleEvent(1, "")}); peba.ErrorCode(err) != peba.EUNAVAILABLE {
		t.Errorf("append after Close: %v, want code %q", err, peba.EUNAVAILABLE)
	}
	if err := s.Ping(ctx); peba.ErrorCode(err) != peba.EUNAVAILABLE {
		t.Errorf("Ping after Close: %v, want code %q", err, peba.EUNAVAILABLE)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
