package cache

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// Memory is an in-process LRU cache bounded by the total size of its keys
// and values. Expired entries are dropped when read or when space is needed.
type Memory struct {
	max int64
	now func() time.Time

	mu    sync.Mutex
	size  int64
	ll    *list.List // front = most recently used; elements hold *entry
	items map[string]*list.Element
}

type entry struct {
	key     string
	value   []byte
	expires time.Time
}

// entryOverhead approximates the bookkeeping bytes of one entry, so that
// many tiny entries cannot exceed the bound by far.
const entryOverhead = 96

// NewMemory returns a Memory cache holding at most maxBytes. now is the
// clock (time.Now if nil).
func NewMemory(maxBytes int64, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{max: maxBytes, now: now, ll: list.New(), items: make(map[string]*list.Element)}
}

// Get implements Cache.
func (m *Memory) Get(_ context.Context, key string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.items[key]
	if !ok {
		return nil, false, nil
	}
	e := el.Value.(*entry)
	if !m.now().Before(e.expires) {
		m.remove(el)
		return nil, false, nil
	}
	m.ll.MoveToFront(el)
	return e.value, true, nil
}

// Set implements Cache. A value larger than the whole cache is refused
// with ErrTooLarge.
func (m *Memory) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	cost := int64(len(key)+len(value)) + entryOverhead
	if cost > m.max {
		return ErrTooLarge
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.items[key]; ok {
		m.remove(el)
	}
	now := m.now()
	for m.size+cost > m.max {
		m.evict(now)
	}
	el := m.ll.PushFront(&entry{key: key, value: value, expires: now.Add(ttl)})
	m.items[key] = el
	m.size += cost
	return nil
}

// Len returns the number of entries (expired ones included until dropped).
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.items)
}

// evict drops the least recently used entry, or an expired one found near
// the LRU end (checking a few keeps eviction O(1)).
func (m *Memory) evict(now time.Time) {
	el := m.ll.Back()
	for i, cand := 0, el; i < 8 && cand != nil; i, cand = i+1, cand.Prev() {
		if !now.Before(cand.Value.(*entry).expires) {
			el = cand
			break
		}
	}
	m.remove(el)
}

func (m *Memory) remove(el *list.Element) {
	e := m.ll.Remove(el).(*entry)
	delete(m.items, e.key)
	m.size -= int64(len(e.key)+len(e.value)) + entryOverhead
}
