package duckdb

import (
	"context"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/storetest"
)

// memoVersions returns a copy of the memo's hour versions and retention
// version.
func memoVersions(s *Store) (map[memoHour]uint64, uint64) {
	s.memo.vmu.Lock()
	defer s.memo.vmu.Unlock()
	out := make(map[memoHour]uint64, len(s.memo.vers))
	for h, v := range s.memo.vers {
		out[h] = v
	}
	return out, s.memo.all
}

// checkMemo compares answers served with the memo (twice: the first may
// fill it) with raw answers on random windows, and returns the memo's hits.
func checkMemo(t *testing.T, s *Store, r *rand.Rand, windows int) int64 {
	t.Helper()
	ctx := context.Background()
	for range 2 {
		checkRollupsMatchRaw(t, s, r, windows)
		for range windows {
			w := storetest.RandomWindow(r, rollupDay)
			got, ok, err := s.countMemo(ctx, w)
			if err != nil {
				t.Fatal(err)
			}
			want, err := s.count(ctx, w, false)
			if err != nil {
				t.Fatal(err)
			}
			if ok && got != want {
				t.Fatalf("Count(%+v) = %d with the memo, %d raw", w, got, want)
			}
		}
	}
	h, _ := s.MemoStats()
	return h[0] + h[1]
}

// TestMemoMatchesRaw checks answers served with the closed-bucket memo
// against raw answers while the data changes under it: current events
// (which must not invalidate anything), late events into closed buckets,
// an import of old events, hours closing and retention.
func TestMemoMatchesRaw(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t, Options{Threads: 2})
	var mu sync.Mutex
	clock := rollupDay.Add(3*24*time.Hour + 30*time.Minute)
	s.memo.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	setClock := func(c time.Time) { mu.Lock(); clock = c; mu.Unlock() }
	for i := range s.memo.mark {
		s.memo.mark[i].Store(0) // Open moved them to the real time
	}
	r := rand.New(rand.NewPCG(3, 4))
	evs := randomEvents(r, 4000, 0)
	var old, current, late []peba.Event
	for _, e := range evs {
		switch {
		case e.ReceivedTime.Before(clock.Add(-2*time.Hour)) && e.CreateTime.Before(clock.Add(-2*time.Hour)):
			if len(old) < 2000 {
				old = append(old, e)
			} else {
				late = append(late, e)
			}
		case !e.ReceivedTime.Before(clock) && !e.CreateTime.Before(clock):
			current = append(current, e)
		}
	}
	if len(late) < 100 || len(current) < 100 {
		t.Fatalf("test data: %d late, %d current events", len(late), len(current))
	}
	appendAll := func(evs []peba.Event) {
		t.Helper()
		for i := 0; i < len(evs); i += 300 {
			if _, err := s.AppendEvents(ctx, evs[i:min(i+300, len(evs))]); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendAll(old)
	hits := checkMemo(t, s, r, 8)
	if hits == 0 {
		t.Fatal("the memo was not used")
	}

	// Current events are in open buckets: no version changes, and the
	// memo keeps serving (and the answers include them).
	vers, all := memoVersions(s)
	appendAll(current)
	if v, a := memoVersions(s); !reflect.DeepEqual(v, vers) || a != all {
		t.Fatalf("appending current events invalidated the memo: %v %d -> %v %d", vers, all, v, a)
	}
	if h := checkMemo(t, s, r, 8); h <= hits {
		t.Fatal("the memo was not used after current events")
	} else {
		hits = h
	}

	// Late events into closed buckets: their hours' versions change.
	appendAll(late[:len(late)/2])
	if v, _ := memoVersions(s); reflect.DeepEqual(v, vers) {
		t.Fatal("late events did not invalidate the memo")
	}
	hits = checkMemo(t, s, r, 8)

	// Hours close: the marks move on, the memo covers more.
	setClock(clock.Add(5 * time.Hour))
	hits = checkMemo(t, s, r, 8)

	// An import of old events (before all others), and the rest late.
	imp := randomEvents(r, 300, 10000)
	for i := range imp {
		imp[i].ReceivedTime = imp[i].ReceivedTime.Add(-2 * 24 * time.Hour)
		imp[i].CreateTime = imp[i].CreateTime.Add(-2 * 24 * time.Hour)
	}
	appendAll(imp)
	appendAll(late[len(late)/2:])
	checkMemo(t, s, r, 8)

	// Retention at an unaligned time.
	_, all = memoVersions(s)
	if _, err := s.DeleteEventsBefore(ctx, rollupDay.Add(29*time.Hour+7*time.Minute+5*time.Microsecond)); err != nil {
		t.Fatal(err)
	}
	if _, a := memoVersions(s); a == all || a%2 != 0 {
		t.Fatalf("retention: version %d -> %d", all, a)
	}
	checkMemo(t, s, r, 8)
	if h := checkMemo(t, s, r, 4); h <= hits {
		t.Fatal("the memo was not used at the end")
	}
}

// TestMemoProtocol checks the reader protocol: a read that overlaps a
// committing write into its range does not use the memo, and one during
// which such a write commits is invalid.
func TestMemoProtocol(t *testing.T) {
	s, _ := openTemp(t, Options{})
	h := memoHour{0, 10 * hourUS}
	r, ok := s.beginMemo(0, 0, 100*hourUS)
	if !ok {
		t.Fatal("beginMemo: not ok on an idle store")
	}
	// A write into another field or range does not disturb the read.
	s.mu.Lock()
	s.memo.dirty[memoHour{1, 10 * hourUS}] = true
	s.memo.dirty[memoHour{0, 200 * hourUS}] = true
	s.memoPreCommit()
	if !r.valid() {
		t.Fatal("a write elsewhere invalidated the read")
	}
	s.memoPostCommit()
	s.mu.Unlock()
	if !r.valid() {
		t.Fatal("a write elsewhere invalidated the read")
	}
	// A write into the range: reads that begin while it commits do not
	// use the memo; reads that began before are invalid after.
	s.mu.Lock()
	s.memo.dirty[h] = true
	s.memoPreCommit()
	if _, ok := s.beginMemo(0, 0, 100*hourUS); ok {
		t.Fatal("beginMemo while a write into the range commits")
	}
	if r.valid() {
		t.Fatal("read valid while a write into its range commits")
	}
	s.memoPostCommit()
	s.mu.Unlock()
	if r.valid() {
		t.Fatal("read valid after a write into its range")
	}
	r2, ok := s.beginMemo(0, 0, 100*hourUS)
	if !ok || r2.key("x") == r.key("x") {
		t.Fatal("a read after the write has the old key")
	}
	// A rolled-back write changes nothing.
	s.mu.Lock()
	s.memo.dirty[h] = true
	s.memoPostCommit()
	s.mu.Unlock()
	if !r2.valid() {
		t.Fatal("a rolled-back write invalidated the read")
	}
}

// TestMemoConcurrentLate reads with the memo while late events are
// appended into the closed buckets it reads, then checks that what it kept
// is exact: an entry read across a commit must not survive.
func TestMemoConcurrentLate(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t, Options{Threads: 2})
	clock := rollupDay.Add(5 * 24 * time.Hour)
	s.memo.now = func() time.Time { return clock }
	for i := range s.memo.mark {
		s.memo.mark[i].Store(0)
	}
	r := rand.New(rand.NewPCG(5, 6))
	evs := randomEvents(r, 3000, 0)
	if _, err := s.AppendEvents(ctx, evs[:1000]); err != nil {
		t.Fatal(err)
	}
	var windows []peba.Window
	for range 6 {
		windows = append(windows, storetest.RandomWindow(r, rollupDay))
	}
	dims := []peba.Dim{peba.DimPeerType, peba.DimSrcCountry, peba.DimSrcLocation, peba.DimDstPort, peba.DimURL}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1000; i < len(evs); i += 50 {
			if _, err := s.AppendEvents(ctx, evs[i:i+50]); err != nil {
				t.Error(err)
				return
			}
		}
		close(done)
	}()
	for reads := 0; ; reads++ {
		select {
		case <-done:
			wg.Wait()
			if reads == 0 {
				t.Fatal("no reads during the appends")
			}
			for _, w := range windows {
				for _, d := range dims {
					got, err := s.top(ctx, w, d, 2, true)
					if err != nil {
						t.Fatal(err)
					}
					want, err := s.top(ctx, w, d, 2, false)
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("Top(%+v, dim %d) after concurrent late appends =\n  %v with the memo\n  %v raw", w, d, got, want)
					}
					gotS, err := s.series(ctx, w, time.Hour, peba.DimNone, nil, true)
					if err != nil {
						t.Fatal(err)
					}
					wantS, err := s.series(ctx, w, time.Hour, peba.DimNone, nil, false)
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(gotS, wantS) {
						t.Fatalf("Series(%+v) after concurrent late appends differs", w)
					}
				}
			}
			return
		default:
		}
		w := windows[reads%len(windows)]
		if _, err := s.Top(ctx, w, dims[reads%len(dims)], 2); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Series(ctx, w, time.Hour, peba.DimNone, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// A partial first hour of more than hourEventsMax events is not read into
// the memo event by event: countMemo declines, and Count answers from the
// tables, the same.
func TestMemoLeavesCrowdedHoursToTheTables(t *testing.T) {
	defer func(n int) { hourEventsMax = n }(hourEventsMax)
	ctx := context.Background()
	s, _ := openTemp(t, Options{Threads: 2})
	clock := rollupDay.Add(3*24*time.Hour + 30*time.Minute)
	s.memo.now = func() time.Time { return clock }
	for i := range s.memo.mark {
		s.memo.mark[i].Store(0) // Open moved them to the real time
	}
	var old []peba.Event
	for _, e := range randomEvents(rand.New(rand.NewPCG(5, 6)), 3000, 0) {
		if e.ReceivedTime.Before(clock.Add(-2*time.Hour)) && e.CreateTime.Before(clock.Add(-2*time.Hour)) {
			old = append(old, e)
		}
	}
	if _, err := s.AppendEvents(ctx, old); err != nil {
		t.Fatal(err)
	}
	w := peba.Window{Domains: []peba.Domain{peba.DomainCommunity, peba.DomainPrivate},
		From: rollupDay.Add(36*time.Hour + 17*time.Minute), To: rollupDay.Add(60 * time.Hour)}
	want, err := s.count(ctx, w, false)
	if err != nil {
		t.Fatal(err)
	}
	hourEventsMax = 1
	if n, ok, err := s.countMemo(ctx, w); err != nil || ok {
		t.Errorf("countMemo with hourEventsMax 1: %d, %v, %v; want it to decline", n, ok, err)
	}
	if n, err := s.Count(ctx, w); err != nil || n != want {
		t.Errorf("Count with hourEventsMax 1: %d, %v; want %d", n, err, want)
	}
	hourEventsMax = 1_000_000
	if n, ok, err := s.countMemo(ctx, w); err != nil || !ok || n != want {
		t.Errorf("countMemo: %d, %v, %v; want %d from the memo", n, ok, err, want)
	}
}
