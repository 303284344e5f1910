package duckdb

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/peba-go/peba"
)

// The recent times take batches in order and out of order (ties after the
// times already there), stay sorted, keep only the newest recentTimesMax,
// and at the cap slide through one array instead of moving to a new one.
func TestRecentTimesInsertAndSlide(t *testing.T) {
	defer func(m int, d time.Duration) { recentTimesMax, recentSpan = m, d }(recentTimesMax, recentSpan)
	recentTimesMax, recentSpan = 1000, 100*365*24*time.Hour
	r := rand.New(rand.NewPCG(1, 2))
	c := &recentTimes{valid: true}
	var want []recentEvent // the reference: everything, stably sorted by time
	now := time.Now().UnixMicro()
	var arrays int
	var last *recentEvent
	for round := range 5000 {
		add := make([]recentEvent, 1+r.IntN(20))
		start := now + int64(round)*100 - int64(r.IntN(3))*150 // some batches are late
		for i := range add {
			add[i] = recentEvent{start + int64(i*5+r.IntN(5)), uint64(round)}
		}
		slices.SortStableFunc(add, cmpRecent)
		d := r.IntN(2)
		if d == 1 {
			want = append(want, add...)
			slices.SortStableFunc(want, cmpRecent)
		}
		c.insert(d, add)
		c.trim(time.UnixMicro(now))
		if round > 1000 && &c.base[1][:1][0] != last {
			arrays++
		}
		last = &c.base[1][:1][0]
	}
	if n := len(c.ev[0]) + len(c.ev[1]); n != recentTimesMax {
		t.Fatalf("%d times kept, want %d", n, recentTimesMax)
	}
	got := c.ev[1]
	tail := want[len(want)-len(got):]
	if !slices.Equal(got, tail) {
		t.Fatalf("community times differ from the newest of the reference (first %v vs %v)", got[0], tail[0])
	}
	if arrays > 0 {
		t.Errorf("at the cap the times moved to a new array %d times", arrays)
	}
}

// loadTimes reads, in ranges of at most loadTimesPage events (one second
// may hold more), exactly the events received since a whole second from
// which at most recentTimesMax are newer, and nothing older: before, one
// GROUP BY query over the whole day exceeded DuckDB's memory limit on a
// day of millions of events, and every Count that needed the times failed.
func TestRecentTimesLoadInRanges(t *testing.T) {
	defer func(m, p int) { recentTimesMax, loadTimesPage = m, p }(recentTimesMax, loadTimesPage)
	recentTimesMax, loadTimesPage = 300, 40
	s, _ := openTemp(t, Options{})
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	var evs []peba.Event
	add := func(at time.Time) {
		e := sampleEvent(len(evs), "")
		e.ReceivedTime = at
		if len(evs)%3 == 0 {
			e.Domain = peba.DomainPrivate
		}
		if len(evs)%7 == 0 {
			e.SrcIP = netip.MustParseAddr("2001:db8::7")
		}
		evs = append(evs, e)
	}
	for i := range 250 { // one every 17 s from ~2 h ago
		add(now.Add(-2*time.Hour + time.Duration(i)*17*time.Second + time.Duration(i)*time.Microsecond))
	}
	for i := range 60 { // one second holding more than a page
		add(now.Add(-40*time.Minute + time.Duration(i)*time.Millisecond))
	}
	for i := range 150 { // the last minutes
		add(now.Add(-5*time.Minute + time.Duration(i)*time.Second))
	}
	if _, err := s.AppendEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}

	for _, max := range []int{300, 1000} { // the cap crossed, and not
		recentTimesMax = max
		s.mu.Lock()
		s.forgetTimes()
		s.mu.Unlock()
		if err := s.loadTimes(ctx); err != nil {
			t.Fatalf("cap %d: %v", max, err)
		}
		c := &s.times
		if !c.valid || len(c.names.ids) == 0 {
			t.Fatalf("cap %d: times not loaded", max)
		}
		var want [2][]recentEvent
		var older int
		for _, e := range evs {
			us := e.ReceivedTime.UnixMicro()
			if us >= c.lo {
				d := domainIndex(e.Domain)
				want[d] = append(want[d], recentEvent{us, c.names.key(e.SrcIP)})
			} else if us >= c.lo-1_000_000 {
				older++
			}
		}
		n := 0
		for d := range want {
			slices.SortFunc(want[d], cmpRecent)
			got := c.ev[d]
			if !slices.Equal(got, want[d]) {
				t.Errorf("cap %d, domain %d: %d times loaded, want the %d received since %d", max, d, len(got), len(want[d]), c.lo)
			}
			n += len(got)
		}
		switch {
		case n > max:
			t.Errorf("cap %d: %d times loaded", max, n)
		case max < len(evs) && (c.lo%1_000_000 != 0 || n+older <= max):
			t.Errorf("cap %d: loaded from %d, not the oldest whole second that fits (%d loaded, %d in the second before)", max, c.lo, n, older)
		case max >= len(evs) && n != len(evs):
			t.Errorf("cap %d: %d of %d times loaded", max, n, len(evs))
		}
	}
}

// The recent times of a day of events from as many sources load within a
// small memory limit: the single GROUP BY of before ran out of DuckDB
// memory here (and at 128MB on a day of 2.7M such events), so that the
// times were never loaded and Count failed.
func TestRecentTimesLoadUnderMemoryLimit(t *testing.T) {
	defer func(p int) { loadTimesPage = p }(loadTimesPage)
	loadTimesPage = 20_000
	s, path := openTemp(t, Options{})
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	const n = 150_000
	for i := 0; i < n; i += 10_000 {
		if _, err := s.AppendEvents(ctx, benchLikeEvents(r, 10_000, i, time.Now().UTC().Add(-time.Hour))); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s, err := Open(path, Options{MemoryLimit: "12MB"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Open loads the times in the background; wait for it, or load them.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if err := s.loadTimes(ctx); err != nil {
			t.Fatal(err)
		}
		s.times.mu.RLock()
		valid, got := s.times.valid, len(s.times.ev[0])+len(s.times.ev[1])
		s.times.mu.RUnlock()
		if valid {
			if got != n {
				t.Fatalf("%d times loaded, want %d", got, n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("times not loaded")
		}
	}
}

// Open loads the recent times in the background unless NoWarm is set
// (commands other than serve): then they stay unloaded until first used.
func TestOpenWarmsUnlessNoWarm(t *testing.T) {
	s, path := openTemp(t, Options{})
	evs := []peba.Event{sampleEvent(1, "")}
	evs[0].ReceivedTime = time.Now().UTC()
	if _, err := s.AppendEvents(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	s.Close()
	loaded := func(s *Store) bool {
		s.times.mu.RLock()
		defer s.times.mu.RUnlock()
		return s.times.valid
	}
	for _, noWarm := range []bool{true, false} {
		s, err := Open(path, Options{NoWarm: noWarm})
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for !loaded(s) && time.Now().Before(deadline) && !noWarm {
			time.Sleep(10 * time.Millisecond)
		}
		if noWarm {
			time.Sleep(300 * time.Millisecond) // what a warm-up would take here
		}
		if got := loaded(s); got == noWarm {
			t.Errorf("NoWarm %v: times loaded %v", noWarm, got)
		}
		s.Close()
	}
}
