// Package cache is the response cache of the statistics APIs: a TTL cache
// (in-process by default, memcached when several nodes should share one)
// behind a Loader that collapses concurrent misses of one key into a single
// computation (architecture.md, "Caching"; peba.md §2.5).
package cache

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Cache stores byte values under string keys for a limited time.
// Implementations are safe for concurrent use. A cache may forget any entry
// at any time; callers treat an error like a miss.
type Cache interface {
	// Get returns the value stored under key, and whether there was one that
	// has not expired.
	Get(ctx context.Context, key string) ([]byte, bool, error)
	// Set stores value under key for ttl (> 0). The cache keeps its own copy
	// or an immutable reference: callers must not modify value afterwards.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
}

// Loader reads through a Cache with single-flight: while one caller computes
// the value of a key, other callers of the same key wait for that result
// instead of computing it again (a burst of identical requests costs one
// store query).
//
// It also warms hot keys: a key this Loader filled that is read in the
// last fifth of its TTL is recomputed in the background and stored again,
// so a key read steadily never expires and no request waits for a cold
// query (PEBA's operators pre-filled caches from a "master node" with cron
// jobs for that reason; issue 7). Warming is node-local: with a shared
// memcached each node warms the keys it filled.
type Loader struct {
	c       Cache
	g       singleflight.Group
	timeout time.Duration
	onErr   func(op string, err error)

	mu  sync.Mutex
	hot map[string]*hotKey // keys this Loader filled, by cache key
}

// hotKey is what a background refresh needs to know about a key.
type hotKey struct {
	expires    time.Time
	ttl        time.Duration
	refreshing bool
}

const (
	// refreshShare: a key is refreshed when read in the last 1/refreshShare
	// of its TTL.
	refreshShare = 5
	// maxHot bounds the keys tracked for warming (request parameters are
	// attacker-chosen); keys beyond it are cached but not warmed.
	maxHot = 4096
)

// NewLoader returns a Loader over c. onErr, if not nil, is told about cache
// failures (which are otherwise treated as misses); it must not block.
func NewLoader(c Cache, onErr func(op string, err error)) *Loader {
	if onErr == nil {
		onErr = func(string, error) {}
	}
	return &Loader{c: c, timeout: 30 * time.Second, onErr: onErr, hot: map[string]*hotKey{}}
}

// FillFunc computes a value. It returns the value and how long it may be
// cached; ttl <= 0 means it is returned but not cached.
type FillFunc func(ctx context.Context) (value []byte, ttl time.Duration, err error)

// Load returns the cached value of key, or the value fill computes. fill runs
// at most once at a time per key across concurrent callers; it runs on a
// context that is not cancelled when the first caller gives up (the others
// still want the result) but is bounded by a timeout. A caller whose ctx ends
// stops waiting and gets ctx.Err(). Errors of fill are returned to every
// waiting caller and never cached.
func (l *Loader) Load(ctx context.Context, key string, fill FillFunc) ([]byte, error) {
	if v, ok, err := l.c.Get(ctx, key); err != nil {
		l.onErr("get", err)
	} else if ok {
		l.warm(ctx, key, fill)
		return v, nil
	}
	ch := l.g.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.timeout)
		defer cancel()
		// A caller that lost the race with the previous flight's Set finds
		// the value here instead of computing it again.
		if v, ok, err := l.c.Get(fctx, key); err == nil && ok {
			return v, nil
		}
		return l.fill(fctx, key, fill)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.([]byte), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fill computes key, stores it and remembers it for warming.
func (l *Loader) fill(ctx context.Context, key string, fill FillFunc) ([]byte, error) {
	v, ttl, err := fill(ctx)
	if err != nil {
		return nil, err
	}
	if ttl > 0 {
		if err := l.c.Set(ctx, key, v, ttl); err != nil {
			l.onErr("set", err)
		} else {
			l.remember(key, ttl)
		}
	}
	return v, nil
}

func (l *Loader) remember(key string, ttl time.Duration) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.hot[key]; !ok && len(l.hot) >= maxHot {
		for k, h := range l.hot {
			if !h.refreshing && now.After(h.expires) {
				delete(l.hot, k)
			}
		}
		if len(l.hot) >= maxHot {
			return
		}
	}
	l.hot[key] = &hotKey{expires: now.Add(ttl), ttl: ttl}
}

// warm starts a background refresh of key when it was read within the last
// fifth of its TTL and no refresh is running. The refresh shares the
// key's single-flight, so a miss arriving meanwhile waits for it instead of
// querying again.
func (l *Loader) warm(ctx context.Context, key string, fill FillFunc) {
	now := time.Now()
	l.mu.Lock()
	h, ok := l.hot[key]
	if !ok || h.refreshing || now.Before(h.expires.Add(-h.ttl/refreshShare)) {
		l.mu.Unlock()
		return
	}
	h.refreshing = true
	l.mu.Unlock()
	ch := l.g.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.timeout)
		defer cancel()
		return l.fill(fctx, key, fill)
	})
	go func() {
		if res := <-ch; res.Err != nil {
			l.onErr("refresh", res.Err)
			l.mu.Lock()
			h.refreshing = false // a later read tries again
			l.mu.Unlock()
		}
	}()
}

// ErrTooLarge is returned by Set when a value cannot be cached because of
// its size.
var ErrTooLarge = errors.New("value too large for the cache")
