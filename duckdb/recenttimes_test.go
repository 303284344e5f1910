package duckdb

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
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
