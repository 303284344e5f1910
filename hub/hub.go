// Package hub is the in-process live feed: every stored event is published
// once (ingest's OnCommit hook), kept in a small replay buffer, and fanned out
// to subscribers without ever blocking the publisher (architecture.md, "Live
// feed"; users.md §2 item 1: a freshly opened map must not be empty).
package hub

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/peba-go/peba"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for Options. SecKC keeps the newest 100 events for 5 minutes
// (seckc.md §3.7).
const (
	DefaultReplaySize       = 100
	DefaultReplayAge        = 5 * time.Minute
	DefaultSubscriberBuffer = 4096
)

// Options tune a Hub. Zero values mean the defaults.
type Options struct {
	// ReplaySize is how many recent events are kept for new subscribers.
	// Negative disables replay.
	ReplaySize int
	// ReplayAge bounds the age (publish time) of replayed events.
	ReplayAge time.Duration
	// SubscriberBuffer is the number of live events a subscriber may lag
	// behind; beyond it the subscriber misses events (see Hub). Lagging
	// costs a pointer per event (Subscribe) or per batch
	// (SubscribeBatches): the events themselves are shared. 4096 is under
	// a second of the feed at 5,000 events/s.
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
//
// Cost: Publish holds the hub's lock for one queue append per batch
// subscriber (SubscribeBatches) or one channel send per event and channel
// subscriber (Subscribe). Fan-outs to many viewers use batches: with 1,000
// channel subscribers a Publish of 1,000 events took seconds under load
// (docs/performance.md, "Live feed").
type Hub struct {
	size int
	age  time.Duration
	buf  int
	now  func() time.Time

	mu     sync.Mutex
	subs   map[*Sub]struct{}
	ring   []entry      // replay ring, len <= size
	slots  []peba.Event // what ring entries inSlot point to, by ring index
	next   int          // ring index of the next write once the ring is full
	closed bool
	done   chan struct{} // closed by Close

	published, delivered, dropped prometheus.Counter
	subscribers                   prometheus.Gauge
}

type entry struct {
	ev     *peba.Event
	at     time.Time
	inSlot bool // ev is the ring's slot for this position (rememberInSlot)
}

// New returns a Hub.
func New(opt Options) *Hub {
	h := &Hub{
		size: opt.ReplaySize,
		age:  opt.ReplayAge,
		buf:  opt.SubscriberBuffer,
		now:  opt.Now,
		subs: make(map[*Sub]struct{}),
		done: make(chan struct{}),
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

// Publish hands the events of batches, in order, to every subscriber whose
// filter admits them and records them for replay: one publication, as if
// the batches were one slice (ingest passes the batches of several senders
// without gathering them into a new array first). It never blocks: it is
// called from ingest's committing goroutine (ingest.Options.OnCommit).
// Events are copied; the caller may reuse the slices.
//
// Batch subscribers (SubscribeBatches) of the same filter share one Batch
// per call, so the work per subscriber is one queue append, not one channel
// send per event. (Batches are not paced: a viewer that cannot keep up with
// how often ingest commits takes several at once, one write for all.)
func (h *Hub) Publish(batches ...[]peba.Event) {
	n := 0
	for _, b := range batches {
		n += len(b)
	}
	if n == 0 {
		return
	}
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.published.Add(float64(n))
	// Without subscribers only the replay keeps events: its newest
	// ReplaySize are copied into the ring's own slots, without allocating
	// (with nobody watching, a copy of every published event was a fifth
	// of all the memory ingest allocated; docs/performance.md, session 7).
	if len(h.subs) == 0 {
		skip := max(0, n-h.size) // older than the newest ReplaySize
		for _, b := range batches {
			if skip >= len(b) {
				skip -= len(b)
				continue
			}
			for i := skip; i < len(b); i++ {
				h.rememberInSlot(&b[i], now)
			}
			skip = 0
		}
		return
	}
	evs := make([]*peba.Event, 0, n)
	for _, b := range batches {
		for i := range b {
			ev := new(peba.Event)
			*ev = b[i]
			// Payload bytes stay with the payload store; subscribers must
			// not pin them in memory (and must not see them).
			ev.Payload = nil
			evs = append(evs, ev)
		}
	}
	var delivered, dropped int
	for _, ev := range evs {
		h.remember(entry{ev: ev, at: now})
	}
	for s := range h.subs {
		if s.c == nil {
			continue
		}
		for _, ev := range evs {
			if !s.set.has(ev.Domain) {
				continue
			}
			select {
			case s.c <- ev:
				delivered++
			default:
				s.mu.Lock()
				s.missed++
				s.mu.Unlock()
				dropped++
			}
		}
	}
	h.delivered.Add(float64(delivered))
	h.dropped.Add(float64(dropped))
	h.deliverBatches(evs)
}

// deliverBatches hands evs to the batch subscribers: one shared Batch per
// distinct filter. h.mu must be held.
func (h *Hub) deliverBatches(evs []*peba.Event) {
	var delivered, dropped int
	var views []view
	for s := range h.subs {
		if s.c != nil {
			continue
		}
		b := viewFor(&views, s.set, evs)
		if b == nil {
			continue
		}
		if s.push(b) {
			delivered += len(b.Events)
		} else {
			dropped += len(b.Events)
		}
	}
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

// rememberInSlot adds a copy of ev to the replay ring in the ring's own
// slot for its position, which only that ring entry points to until replay
// hands it out (and moves it to memory of its own). h.mu must be held.
func (h *Hub) rememberInSlot(ev *peba.Event, at time.Time) {
	if h.size == 0 {
		return
	}
	if h.slots == nil {
		h.slots = make([]peba.Event, h.size)
	}
	i := h.next
	if len(h.ring) < h.size {
		i = len(h.ring)
	}
	h.slots[i] = *ev
	h.slots[i].Payload = nil
	h.remember(entry{ev: &h.slots[i], at: at, inSlot: true})
}

// Subscribe registers a subscriber that receives events one by one on
// Sub.C. Its channel first holds the replay (the newest ReplaySize events
// published within ReplayAge that f admits, oldest first), then every later
// admitted event, each exactly once and in publish order, except those
// missed while the buffer was full. The caller must call Sub.Close. After
// Close of the Hub the channel is closed at once.
func (h *Hub) Subscribe(f Filter) *Sub {
	s := h.newSub(f)
	h.mu.Lock()
	defer h.mu.Unlock()
	// Room for the whole replay plus the live buffer, so replay is never
	// cut short. The channel holds pointers: 8 bytes per slot.
	s.c = make(chan *peba.Event, len(h.ring)+h.buf)
	if h.closed {
		close(s.c)
		s.closed = true
		return s
	}
	evs, _ := h.replay(s.set)
	for _, ev := range evs {
		s.c <- ev
	}
	h.add(s)
	return s
}

// SubscribeBatches registers a subscriber that takes events in batches:
// wait on Sub.Ready, then Sub.Take everything pending at once. This is the
// fan-out path for many subscribers (the live feed's SSE streams): Publish
// hands all batch subscribers of one filter the same *Batch, and a
// subscriber that fell behind takes all it missed in one call.
//
// The first batch is the replay (as for Subscribe), then one batch per
// Publish call that had events f admits, each event exactly once and in
// publish order. A subscriber with SubscriberBuffer events pending misses
// whole batches that would take it beyond that (a batch is never cut: it is
// shared); one with nothing pending takes a batch of any size. The caller
// must call Sub.Close.
func (h *Hub) SubscribeBatches(f Filter) *Sub {
	s := h.newSub(f)
	s.ready = make(chan struct{}, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		s.closed = true
		s.ready <- struct{}{}
		return s
	}
	if evs, at := h.replay(s.set); len(evs) > 0 {
		s.push(&Batch{Events: evs, At: at})
	}
	h.add(s)
	return s
}

func (h *Hub) newSub(f Filter) *Sub {
	return &Sub{h: h, set: newDomainSet(f.Domains), limit: h.buf}
}

// replay returns the replay for a new subscriber of set, and when each of
// its events was published. h.mu must be held.
func (h *Hub) replay(set domainSet) ([]*peba.Event, []time.Time) {
	var out []*peba.Event
	var at []time.Time
	cutoff := h.now().Add(-h.age)
	n := len(h.ring)
	for i := 0; i < n; i++ {
		k := (h.next + i) % n // oldest first
		e := &h.ring[k]
		if e.at.Before(cutoff) || !set.has(e.ev.Domain) {
			continue
		}
		if e.inSlot {
			// Subscribers keep what they get: the slot is reused.
			c := new(peba.Event)
			*c = *e.ev
			e.ev, e.inSlot = c, false
		}
		out = append(out, e.ev)
		at = append(at, e.at)
	}
	h.delivered.Add(float64(len(out)))
	return out, at
}

// add registers s. h.mu must be held.
func (h *Hub) add(s *Sub) {
	h.subs[s] = struct{}{}
	h.subscribers.Inc()
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
	close(h.done)
	for s := range h.subs {
		h.unsubscribe(s)
	}
}

// unsubscribe removes s and closes its channel (or marks it closed and
// wakes its batch consumer). h.mu must be held.
func (h *Hub) unsubscribe(s *Sub) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	delete(h.subs, s)
	h.subscribers.Dec()
	if s.c != nil {
		close(s.c)
		return
	}
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Sub is one subscription, from Subscribe (events on C) or SubscribeBatches
// (batches through Ready and Take).
type Sub struct {
	h     *Hub
	set   domainSet        // the Filter's domains
	limit int              // SubscriberBuffer
	c     chan *peba.Event // Subscribe only
	ready chan struct{}    // SubscribeBatches only; capacity 1

	mu     sync.Mutex
	queue  []*Batch // SubscribeBatches: pending, oldest first
	queued int      // events in queue
	missed int64
	closed bool
}

// Batch is the events of one Publish call that one filter admits, or a new
// subscriber's replay, in publish order. It is shared by every subscriber
// of that filter: receivers must not modify it or its events.
type Batch struct {
	Events []*peba.Event
	// At is, for a replay (the first batch of SubscribeBatches), when
	// each event was published: a consumer that keeps its own replay ages
	// them by it. Nil for a live batch, published just before it is taken.
	At []time.Time

	memoMu sync.Mutex                  // serializes builds
	memo   atomic.Pointer[[]memoEntry] // copy on write: lookups take no lock
}

type memoEntry struct {
	key, val any
}

// Memo returns the value stored under key, computing it with build on the
// first call. It lets the subscribers sharing a batch share what they
// derive from it (the live feed encodes a batch once per audience, not once
// per viewer). Concurrent callers wait for the first one's build.
func (b *Batch) Memo(key any, build func() any) any {
	if v, ok := b.lookup(key); ok {
		return v
	}
	// All the viewers of a batch wake together: the first builds, the
	// others wait here for its result.
	b.memoMu.Lock()
	defer b.memoMu.Unlock()
	if v, ok := b.lookup(key); ok {
		return v
	}
	v := build()
	var next []memoEntry
	if old := b.memo.Load(); old != nil {
		next = append(next, *old...)
	}
	next = append(next, memoEntry{key, v})
	b.memo.Store(&next)
	return v
}

func (b *Batch) lookup(key any) (any, bool) {
	if m := b.memo.Load(); m != nil {
		for _, e := range *m {
			if e.key == key {
				return e.val, true
			}
		}
	}
	return nil, false
}

// push queues b and wakes the consumer; false if b is missed instead.
func (s *Sub) push(b *Batch) bool {
	n := len(b.Events)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return true
	}
	if s.queued > 0 && s.queued+n > s.limit {
		s.missed += int64(n)
		s.mu.Unlock()
		return false
	}
	s.queue = append(s.queue, b)
	s.queued += n
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
	return true
}

// C returns the events of a subscription from Subscribe (nil for one from
// SubscribeBatches). The events are shared with other subscribers and the
// replay buffer: receivers must not modify them. The channel is closed by
// Close (of the Sub or the Hub).
func (s *Sub) C() <-chan *peba.Event { return s.c }

// Ready returns a channel that receives a value when Take may have
// something new: batches, or the end of the subscription. It may also fire
// when there is nothing new (for batches a Take got already). For a
// subscription from Subscribe it is nil.
func (s *Sub) Ready() <-chan struct{} { return s.ready }

// Take appends the pending batches to dst (oldest first) and returns it.
// more is false once the subscription is closed: dst then holds the last
// batches. Receivers must not modify the batches or their events.
func (s *Sub) Take(dst []*Batch) (batches []*Batch, more bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dst = append(dst, s.queue...)
	clear(s.queue) // do not pin taken batches
	s.queue = s.queue[:0]
	s.queued = 0
	return dst, !s.closed
}

// Missed returns how many admitted events this subscriber missed because its
// buffer was full.
func (s *Sub) Missed() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.missed
}

// Close ends the subscription and closes its channel. It is idempotent.
func (s *Sub) Close() {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	s.h.unsubscribe(s)
}

// Done returns a channel that is closed when the hub is closed (for a
// consumer that is not always subscribed).
func (h *Hub) Done() <-chan struct{} { return h.done }

// ReplayLimits returns the effective replay size and age, for consumers that
// keep their own replay of what they forwarded (the Socket.IO broadcaster).
func (h *Hub) ReplayLimits() (int, time.Duration) { return h.size, h.age }

// domainSet is a Filter as a bit set (peba.Domain is an int8).
type domainSet [4]uint64

func newDomainSet(ds []peba.Domain) domainSet {
	var s domainSet
	for _, d := range ds {
		u := uint8(d)
		s[u/64] |= 1 << (u % 64)
	}
	return s
}

func (s domainSet) has(d peba.Domain) bool {
	u := uint8(d)
	return s[u/64]&(1<<(u%64)) != 0
}

// view is the Batch one Publish call builds for one filter.
type view struct {
	set domainSet
	b   *Batch // nil if the filter admits none of the events
}

// viewFor returns the batch of evs that set admits, building it on first
// use; nil if set admits none.
func viewFor(views *[]view, set domainSet, evs []*peba.Event) *Batch {
	for _, v := range *views {
		if v.set == set {
			return v.b
		}
	}
	var b *Batch
	admitted := evs[:0:0]
	for _, ev := range evs {
		if set.has(ev.Domain) {
			admitted = append(admitted, ev)
		}
	}
	if len(admitted) > 0 {
		b = &Batch{Events: admitted}
	}
	*views = append(*views, view{set, b})
	return b
}
