package pebaapi

import (
	"context"
	"net/http"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/cache"
	"github.com/peba-go/peba/duckdb"
)

// countingStats counts the queries that reach the real store.
type countingStats struct {
	peba.Stats
	n atomic.Int64
}

func (c *countingStats) Count(ctx context.Context, w peba.Window) (int64, error) {
	c.n.Add(1)
	return c.Stats.Count(ctx, w)
}

func (c *countingStats) Top(ctx context.Context, w peba.Window, d peba.Dim, limit int) ([]peba.Bucket, error) {
	c.n.Add(1)
	return c.Stats.Top(ctx, w, d, limit)
}

func (c *countingStats) Latest(ctx context.Context, w peba.Window, src netip.Addr, limit int) ([]peba.Event, error) {
	c.n.Add(1)
	return c.Stats.Latest(ctx, w, src, limit)
}

func TestCacheSingleFlightAndHostIndependence(t *testing.T) {
	cs := &countingStats{Stats: getFixture(t).store}
	h := newTestAPIStats(t, cs, cache.NewMemory(1<<20, func() time.Time { return apiNow }))
	var wg sync.WaitGroup
	bodies := make([]string, 20)
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bodies[i] = do(h, get("/alert/retrieveAlertStats")).Body.String()
		}()
	}
	wg.Wait()
	// One fill = 4 Count queries, however many requests came at once.
	if n := cs.n.Load(); n != 4 {
		t.Fatalf("burst of 20 cost %d store queries, want 4", n)
	}
	for _, b := range bodies[1:] {
		if b != bodies[0] {
			t.Fatalf("burst answers differ: %q vs %q", b, bodies[0])
		}
	}
	r := req{method: http.MethodGet, target: "http://other.example/alert/retrieveAlertStats?ci=1&_=123", header: map[string]string{"X-Forwarded-Proto": "https"}}
	w := do(h, r)
	if w.Body.String() != bodies[0] || cs.n.Load() != 4 {
		t.Fatalf("another Host, ci=1 and an unknown parameter must hit the same entry (queries %d)", cs.n.Load())
	}
	if cc := w.Header().Get("Cache-Control"); cc != "public, max-age=13" {
		t.Fatalf("Cache-Control on a hit = %q", cc)
	}
}

func TestCacheSeparatesDomains(t *testing.T) {
	h := newTestAPIStats(t, getFixture(t).store, cache.NewMemory(1<<20, nil))
	anon := do(h, get("/alert/retrieveAlertsCount?time=day&out=json&ci=0"))
	alice := do(h, getAs("/alert/retrieveAlertsCount?time=day&out=json&ci=0", aliceBearer))
	carol := do(h, getAs("/alert/retrieveAlertsCount?time=day&out=json&ci=0", carolBearer))
	if anon.Body.String() != "{\"AlertCount\":0}\n" || carol.Body.String() != anon.Body.String() {
		t.Fatalf("callers without entitlement must see no private data: %q / %q", anon.Body, carol.Body)
	}
	if alice.Body.String() == anon.Body.String() {
		t.Fatal("entitled caller got the anonymous cached answer")
	}
	if cc := alice.Header().Get("Cache-Control"); cc != "private, max-age=60" {
		t.Fatalf("private answer: Cache-Control %q", cc)
	}
	// And the reverse order: the private answer is not served to anyone else.
	again := do(h, get("/alert/retrieveAlertsCount?time=day&out=json&ci=0"))
	if again.Body.String() != anon.Body.String() {
		t.Fatalf("anonymous caller got %q after a private fill", again.Body)
	}
}

func TestCacheTTLsAndUncachedAnswers(t *testing.T) {
	cs := &countingStats{Stats: getFixture(t).store}
	h := newTestAPIStats(t, cs, cache.NewMemory(1<<20, nil))
	// TpotStats for today is never cached (B-37); a past day is.
	for i := 0; i < 2; i++ {
		do(h, get("/alert/TpotStats"))
	}
	if n := cs.n.Load(); n != 2 {
		t.Fatalf("TpotStats today: %d Top queries for 2 requests, want 2 (not cached)", n)
	}
	cs.n.Store(0)
	for i := 0; i < 2; i++ {
		do(h, get("/alert/TpotStats?day=20261119"))
	}
	if n := cs.n.Load(); n != 1 {
		t.Fatalf("TpotStats past day: %d Top queries for 2 requests, want 1 (cached)", n)
	}
	// getStats' "Nope" is not cached.
	cs.n.Store(0)
	for i := 0; i < 2; i++ {
		if w := do(h, get("/alert/getStats?gte=2020-01-01+00:00:00&lt=2020-01-02+00:00:00")); w.Body.String() != "Nope" {
			t.Fatalf("getStats without data: %q", w.Body)
		}
	}
	if n := cs.n.Load(); n != 2 {
		t.Fatalf("getStats Nope: %d queries, want 2 (not cached)", n)
	}
}

func TestCacheDisabledQueriesEveryTime(t *testing.T) {
	cs := &countingStats{Stats: getFixture(t).store}
	h := newTestAPIStats(t, cs, nil)
	for i := 0; i < 3; i++ {
		do(h, get("/alert/retrieveAlertsJson"))
	}
	if n := cs.n.Load(); n != 3 {
		t.Fatalf("cache off: %d queries for 3 requests", n)
	}
}

// A failing store gives 503 with Retry-After, never a 500 and never a
// cached failure.
func TestStoreFailure(t *testing.T) {
	st, err := duckdb.Open(filepath.Join(t.TempDir(), "closed.duckdb"), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	h := newTestAPIStats(t, st, cache.NewMemory(1<<20, nil))
	for _, target := range []string{"/alert/retrieveAlertStats", "/alert/retrieveAlertsJson", "/alert/tops?type=urls", "/alert/TpotStats?day=20261119"} {
		w := do(h, get(target))
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s: status %d, headers %v", target, w.Code, w.Header())
		}
	}
}
