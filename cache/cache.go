// Package cache is the response cache of the statistics APIs: a TTL cache
// (in-process by default, memcached when several nodes should share one)
// behind a Loader that collapses concurrent misses of one key into a single
// computation (architecture.md, "Caching"; peba.md §2.5).
package cache

import (
	"context"
	"errors"
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
type Loader struct {
	c       Cache
	g       singleflight.Group
	timeout time.Duration
	onErr   func(op string, err error)
}

// NewLoader returns a Loader over c. onErr, if not nil, is told about cache
// failures (which are otherwise treated as misses); it must not block.
func NewLoader(c Cache, onErr func(op string, err error)) *Loader {
	if onErr == nil {
		onErr = func(string, error) {}
	}
	return &Loader{c: c, timeout: 30 * time.Second, onErr: onErr}
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
		v, ttl, err := fill(fctx)
		if err != nil {
			return nil, err
		}
		if ttl > 0 {
			if err := l.c.Set(fctx, key, v, ttl); err != nil {
				l.onErr("set", err)
			}
		}
		return v, nil
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

// ErrTooLarge is returned by Set when a value cannot be cached because of
// its size.
var ErrTooLarge = errors.New("value too large for the cache")
