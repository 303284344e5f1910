package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/storetest"
)

// topsEvents returns n events received in time order over days days from
// rollupDay, shaped like /alert/tops' data: hot ports and URLs (Webpage),
// a tail of ports and URLs seen once or twice, a fifth private.
func topsEvents(r *rand.Rand, n, first, days int) []peba.Event {
	out := make([]peba.Event, n)
	span := int64(time.Duration(days) * 24 * time.Hour)
	for i := range out {
		e := sampleEvent(first+i, "")
		e.ReceivedTime = rollupDay.Add(time.Duration(span / int64(n) * int64(i)))
		if r.IntN(8) == 0 { // exactly on a bucket start
			e.ReceivedTime = e.ReceivedTime.Truncate(time.Hour)
		}
		e.CreateTime = e.ReceivedTime
		if r.IntN(5) == 0 {
			e.Domain = peba.DomainPrivate
		}
		e.PeerType = []string{"Webpage", "Webpage", "SSH/console(cowrie)"}[r.IntN(3)]
		switch x := r.IntN(20); {
		case x < 8:
			e.DstPort, e.URL = 22, "/"
		case x < 12:
			e.DstPort, e.URL = 445, "/login"
		case x < 14:
			e.DstPort, e.URL = 80, "/a.php"
		case x < 15:
			e.DstPort, e.URL = peba.NoPort, ""
		default:
			e.DstPort, e.URL = int32(1000+r.IntN(3000)), fmt.Sprintf("/tail%d", r.IntN(3000))
		}
		out[i] = e
	}
	return out
}

// checkTops compares Top and Series of ports and URLs with the raw answers
// on the windows of /alert/tops ending at now and on random windows, and
// returns how many Tops the summaries proved.
func checkTops(t *testing.T, s *Store, r *rand.Rand, now time.Time, windows int) (fast int) {
	t.Helper()
	ctx := context.Background()
	sod := now.Truncate(24 * time.Hour)
	var ws []peba.Window
	for _, from := range []time.Time{now.Add(-24 * time.Hour).Truncate(time.Second), sod.AddDate(0, 0, -6), sod.AddDate(0, 0, -27)} {
		for _, ds := range [][]peba.Domain{{peba.DomainCommunity}, {peba.DomainCommunity, peba.DomainPrivate}} {
			ws = append(ws, peba.Window{Domains: ds, Field: peba.Received, From: from})
			ws = append(ws, peba.Window{Domains: ds, Field: peba.Received, From: from, PeerType: "Webpage"})
		}
	}
	for range windows {
		w := storetest.RandomWindow(r, rollupDay)
		w.Field = peba.Received
		ws = append(ws, w)
	}
	for _, w := range ws {
		for _, d := range []peba.Dim{peba.DimURL, peba.DimDstPort} {
			limit := []int{1, 3, 10, 30}[r.IntN(4)]
			want, err := s.top(ctx, w, d, limit, false)
			if err != nil {
				t.Fatal(err)
			}
			if got, ok, err := s.topHeavy(ctx, w, d, limit); err != nil {
				t.Fatal(err)
			} else if ok {
				fast++
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("topHeavy(%+v, dim %d, %d) =\n  %v\nraw\n  %v", w, d, limit, got, want)
				}
			}
			if got, err := s.top(ctx, w, d, limit, true); err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("Top(%+v, dim %d, %d) = %v, %v\nraw\n  %v", w, d, limit, got, err, want)
			}
			keys := []string{"no such key"}
			for _, b := range want {
				keys = append(keys, b.Key)
			}
			for _, width := range []time.Duration{time.Hour, 6 * time.Hour, 24 * time.Hour} {
				got, err := s.series(ctx, w, width, d, keys, true)
				if err != nil {
					t.Fatal(err)
				}
				want, err := s.series(ctx, w, width, d, keys, false)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("Series(%+v, %s, dim %d, %q) =\n  %v with summaries\n  %v raw", w, width, d, keys, got, want)
				}
			}
		}
	}
	return fast
}

// topsStale returns the stale buckets.
func topsStale(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow("SELECT count(*) FROM tops_stale").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTopsSummary fills a store in time order, so that hours and days
// close as batches arrive, then appends late events into closed buckets
// and runs retention, and checks after each step that Top and Series of
// ports and URLs equal the raw answers, that the summaries proved the tops
// windows, and at the end that the maintained summaries equal the
// migration's backfill.
func TestTopsSummary(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t, Options{Threads: 2})
	r := rand.New(rand.NewPCG(11, 12))
	evs := topsEvents(r, 6000, 0, 4)
	for i := 0; i < len(evs); i += 150 {
		if _, err := s.AppendEvents(ctx, evs[i:min(i+150, len(evs))]); err != nil {
			t.Fatal(err)
		}
	}
	now := evs[len(evs)-1].ReceivedTime
	if fast := checkTops(t, s, r, now, 10); fast < 12 {
		t.Errorf("the summaries proved %d Tops, want at least 12 of the 24 tops windows", fast)
	}
	if n := topsStale(t, s); n != 0 {
		t.Errorf("%d stale buckets after appends in time order", n)
	}

	// Late events: a few into closed buckets (summarized again by the same
	// append), then many (more than an append summarizes: read from the
	// rollups until later appends catch up).
	late := topsEvents(r, 40, 100_000, 1)
	for i := range late {
		late[i].ReceivedTime = rollupDay.Add(24*time.Hour + time.Duration(i%3)*time.Hour)
	}
	if _, err := s.AppendEvents(ctx, late); err != nil {
		t.Fatal(err)
	}
	if n := topsStale(t, s); n != 0 {
		t.Errorf("%d stale buckets after a late batch into 3 hours and a day", n)
	}
	checkTops(t, s, r, now, 5)
	late = topsEvents(r, 300, 200_000, 3)
	if _, err := s.AppendEvents(ctx, late); err != nil {
		t.Fatal(err)
	}
	if n := topsStale(t, s); n == 0 {
		t.Error("no stale buckets after a late batch into 3 days")
	}
	checkTops(t, s, r, now, 10)

	// Retention at an unaligned time.
	cut := rollupDay.Add(37*time.Hour + 17*time.Minute + 3*time.Microsecond)
	if _, err := s.DeleteEventsBefore(ctx, cut); err != nil {
		t.Fatal(err)
	}
	checkTops(t, s, r, now, 10)
	// A late event before the cut, then new events one by one: those of
	// the current hour (topsHint's fast path) and those that close it.
	if _, err := s.AppendEvents(ctx, topsEvents(r, 50, 300_000, 1)[:1]); err != nil {
		t.Fatal(err)
	}
	next := topsEvents(r, 20, 400_000, 1)
	for i := range next {
		next[i].ReceivedTime = now.Add(time.Duration(i+1) * 10 * time.Minute)
		if _, err := s.AppendEvents(ctx, next[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}
	checkTops(t, s, r, next[len(next)-1].ReceivedTime, 5)

	// Once the stale buckets are summarized, the summaries equal the
	// backfill of 0006.
	for topsStale(t, s) > 0 {
		s.mu.Lock()
		err := s.inTx(ctx, func() error { _, err := s.summarizeStale(ctx); return err })
		s.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
	}
	maintained := storedTops(t, s.db)
	for _, table := range topsTables {
		if _, err := s.db.Exec("DROP TABLE " + table); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.db.Exec("DELETE FROM schema_migrations WHERE version = 6"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if backfilled := storedTops(t, s.db); !slices.Equal(maintained, backfilled) {
		t.Errorf("maintained summaries (%d rows) differ from the backfill (%d rows)", len(maintained), len(backfilled))
		for i := range min(len(maintained), len(backfilled)) {
			if maintained[i] != backfilled[i] {
				t.Errorf("first difference:\n  maintained %s\n  backfilled %s", maintained[i], backfilled[i])
				break
			}
		}
	}
}

// storedTops returns the rows of the summaries and tops_state, sorted.
func storedTops(t *testing.T, db *sql.DB) []string {
	t.Helper()
	var out []string
	for _, table := range []string{"tops_hour", "tops_day"} {
		rows, err := db.Query("SELECT t, dim, community, peer_type, k, cnt FROM " + table)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var (
				ts    time.Time
				dim   uint8
				comm  bool
				pt, k string
				cnt   int64
			)
			if err := rows.Scan(&ts, &dim, &comm, &pt, &k, &cnt); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%s %s %d %v %q %q %d", table, ts.UTC().Format(time.RFC3339), dim, comm, pt, k, cnt))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	var done sql.NullTime
	if err := db.QueryRow("SELECT done FROM tops_state").Scan(&done); err != nil {
		t.Fatal(err)
	}
	out = append(out, fmt.Sprint("done ", done.Time.UTC()))
	slices.Sort(out)
	return out
}
