package ratelimit

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestTake(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	l := New(10, 20, 100, c.now) // 10/s, burst 20
	if w := l.Take("a", 20); w != 0 {
		t.Fatalf("full bucket refused 20: wait %v", w)
	}
	if w := l.Take("a", 1); w != 100*time.Millisecond {
		t.Fatalf("empty bucket: wait %v, want 100ms", w)
	}
	if w := l.Take("b", 5); w != 0 {
		t.Fatal("keys are independent")
	}
	c.add(500 * time.Millisecond) // 5 tokens back
	if w := l.Take("a", 5); w != 0 {
		t.Fatalf("refilled bucket refused: %v", w)
	}
	if w := l.Take("a", 3); w != 300*time.Millisecond {
		t.Fatalf("wait %v, want 300ms", w)
	}
	// More than the burst: allowed on a full bucket, leaves debt.
	c.add(10 * time.Second)
	if w := l.Take("a", 50); w != 0 {
		t.Fatalf("oversized request on a full bucket refused: %v", w)
	}
	if w := l.Wait("a"); w != 3100*time.Millisecond {
		t.Fatalf("debt of 30 tokens: wait %v, want 3.1s", w)
	}
	if w := l.Wait("unknown"); w != 0 {
		t.Fatalf("unknown key waits %v", w)
	}
	l.Refund("a", 1000)
	if w := l.Take("a", 20); w != 0 {
		t.Fatalf("refund did not restore the bucket: %v", w)
	}
}

func TestNilAllowsEverything(t *testing.T) {
	l := New(0, 10, 10, nil)
	if l != nil {
		t.Fatal("rate 0 must disable the limiter")
	}
	if l.Take("x", 1e9) != 0 || l.Wait("x") != 0 || l.Len() != 0 {
		t.Fatal("nil limiter limited")
	}
	l.Refund("x", 1)
}

func TestBoundedKeys(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	l := New(1, 10, 1000, c.now)
	for i := range 100000 {
		l.Take(strconv.Itoa(i), 5)
	}
	if n := l.Len(); n > 1000 {
		t.Fatalf("%d keys held, bound 1000", n)
	}
	// Idle, refilled buckets are dropped first: an active one survives.
	c.add(time.Minute)
	l.Take("active", 10)
	for i := range 500 {
		l.Take("new"+strconv.Itoa(i), 1)
	}
	if l.Wait("active") == 0 {
		t.Fatal("active bucket forgotten while idle ones were dropped")
	}
	if n := l.Len(); n != 501 {
		t.Fatalf("%d keys, want the 501 active ones", n)
	}
}

func BenchmarkTake(b *testing.B) {
	l := New(1e9, 1e9, 1<<16, nil)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.Take(strconv.Itoa(i&1023), 100)
			i++
		}
	})
}
