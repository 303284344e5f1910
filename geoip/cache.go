package geoip

import (
	"hash/maphash"
	"math/bits"
	"net/netip"
	"sync/atomic"

	"github.com/peba-go/peba"
)

// DefaultCacheSize is the default number of lookup cache slots. A full cache
// holds about 100 bytes per slot (~6.5 MB).
const DefaultCacheSize = 65536

// cache is a direct-mapped, lock-free cache from address to result. Source
// addresses are Zipf-distributed (a few scanners send most events), so a
// small cache answers most lookups; the frequent addresses win back their
// slot at once when a rare one evicts them. Each slot holds an immutable
// entry behind an atomic pointer, so readers and writers never lock or
// contend. The hash is seeded per cache, so attackers cannot aim addresses
// at one slot. A nil *cache caches nothing.
type cache struct {
	seed  maphash.Seed
	mask  uint64
	slots []atomic.Pointer[cacheEntry]
}

type cacheEntry struct {
	ip  netip.Addr
	geo peba.Geo
}

// newCache returns a cache with size rounded up to a power of two slots, or
// nil if size <= 0.
func newCache(size int) *cache {
	if size <= 0 {
		return nil
	}
	n := uint64(1) << bits.Len64(uint64(size-1))
	return &cache{seed: maphash.MakeSeed(), mask: n - 1, slots: make([]atomic.Pointer[cacheEntry], n)}
}

func (c *cache) slot(ip netip.Addr) *atomic.Pointer[cacheEntry] {
	return &c.slots[maphash.Comparable(c.seed, ip)&c.mask]
}

func (c *cache) get(ip netip.Addr) (peba.Geo, bool) {
	if c == nil {
		return peba.Geo{}, false
	}
	if e := c.slot(ip).Load(); e != nil && e.ip == ip {
		return e.geo, true
	}
	return peba.Geo{}, false
}

func (c *cache) put(ip netip.Addr, g peba.Geo) {
	if c == nil {
		return
	}
	c.slot(ip).Store(&cacheEntry{ip: ip, geo: g})
}
