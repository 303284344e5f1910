// Package hub is the in-process live feed: every stored event is published
// once (ingest's OnCommit hook), kept in a small replay buffer, and fanned out
// to subscribers without ever blocking the publisher (architecture.md, "Live
// feed"; users.md §2 item 1: a freshly opened map must not be empty).
package hub

import (
	"sync"
	"time"

	"github.com/peba-go/peba"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for Options. SecKC keeps the newest 100 events for 5 minutes
// (seckc.md §3.7).
const (
	DefaultReplaySize       = 100
	DefaultReplayAge        = 5 * time.Minute
	DefaultSubscriberBuffer = 256
)

// Options tune a Hub. Zero values mean the defaults.
type Options struct {
	// ReplaySize is how many recent events are kept for new subscribers.
	// Negative disables replay.
	ReplaySize int
	// ReplayAge bounds the age (publish time) of replayed events.
	ReplayAge time.Duration
	// SubscriberBuffer is the number of live events a subscriber may lag
	// behind; beyond it the subscriber misses events (see Hub).
	SubscriberBuffer int
	// Registerer receives the hub's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Now is the clock (tests inject one); time.Now if nil.
	Now func() time.Time
}

// Filter selects the events a subscriber may see.
type Filter struct {
	// Domains lists the allowed data domains. An empty list allows nothing,
	// so a zero Filter can never leak private events.
	Domains []peba.Domain
}

// Allows reports whether f admits events of domain d.
func (f Filter) Allows(d peba.Domain) bool {
	for _, x := range f.Domains {
		if x == d {
			return true
		}
	}
	return false
}

// Hub fans events out to subscribers. It is safe for concurrent use.
//
// Slow subscribers: Publish never blocks. A subscriber whose buffer is full
// misses that event; the miss is counted in the dropped metric and in
// Sub.Missed, and the subscriber stays subscribed (a live map prefers a gap
// over a disconnect; the consumer decides whether to give up).
type Hub struct {
	size int
	age  time.Duration
	buf  int
	now  func() time.Time

	mu     sync.Mutex
	subs   map[*Sub]struct{}
	ring   []entry // replay ring, len <= size
	next   int     // ring index of the next write once the ring is full
	closed bool

	published, delivered, dropped prometheus.Counter
	subscribers                   prometheus.Gauge
}

type entry struct {
	ev *peba.Event
	at time.Time
}

// New returns a Hub.
func New(opt Options) *Hub {
	h := &Hub{
		size: opt.ReplaySize,
		age:  opt.ReplayAge,
		buf:  opt.SubscriberBuffer,
		now:  opt.Now,
		subs: make(map[*Sub]struct{}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "peba_livefeed_published_events_total", Help: "Events published to the live feed hub.",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "peba_livefeed_delivered_events_total", Help: "Events handed to live feed subscribers (replay included).",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "peba_livefeed_dropped_events_total", Help: "Events a slow live feed subscriber missed because its buffer was full.",
		}),
		subscribers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "peba_livefeed_subscribers", Help: "Current live feed subscribers.",
		}),
	}
	if h.size == 0 {
		h.size = DefaultReplaySize
	}
	if h.size < 0 {
		h.size = 0
	}
	if h.age <= 0 {
		h.age = DefaultReplayAge
	}
	if h.buf <= 0 {
		h.buf = DefaultSubscriberBuffer
	}
	if h.now == nil {
		h.now = time.Now
	}
	if opt.Registerer != nil {
		opt.Registerer.MustRegister(h.published, h.delivered, h.dropped, h.subscribers)
	}
	return h
}

// Publish hands events to every subscriber whose filter admits them and
// records them for replay. It never blocks: it is called from ingest's
// committing goroutine (ingest.Options.OnCommit). Events are copied; the
// caller may reuse the slice.
func (h *Hub) Publish(events []peba.Event) {
	if len(events) == 0 {
		return
	}
	now := h.now()
	var delivered, dropped int
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	for i := range events {
		ev := new(peba.Event)
		*ev = events[i]
		// Payload bytes stay with the payload store; subscribers must not
		// pin them in memory (and must not see them).
		ev.Payload = nil
		h.remember(entry{ev: ev, at: now})
		for s := range h.subs {
			if !s.filter.Allows(ev.Domain) {
				continue
			}
			select {
			case s.c <- ev:
				delivered++
			default:
				s.missed++
				dropped++
			}
		}
	}
	h.mu.Unlock()
	h.published.Add(float64(len(events)))
	h.delivered.Add(float64(delivered))
	h.dropped.Add(float64(dropped))
}

// remember adds e to the replay ring. h.mu must be held.
func (h *Hub) remember(e entry) {
	if h.size == 0 {
		return
	}
	if len(h.ring) < h.size {
		h.ring = append(h.ring, e)
		return
	}
	h.ring[h.next] = e
	h.next = (h.next + 1) % h.size
}

// Subscribe registers a subscriber. Its channel first holds the replay (the
// newest ReplaySize events published within ReplayAge that f admits, oldest
// first), then every later admitted event, each exactly once and in publish
// order, except those missed while the buffer was full. The caller must call
// Sub.Close. After Close of the Hub the channel is closed at once.
func (h *Hub) Subscribe(f Filter) *Sub {
	f.Domains = append([]peba.Domain(nil), f.Domains...)
	s := &Sub{h: h, filter: f}
	h.mu.Lock()
	defer h.mu.Unlock()
	// Room for the whole replay plus the live buffer, so replay is never
	// cut short. The channel holds pointers: 8 bytes per slot.
	s.c = make(chan *peba.Event, len(h.ring)+h.buf)
	if h.closed {
		close(s.c)
		s.done = true
		return s
	}
	cutoff := h.now().Add(-h.age)
	n := len(h.ring)
	for i := 0; i < n; i++ {
		e := h.ring[(h.next+i)%n] // oldest first
		if e.at.Before(cutoff) || !f.Allows(e.ev.Domain) {
			continue
		}
		s.c <- e.ev
		h.delivered.Inc()
	}
	h.subs[s] = struct{}{}
	h.subscribers.Inc()
	return s
}

// Close closes every subscriber's channel; later Publish calls do nothing
// and later subscribers get a closed channel.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	for s := range h.subs {
		h.unsubscribe(s)
	}
}

// unsubscribe removes s and closes its channel. h.mu must be held.
func (h *Hub) unsubscribe(s *Sub) {
	if s.done {
		return
	}
	s.done = true
	delete(h.subs, s)
	close(s.c)
	h.subscribers.Dec()
}

// Sub is one subscription.
type Sub struct {
	h      *Hub
	filter Filter
	c      chan *peba.Event
	// Guarded by h.mu.
	missed int64
	done   bool
}

// C returns the subscription's events. The events are shared with other
// subscribers and the replay buffer: receivers must not modify them. The
// channel is closed by Close (of the Sub or the Hub).
func (s *Sub) C() <-chan *peba.Event { return s.c }

// Missed returns how many admitted events this subscriber missed because its
// buffer was full.
func (s *Sub) Missed() int64 {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	return s.missed
}

// Close ends the subscription and closes its channel. It is idempotent.
func (s *Sub) Close() {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	s.h.unsubscribe(s)
}

// ReplayLimits returns the effective replay size and age, for consumers that
// keep their own replay of what they forwarded (the Socket.IO broadcaster).
func (h *Hub) ReplayLimits() (int, time.Duration) { return h.size, h.age }
