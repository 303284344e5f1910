package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// Memcached is a Cache on memcached servers, for several nodes sharing one
// cache (PEBA 1.x used memcached the same way, peba.md §2.5).
type Memcached struct {
	c      *memcache.Client
	prefix string
}

// maxTTL is memcached's limit for relative expirations: larger values are
// read as Unix timestamps.
const maxTTL = 30 * 24 * time.Hour

// NewMemcached returns a cache on the given servers ("host:port"). Keys are
// hashed and prefixed with prefix, so arbitrary request keys fit memcached's
// 250-byte key limit and several services can share the servers.
func NewMemcached(prefix string, servers ...string) (*Memcached, error) {
	if len(servers) == 0 {
		return nil, errors.New("cannot create memcached cache: no servers")
	}
	c := memcache.New(servers...)
	c.Timeout = 500 * time.Millisecond
	return &Memcached{c: c, prefix: prefix}, nil
}

func (m *Memcached) key(k string) string {
	sum := sha256.Sum256([]byte(k))
	return m.prefix + hex.EncodeToString(sum[:])
}

// Get implements Cache.
func (m *Memcached) Get(_ context.Context, key string) ([]byte, bool, error) {
	it, err := m.c.Get(m.key(key))
	if errors.Is(err, memcache.ErrCacheMiss) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("cannot get from memcached: %w", err)
	}
	return it.Value, true, nil
}

// Set implements Cache. TTLs are rounded up to whole seconds and capped at
// memcached's 30 days.
func (m *Memcached) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	ttl = min(ttl, maxTTL)
	secs := int32((ttl + time.Second - 1) / time.Second)
	err := m.c.Set(&memcache.Item{Key: m.key(key), Value: value, Expiration: secs})
	if err != nil {
		return fmt.Errorf("cannot set in memcached: %w", err)
	}
	return nil
}

// Ping reports whether every server answers.
func (m *Memcached) Ping() error {
	if err := m.c.Ping(); err != nil {
		return fmt.Errorf("cannot reach memcached: %w", err)
	}
	return nil
}
