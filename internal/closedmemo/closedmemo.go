// Package closedmemo remembers what a store read from closed time buckets.
//
// A statistics answer over a window is the sum of closed buckets (hours and
// days that no new event can enter, except a late or imported one) and an
// open tail. The closed part of a rolling window is the same for every
// request until a bucket closes or a write reaches into a closed bucket, so
// a store can keep what it read for it here and read only the tail from the
// database. The answer stays exact because every write that changes a
// closed bucket (a late event, an import, retention) calls Invalidate after
// it commits, and a reader takes Generation before it starts its query:
//
//   - a reader that took the generation before such a commit and read the
//     old rows stores them under the old generation, which no later reader
//     asks for;
//   - a reader that took it after the commit reads the new rows.
//
// It is not a response cache: it holds partial results keyed by the exact
// closed buckets they cover, never a whole answer, and the open tail is
// always read.
package closedmemo

import (
	"container/list"
	"sync"
	"sync/atomic"
)

// Memo is a bounded LRU of partial results, valid for one generation.
// The zero value is not usable; call New. A nil *Memo remembers nothing.
type Memo struct {
	mu       sync.Mutex
	gen      uint64
	maxBytes int
	used     int
	order    *list.List // front: most recently used
	byKey    map[string]*list.Element

	hits, misses atomic.Int64
}

type entry struct {
	key  string
	val  any
	size int
}

// New returns a Memo that holds at most maxBytes (as the callers of Put
// estimate them).
func New(maxBytes int) *Memo {
	return &Memo{maxBytes: maxBytes, order: list.New(), byKey: map[string]*list.Element{}}
}

// Generation is the current generation; read it before the query whose
// result will be Put.
func (m *Memo) Generation() uint64 {
	if m == nil {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen
}

// Invalidate forgets everything; call it after committing a write that
// changed a closed bucket.
func (m *Memo) Invalidate() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	m.used = 0
	m.order.Init()
	clear(m.byKey)
}

// Get returns the value stored under key in generation gen.
func (m *Memo) Get(key string, gen uint64) (any, bool) {
	if m == nil {
		return nil, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.byKey[key]; ok && gen == m.gen {
		m.order.MoveToFront(e)
		m.hits.Add(1)
		return e.Value.(*entry).val, true
	}
	m.misses.Add(1)
	return nil, false
}

// Put stores v (of about size bytes) under key if gen is still the current
// generation; a value read before an Invalidate is dropped. The value must
// not be modified afterwards: readers share it.
func (m *Memo) Put(key string, gen uint64, v any, size int) {
	if m == nil || size > m.maxBytes {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if gen != m.gen {
		return
	}
	if e, ok := m.byKey[key]; ok {
		old := e.Value.(*entry)
		m.used += size - old.size
		old.val, old.size = v, size
		m.order.MoveToFront(e)
	} else {
		m.byKey[key] = m.order.PushFront(&entry{key: key, val: v, size: size})
		m.used += size
	}
	for m.used > m.maxBytes {
		last := m.order.Back()
		old := last.Value.(*entry)
		m.order.Remove(last)
		delete(m.byKey, old.key)
		m.used -= old.size
	}
}

// Stats returns the number of hits and misses so far (for metrics and
// tests).
func (m *Memo) Stats() (hits, misses int64) {
	if m == nil {
		return 0, 0
	}
	return m.hits.Load(), m.misses.Load()
}
