package hub

import "github.com/peba-go/peba"

// Recent returns the events of the replay buffer that f admits and that were
// published within the replay age, oldest first: exactly what Subscribe
// would replay. It serves polling clients (SecKC's /feeds/events/recent
// reads the buffer its Socket.IO feed replays from, seckc.md §3.7). The
// events are shared with subscribers: callers must not modify them.
func (h *Hub) Recent(f Filter) []*peba.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	cutoff := h.now().Add(-h.age)
	n := len(h.ring)
	var out []*peba.Event
	for i := 0; i < n; i++ {
		e := h.ring[(h.next+i)%n] // oldest first
		if e.at.Before(cutoff) || !f.Allows(e.ev.Domain) {
			continue
		}
		out = append(out, e.ev)
	}
	return out
}

// Buffered returns how many events of the replay buffer f admits, including
// those older than the replay age that Recent skips (SecKC's cached_events,
// seckc.md §3.8).
func (h *Hub) Buffered(f Filter) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := 0
	for _, e := range h.ring {
		if f.Allows(e.ev.Domain) {
			c++
		}
	}
	return c
}
