package livefeed

import (
	"sync"

	"github.com/peba-go/peba"
)

// encodedCacheSize is how many events' payloads an encodedCache keeps:
// under a second of the feed at 5,000 events/s, far more than the replay.
const encodedCacheSize = 4096

// encodedCache encodes each event's payload for one audience once, for all
// the viewers and transports of that audience, and only when a viewer of
// that audience needs it: with nobody watching, nothing is encoded. The hub
// hands the same *peba.Event to every subscriber, so the pointer is the
// key; the newest encodedCacheSize entries are kept.
type encodedCache struct {
	encode func(*peba.Event) []byte

	m    sync.Map // *peba.Event -> []byte
	mu   sync.Mutex
	keys []*peba.Event // ring of the keys in m, for eviction
	next int
}

func newEncodedCache(encode func(*peba.Event) []byte) *encodedCache {
	return &encodedCache{encode: encode, keys: make([]*peba.Event, encodedCacheSize)}
}

// get returns the JSON payload of ev. The bytes are shared: callers must
// not modify them.
func (c *encodedCache) get(ev *peba.Event) []byte {
	if b, ok := c.m.Load(ev); ok {
		return b.([]byte)
	}
	b := c.encode(ev)
	if old, loaded := c.m.LoadOrStore(ev, b); loaded {
		return old.([]byte)
	}
	c.mu.Lock()
	if old := c.keys[c.next]; old != nil {
		c.m.Delete(old)
	}
	c.keys[c.next] = ev
	c.next = (c.next + 1) % len(c.keys)
	c.mu.Unlock()
	return b
}

// payload returns the JSON payload of ev for an entitled (full) or an
// anonymous (sanitized) viewer.
func (s *Server) payload(ev *peba.Event, entitled bool) []byte {
	if entitled {
		return s.full.get(ev)
	}
	return s.anon.get(ev)
}
