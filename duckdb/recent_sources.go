package duckdb

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/internal/storerow"
)

// The source addresses of the recent times (recent.go) answer Top by
// source address (retrieveIPs: two hours, ~28k events grouped into ~12k
// addresses on 10M events, 9 ms as a GROUP BY over the events) and Sources
// (blocklists: a day) of windows the times cover, by counting in Go.

// srcNamed is the first key of a source that is not an IPv4 address: an
// IPv4 address is its own key (as a number), any other stored text (IPv6,
// "" for no address) is interned in srcNames.
const srcNamed = 1 << 32

// srcNames interns the stored texts of the sources that are not IPv4
// addresses (few on real data). Guarded by recentTimes.mu.
type srcNames struct {
	ids         map[string]uint64
	names       []string // names[k-srcNamed] is the text of key k
	nextCompact int      // compact when names grows to this
}

// srcCompactMin is the smallest table that compact rebuilds.
var srcCompactMin = 1024

func ipv4Key(a netip.Addr) uint64 {
	b := a.As4()
	return uint64(binary.BigEndian.Uint32(b[:]))
}

// key returns the key of source a.
func (n *srcNames) key(a netip.Addr) uint64 {
	if a.Is4() {
		return ipv4Key(a)
	}
	return n.intern(storerow.AddrText(a))
}

// keyOfText returns the key of a stored source text (storerow.AddrText),
// the same as key of the address.
func (n *srcNames) keyOfText(s string) uint64 {
	if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
		return ipv4Key(a)
	}
	return n.intern(s)
}

func (n *srcNames) intern(s string) uint64 {
	if k, ok := n.ids[s]; ok {
		return k
	}
	if n.ids == nil {
		n.ids = map[string]uint64{}
	}
	k := srcNamed + uint64(len(n.names))
	n.ids[s], n.names = k, append(n.names, s)
	return k
}

// text returns the stored text of key k.
func (n *srcNames) text(k uint64) string {
	if k < srcNamed {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(k))
		return netip.AddrFrom4(b).String()
	}
	return n.names[k-srcNamed]
}

// addr returns the address of key k (invalid for no address).
func (n *srcNames) addr(k uint64) (netip.Addr, error) {
	if k < srcNamed {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(k))
		return netip.AddrFrom4(b), nil
	}
	return storerow.ParseAddr(n.names[k-srcNamed])
}

// compact drops the names that no event of ev uses any more, once the
// table has doubled since the last time, so that it stays within twice the
// names in use.
func (n *srcNames) compact(ev *[2][]recentEvent) {
	if len(n.names) < max(n.nextCompact, srcCompactMin) {
		return
	}
	remap := make([]uint64, len(n.names)) // new key + 1; 0 = unused
	var names []string
	ids := map[string]uint64{}
	for d := range ev {
		for i := range ev[d] {
			e := &ev[d][i]
			if e.src < srcNamed {
				continue
			}
			old := e.src - srcNamed
			if remap[old] == 0 {
				k := srcNamed + uint64(len(names))
				names = append(names, n.names[old])
				ids[n.names[old]] = k
				remap[old] = k + 1
			}
			e.src = remap[old] - 1
		}
	}
	n.ids, n.names, n.nextCompact = ids, names, 2*len(names)
}

// topSourcesRecent answers Top(w, peba.DimSrcIP, limit) from the times; ok
// is false if they cannot tell.
func (s *Store) topSourcesRecent(w peba.Window, limit int) (out []peba.Bucket, ok bool) {
	c := &s.times
	c.mu.RLock()
	ev, ok := c.recentRange(w)
	if !ok {
		c.mu.RUnlock()
		return nil, false
	}
	counts := make(map[uint64]int64, (len(ev[0])+len(ev[1]))/2)
	for _, t := range ev {
		for _, e := range t {
			counts[e.src]++
		}
	}
	keys := make([]sortKey, 0, len(counts))
	for k, n := range counts {
		keys = append(keys, newSortKey(n, c.names.text(k)))
	}
	c.mu.RUnlock()
	// Top's order: count descending, then key in byte order.
	slices.SortFunc(keys, cmpSortKey)
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
	}
	if len(keys) > 0 {
		out = make([]peba.Bucket, len(keys))
	}
	for i, k := range keys {
		out[i] = peba.Bucket{Key: k.key, Count: k.n}
	}
	return out, true
}

// sortKey orders the buckets of topSourcesRecent. Most of the ~12,000
// addresses of retrieveIPs share a count, so the order is mostly decided
// by the keys: their first 16 bytes, as two big-endian integers padded with
// zeros, order them as strings.Compare does (address texts hold no zero
// bytes), a third of its cost; longer keys (IPv6) that tie on them are
// compared whole.
type sortKey struct {
	n      int64
	hi, lo uint64
	key    string
}

func newSortKey(n int64, key string) sortKey {
	var b [16]byte
	copy(b[:], key)
	return sortKey{n, binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:]), key}
}

func cmpSortKey(a, b sortKey) int {
	if c := cmp.Compare(b.n, a.n); c != 0 {
		return c
	}
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	if c := cmp.Compare(a.lo, b.lo); c != 0 || len(a.key) <= 16 && len(b.key) <= 16 {
		return c
	}
	return strings.Compare(a.key, b.key)
}

// sourcesRecent answers Sources(w, q) from the times; ok is false if they
// cannot tell.
func (s *Store) sourcesRecent(w peba.Window, q peba.SourceQuery) (out []peba.Source, ok bool, err error) {
	type agg struct {
		src         uint64
		n           int64
		first, last int64
	}
	c := &s.times
	c.mu.RLock()
	defer c.mu.RUnlock()
	ev, ok := c.recentRange(w)
	if !ok {
		return nil, false, nil
	}
	at := make(map[uint64]int, (len(ev[0])+len(ev[1]))/2)
	var aggs []agg
	for _, t := range ev {
		for _, e := range t {
			i, seen := at[e.src]
			if !seen {
				at[e.src] = len(aggs)
				aggs = append(aggs, agg{e.src, 1, e.us, e.us})
				continue
			}
			a := &aggs[i]
			a.n, a.first, a.last = a.n+1, min(a.first, e.us), max(a.last, e.us)
		}
	}
	for _, a := range aggs {
		if a.n < q.MinCount {
			continue
		}
		addr, err := c.names.addr(a.src)
		if err != nil {
			return nil, false, err
		}
		if !addr.IsValid() || q.GlobalOnly && !peba.IsGlobal(addr) {
			continue
		}
		out = append(out, peba.Source{Addr: addr, Count: a.n, First: time.UnixMicro(a.first).UTC(), Last: time.UnixMicro(a.last).UTC()})
	}
	slices.SortStableFunc(out, func(a, b peba.Source) int { return cmp.Compare(b.Count, a.Count) })
	sortSourceTies(out)
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, true, nil
}
