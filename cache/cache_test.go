package cache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func get(t *testing.T, c Cache, key string) (string, bool) {
	t.Helper()
	v, ok, err := c.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return string(v), ok
}

func set(t *testing.T, c Cache, key, val string, ttl time.Duration) {
	t.Helper()
	if err := c.Set(context.Background(), key, []byte(val), ttl); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
}

func TestMemoryTTL(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	m := NewMemory(1<<20, clk.now)
	set(t, m, "a", "1", 10*time.Second)
	if v, ok := get(t, m, "a"); !ok || v != "1" {
		t.Fatalf("fresh entry: got %q %v", v, ok)
	}
	clk.add(9 * time.Second)
	if _, ok := get(t, m, "a"); !ok {
		t.Fatal("entry gone before its TTL")
	}
	clk.add(time.Second)
	if _, ok := get(t, m, "a"); ok {
		t.Fatal("entry served at its TTL")
	}
	if m.Len() != 0 {
		t.Fatalf("expired entry kept: Len = %d", m.Len())
	}
}

func TestMemoryBoundAndLRU(t *testing.T) {
	val := string(make([]byte, 100))
	cost := int64(1 + len(val) + entryOverhead)
	m := NewMemory(3*cost, nil)
	set(t, m, "a", val, time.Hour)
	set(t, m, "b", val, time.Hour)
	set(t, m, "c", val, time.Hour)
	get(t, m, "a") // a is now more recently used than b
	set(t, m, "d", val, time.Hour)
	if _, ok := get(t, m, "b"); ok {
		t.Fatal("least recently used entry not evicted")
	}
	for _, k := range []string{"a", "c", "d"} {
		if _, ok := get(t, m, k); !ok {
			t.Fatalf("%s evicted instead of the LRU entry", k)
		}
	}
	if m.size > m.max {
		t.Fatalf("size %d exceeds bound %d", m.size, m.max)
	}
	if err := m.Set(context.Background(), "huge", make([]byte, 4*cost), time.Hour); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized value: err = %v, want ErrTooLarge", err)
	}
	// Replacing a key does not leak its old size.
	for i := 0; i < 100; i++ {
		set(t, m, "a", val, time.Hour)
	}
	if m.size != 3*cost {
		t.Fatalf("size after replacements = %d, want %d", m.size, 3*cost)
	}
}

func TestLoaderSingleFlight(t *testing.T) {
	l := NewLoader(NewMemory(1<<20, nil), nil)
	var calls atomic.Int32
	release := make(chan struct{})
	fill := func(ctx context.Context) ([]byte, time.Duration, error) {
		calls.Add(1)
		<-release
		return []byte("v"), time.Minute, nil
	}
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := l.Load(context.Background(), "k", fill)
			if err == nil && string(v) != "v" {
				err = fmt.Errorf("got %q", v)
			}
			errs <- err
		}()
	}
	time.Sleep(50 * time.Millisecond) // let the burst pile up on the flight
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if c := calls.Load(); c != 1 {
		t.Fatalf("fill ran %d times for one burst, want 1", c)
	}
	// Cached now: no further fill.
	if _, err := l.Load(context.Background(), "k", fill); err != nil || calls.Load() != 1 {
		t.Fatalf("second load: err %v, calls %d", err, calls.Load())
	}
}

func TestLoaderDoesNotCacheErrorsOrZeroTTL(t *testing.T) {
	l := NewLoader(NewMemory(1<<20, nil), nil)
	var calls int
	boom := errors.New("boom")
	failing := func(context.Context) ([]byte, time.Duration, error) { calls++; return nil, 0, boom }
	for i := 0; i < 2; i++ {
		if _, err := l.Load(context.Background(), "e", failing); !errors.Is(err, boom) {
			t.Fatalf("err = %v, want boom", err)
		}
	}
	uncached := func(context.Context) ([]byte, time.Duration, error) { calls++; return []byte("x"), 0, nil }
	for i := 0; i < 2; i++ {
		if v, err := l.Load(context.Background(), "z", uncached); err != nil || string(v) != "x" {
			t.Fatalf("got %q, %v", v, err)
		}
	}
	if calls != 4 {
		t.Fatalf("fill calls = %d, want 4 (nothing cached)", calls)
	}
}

func TestLoaderCallerCancel(t *testing.T) {
	l := NewLoader(NewMemory(1<<20, nil), nil)
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := l.Load(ctx, "k", func(fctx context.Context) ([]byte, time.Duration, error) {
			close(started)
			time.Sleep(50 * time.Millisecond)
			// The fill's context outlives the first caller.
			return []byte("v"), time.Minute, fctx.Err()
		})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled caller: err = %v", err)
		}
	}()
	<-started
	cancel()
	<-done
	// The flight finished and cached its value for later callers.
	deadline := time.Now().Add(2 * time.Second)
	for {
		v, ok, _ := l.c.Get(context.Background(), "k")
		if ok && string(v) == "v" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("value of the abandoned flight was not cached")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startMemcached runs a real memcached on a free loopback port, or skips.
func startMemcached(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("memcached")
	if err != nil {
		t.Skip("memcached binary not installed (apt-get install -y memcached); skipping the memcached cache test")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", "16", "-u", "nobody")
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start memcached: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("memcached did not start listening")
	return ""
}

func TestMemcached(t *testing.T) {
	addr := startMemcached(t)
	m, err := NewMemcached("test:", addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Ping(); err != nil {
		t.Fatal(err)
	}
	long := string(make([]byte, 1000)) + " spaces and\nnewlines are fine in our keys"
	if _, ok := get(t, m, long); ok {
		t.Fatal("hit on an empty cache")
	}
	set(t, m, long, "value", time.Minute)
	if v, ok := get(t, m, long); !ok || v != "value" {
		t.Fatalf("got %q %v", v, ok)
	}
	set(t, m, "short", "x", time.Second)
	time.Sleep(2100 * time.Millisecond)
	if _, ok := get(t, m, "short"); ok {
		t.Fatal("entry served after its TTL")
	}
	// The loader works the same over memcached.
	l := NewLoader(m, nil)
	var calls int
	for i := 0; i < 3; i++ {
		v, err := l.Load(context.Background(), "lk", func(context.Context) ([]byte, time.Duration, error) {
			calls++
			return []byte("filled"), time.Minute, nil
		})
		if err != nil || string(v) != "filled" {
			t.Fatalf("load: %q %v", v, err)
		}
	}
	if calls != 1 {
		t.Fatalf("fill calls = %d, want 1", calls)
	}
}

func TestMemcachedDown(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	m, _ := NewMemcached("t:", addr)
	if _, _, err := m.Get(context.Background(), "k"); err == nil {
		t.Fatal("Get on a dead server: no error")
	}
	var reported atomic.Int32
	l := NewLoader(m, func(string, error) { reported.Add(1) })
	v, err := l.Load(context.Background(), "k", func(context.Context) ([]byte, time.Duration, error) {
		return []byte("v"), time.Minute, nil
	})
	if err != nil || string(v) != "v" {
		t.Fatalf("a dead cache must not fail the request: %q %v", v, err)
	}
	if reported.Load() == 0 {
		t.Fatal("cache failure not reported")
	}
}

// TestLoaderWarmsHotKeys: a key read in the last fifth of its TTL is
// refreshed in the background, so a steadily read key never expires and
// no reader waits for a fill; a key nobody reads is left to expire.
func TestLoaderWarmsHotKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fills atomic.Int32
		var failNext atomic.Bool
		var errs []string
		var mu sync.Mutex
		l := NewLoader(NewMemory(1<<20, nil), func(op string, err error) {
			mu.Lock()
			errs = append(errs, op)
			mu.Unlock()
		})
		fill := func(ctx context.Context) ([]byte, time.Duration, error) {
			if failNext.Swap(false) {
				return nil, 0, errors.New("store down")
			}
			n := fills.Add(1)
			return []byte{byte(n)}, 10 * time.Second, nil
		}
		load := func(want byte) {
			t.Helper()
			v, err := l.Load(context.Background(), "k", fill)
			if err != nil || len(v) != 1 || v[0] != want {
				t.Fatalf("Load = %v, %v; want [%d]", v, err, want)
			}
		}
		load(1)
		time.Sleep(5 * time.Second)
		load(1)
		synctest.Wait()
		if n := fills.Load(); n != 1 {
			t.Fatalf("refreshed at half the TTL: %d fills", n)
		}
		time.Sleep(4 * time.Second) // 9 s: within the last 20%
		load(1)                     // served at once, from the cache
		synctest.Wait()
		if n := fills.Load(); n != 2 {
			t.Fatalf("no background refresh: %d fills", n)
		}
		time.Sleep(5 * time.Second) // 14 s: the first fill would have expired
		load(2)
		if n := fills.Load(); n != 2 {
			t.Fatalf("a reader waited for a fill: %d fills", n)
		}
		// A failed refresh keeps serving the cached value and is reported.
		time.Sleep(4 * time.Second) // 18 s of a fill made at 9 s
		failNext.Store(true)
		load(2)
		synctest.Wait()
		mu.Lock()
		if len(errs) != 1 || errs[0] != "refresh" {
			t.Fatalf("errors %v", errs)
		}
		mu.Unlock()
		// Nobody reads it: it expires, and the next read fills it again.
		time.Sleep(time.Minute)
		load(3)
	})
}
