package hub_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/hub"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	anon     = hub.Filter{Domains: []peba.Domain{peba.DomainCommunity}}
	entitled = hub.Filter{Domains: []peba.Domain{peba.DomainCommunity, peba.DomainPrivate}}
)

func ev(id string, d peba.Domain) peba.Event { return peba.Event{ID: id, Domain: d} }

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// ids drains what is queued on s without waiting.
func ids(s *hub.Sub) []string {
	var out []string
	for {
		select {
		case e, ok := <-s.C():
			if !ok {
				return out
			}
			out = append(out, e.ID)
		default:
			return out
		}
	}
}

func eq(t *testing.T, got []string, want ...string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestReplaySizeAndOrder(t *testing.T) {
	h := hub.New(hub.Options{ReplaySize: 3})
	for i := range 5 {
		h.Publish([]peba.Event{ev(fmt.Sprint(i), peba.DomainCommunity)})
	}
	s := h.Subscribe(anon)
	defer s.Close()
	eq(t, ids(s), "2", "3", "4")
	h.Publish([]peba.Event{ev("5", peba.DomainCommunity)})
	eq(t, ids(s), "5")
}

// A batch larger than the replay, published while nobody listens (the hub
// then copies only what it keeps), still leaves its newest events in order.
func TestReplayOfABigBatchWithoutSubscribers(t *testing.T) {
	h := hub.New(hub.Options{ReplaySize: 3})
	h.Publish([]peba.Event{ev("a", peba.DomainCommunity), ev("b", peba.DomainCommunity)})
	var big []peba.Event
	for i := range 10 {
		big = append(big, ev(fmt.Sprint(i), peba.DomainCommunity))
	}
	h.Publish(big)
	s := h.Subscribe(anon)
	defer s.Close()
	eq(t, ids(s), "7", "8", "9")
	h.Publish([]peba.Event{ev("x", peba.DomainCommunity), ev("y", peba.DomainCommunity)})
	eq(t, ids(s), "x", "y")
	h2 := hub.New(hub.Options{ReplaySize: 3})
	h2.Publish(big[:2])
	h2.Publish(big[2:3])
	s2 := h2.Subscribe(anon)
	defer s2.Close()
	eq(t, ids(s2), "0", "1", "2")
}

// Several batches in one Publish are one publication in their order:
// without subscribers the replay keeps the newest across the batches (the
// skip crosses batch boundaries), and a subscriber gets them all in order,
// in one Batch.
func TestPublishOfSeveralBatches(t *testing.T) {
	batch := func(ids ...string) []peba.Event {
		var b []peba.Event
		for _, id := range ids {
			b = append(b, ev(id, peba.DomainCommunity))
		}
		return b
	}
	h := hub.New(hub.Options{ReplaySize: 4})
	h.Publish(batch("a", "b", "c"), nil, batch("d", "e"), batch("f"))
	s := h.Subscribe(anon)
	eq(t, ids(s), "c", "d", "e", "f")
	s.Close()

	h.Publish(batch("g"), batch("h", "i", "j", "k", "l"))
	s = h.Subscribe(anon)
	eq(t, ids(s), "i", "j", "k", "l")
	h.Publish(batch("m", "n"), batch("o"))
	eq(t, ids(s), "m", "n", "o")
	s.Close()

	bs := h.SubscribeBatches(anon)
	defer bs.Close()
	taken(t, bs) // the replay
	h.Publish(batch("p"), batch("q", "r"))
	got, n := taken(t, bs)
	if n != 1 {
		t.Errorf("one Publish of two slices arrived as %d batches, want 1", n)
	}
	eq(t, got, "p", "q", "r")
}

// Without subscribers the replay is kept in the ring's own slots. What a
// subscriber got from them stays as it was when the slots are reused, and
// what a publisher does with its slice afterwards changes nothing.
func TestReplaySlotsAreNotShared(t *testing.T) {
	h := hub.New(hub.Options{ReplaySize: 2})
	pub := []peba.Event{ev("a", peba.DomainCommunity), ev("b", peba.DomainCommunity)}
	pub[1].Payload = &peba.Payload{Data: []byte("bytes")}
	h.Publish(pub)
	pub[0].ID = "changed by the publisher"
	s := h.Subscribe(anon)
	a, b := <-s.C(), <-s.C()
	s.Close()
	if a.ID != "a" || b.ID != "b" || b.Payload != nil {
		t.Fatalf("replay %q %q (payload %v), want a b without payload", a.ID, b.ID, b.Payload)
	}
	h.Publish([]peba.Event{ev("c", peba.DomainCommunity), ev("d", peba.DomainCommunity)})
	if a.ID != "a" || b.ID != "b" {
		t.Fatalf("a replayed event changed to %q %q when the ring was reused", a.ID, b.ID)
	}
	s2 := h.Subscribe(anon)
	defer s2.Close()
	eq(t, ids(s2), "c", "d")
}

func TestReplayAge(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	h := hub.New(hub.Options{ReplayAge: time.Minute, Now: c.now})
	h.Publish([]peba.Event{ev("old", peba.DomainCommunity)})
	c.add(45 * time.Second)
	h.Publish([]peba.Event{ev("new", peba.DomainCommunity)})
	c.add(30 * time.Second) // "old" is 75 s old, "new" 30 s
	s := h.Subscribe(anon)
	defer s.Close()
	eq(t, ids(s), "new")
}

// A replay batch carries when each event was published (a consumer that
// keeps its own replay, the Socket.IO broadcaster, ages them by it); a
// live batch does not. Done is closed with the hub.
func TestBatchReplayPublishTimesAndDone(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	h := hub.New(hub.Options{Now: c.now})
	h.Publish([]peba.Event{ev("a", peba.DomainCommunity), ev("p", peba.DomainPrivate)})
	c.add(10 * time.Second)
	h.Publish([]peba.Event{ev("b", peba.DomainCommunity)})
	c.add(5 * time.Second)
	s := h.SubscribeBatches(anon)
	defer s.Close()
	bs, _ := s.Take(nil)
	if len(bs) != 1 || len(bs[0].Events) != 2 || len(bs[0].At) != 2 {
		t.Fatalf("replay: %d batches, want 1 with a and b and their times", len(bs))
	}
	if want := time.Unix(1e9, 0); !bs[0].At[0].Equal(want) || !bs[0].At[1].Equal(want.Add(10*time.Second)) {
		t.Errorf("replay times %v, want the publication times", bs[0].At)
	}
	h.Publish([]peba.Event{ev("c", peba.DomainCommunity)})
	if bs, _ = s.Take(nil); len(bs) != 1 || bs[0].At != nil {
		t.Errorf("live batch: %d batches, At %v; want 1 without times", len(bs), bs)
	}
	select {
	case <-h.Done():
		t.Fatal("Done closed before Close")
	default:
	}
	h.Close()
	<-h.Done()
}

func TestReplayDisabled(t *testing.T) {
	h := hub.New(hub.Options{ReplaySize: -1})
	h.Publish([]peba.Event{ev("a", peba.DomainCommunity)})
	s := h.Subscribe(anon)
	defer s.Close()
	eq(t, ids(s))
}

func TestFilterKeepsPrivateFromAnonymous(t *testing.T) {
	h := hub.New(hub.Options{})
	h.Publish([]peba.Event{ev("c1", peba.DomainCommunity), ev("p1", peba.DomainPrivate)})
	a, e, none := h.Subscribe(anon), h.Subscribe(entitled), h.Subscribe(hub.Filter{})
	defer a.Close()
	defer e.Close()
	defer none.Close()
	h.Publish([]peba.Event{ev("p2", peba.DomainPrivate), ev("c2", peba.DomainCommunity)})
	eq(t, ids(a), "c1", "c2")
	eq(t, ids(e), "c1", "p1", "p2", "c2")
	eq(t, ids(none)) // a zero Filter admits nothing
}

func TestPublishCopiesAndDropsPayloadBytes(t *testing.T) {
	h := hub.New(hub.Options{})
	s := h.Subscribe(anon)
	defer s.Close()
	batch := []peba.Event{{ID: "a", Domain: peba.DomainCommunity, Payload: &peba.Payload{Data: []byte("x")}}}
	h.Publish(batch)
	batch[0].ID = "changed"
	got := <-s.C()
	if got.ID != "a" || got.Payload != nil {
		t.Fatalf("got ID %q payload %v, want a copy without payload", got.ID, got.Payload)
	}
}

func TestSlowSubscriberDoesNotBlockPublish(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := hub.New(hub.Options{SubscriberBuffer: 4, ReplaySize: -1, Registerer: reg})
	slow := h.Subscribe(anon) // never reads
	defer slow.Close()
	fast := h.Subscribe(anon)
	defer fast.Close()
	var got []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range fast.C() {
			got = append(got, e.ID)
			if len(got) == 100 {
				return
			}
		}
	}()
	finished := make(chan struct{})
	go func() {
		for i := range 100 {
			h.Publish([]peba.Event{ev(fmt.Sprint(i), peba.DomainCommunity)})
			// Give the fast reader a chance so only the slow one misses.
			time.Sleep(50 * time.Microsecond)
		}
		close(finished)
	}()
	select {
	case <-finished:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a full subscriber")
	}
	if m := slow.Missed(); m != 96 {
		t.Errorf("slow subscriber missed %d, want 96", m)
	}
	eq(t, ids(slow), "0", "1", "2", "3") // the oldest survive; later ones are skipped
	if v := metric(t, reg, "peba_livefeed_published_events_total"); v != 100 {
		t.Errorf("published = %v", v)
	}
	if v := metric(t, reg, "peba_livefeed_dropped_events_total"); v < 96 {
		t.Errorf("dropped = %v, want >= 96", v)
	}
	metric(t, reg, "peba_livefeed_delivered_events_total")
	<-done
}

func TestCloseAndSubscriberGauge(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := hub.New(hub.Options{Registerer: reg})
	a := h.Subscribe(anon)
	b := h.Subscribe(anon)
	if v := metric(t, reg, "peba_livefeed_subscribers"); v != 2 {
		t.Fatalf("subscribers = %v", v)
	}
	a.Close()
	a.Close() // idempotent
	if _, ok := <-a.C(); ok {
		t.Fatal("channel open after Sub.Close")
	}
	h.Close()
	if _, ok := <-b.C(); ok {
		t.Fatal("channel open after Hub.Close")
	}
	b.Close()
	if v := metric(t, reg, "peba_livefeed_subscribers"); v != 0 {
		t.Fatalf("subscribers = %v after close", v)
	}
	h.Publish([]peba.Event{ev("late", peba.DomainCommunity)}) // no panic
	if _, ok := <-h.Subscribe(anon).C(); ok {
		t.Fatal("subscribe after Hub.Close got an open channel")
	}
}

func TestConcurrentPublishSubscribe(t *testing.T) {
	h := hub.New(hub.Options{SubscriberBuffer: 8})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := range 200 {
				h.Publish([]peba.Event{ev(fmt.Sprint(i, j), peba.Domain(1+j%2))})
			}
		}()
		go func() {
			defer wg.Done()
			for range 50 {
				s := h.Subscribe(anon)
				for range 3 {
					select {
					case e := <-s.C():
						if e.Domain != peba.DomainCommunity {
							t.Error("private event to anonymous subscriber")
						}
					default:
					}
				}
				s.Close()
			}
		}()
	}
	wg.Wait()
	h.Close()
}

func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// taken returns the IDs of everything pending on a batch subscriber, and
// the number of batches they came in.
func taken(t *testing.T, s *hub.Sub) (ids []string, batches int) {
	t.Helper()
	bs, _ := s.Take(nil)
	for _, b := range bs {
		for _, e := range b.Events {
			ids = append(ids, e.ID)
		}
	}
	return ids, len(bs)
}

func TestBatchesReplayOrderAndFilter(t *testing.T) {
	h := hub.New(hub.Options{ReplaySize: 3})
	for i := range 3 {
		h.Publish([]peba.Event{ev(fmt.Sprint("c", i), peba.DomainCommunity), ev(fmt.Sprint("p", i), peba.DomainPrivate)})
	}
	// The ring holds p1 c2 p2.
	a, e, none := h.SubscribeBatches(anon), h.SubscribeBatches(entitled), h.SubscribeBatches(hub.Filter{})
	defer a.Close()
	defer e.Close()
	defer none.Close()
	select {
	case <-a.Ready():
	default:
		t.Fatal("replay not signaled")
	}
	got, n := taken(t, a)
	eq(t, got, "c2")
	got, _ = taken(t, e)
	eq(t, got, "p1", "c2", "p2")
	if n != 1 {
		t.Fatalf("replay came in %d batches, want 1", n)
	}

	h.Publish([]peba.Event{ev("c3", peba.DomainCommunity), ev("p3", peba.DomainPrivate)})
	h.Publish([]peba.Event{ev("p4", peba.DomainPrivate)})
	h.Publish([]peba.Event{ev("c5", peba.DomainCommunity)})
	<-a.Ready()
	got, n = taken(t, a)
	eq(t, got, "c3", "c5") // the all-private Publish is no batch for anon
	if n != 2 {
		t.Fatalf("anon took %d batches, want 2", n)
	}
	got, n = taken(t, e)
	eq(t, got, "c3", "p3", "p4", "c5")
	if n != 3 {
		t.Fatalf("entitled took %d batches, want 3", n)
	}
	got, _ = taken(t, none) // a zero Filter admits nothing
	eq(t, got)
	got, _ = taken(t, a) // taken means gone
	eq(t, got)
}

func TestBatchesAreSharedAndMemoized(t *testing.T) {
	h := hub.New(hub.Options{ReplaySize: -1})
	s1, s2, s3 := h.SubscribeBatches(anon), h.SubscribeBatches(anon), h.SubscribeBatches(entitled)
	defer s1.Close()
	defer s2.Close()
	defer s3.Close()
	h.Publish([]peba.Event{ev("c1", peba.DomainCommunity), ev("p1", peba.DomainPrivate)})
	b1, _ := s1.Take(nil)
	b2, _ := s2.Take(nil)
	b3, _ := s3.Take(nil)
	if b1[0] != b2[0] {
		t.Fatal("subscribers of one filter got different batches")
	}
	if b1[0] == b3[0] || len(b3[0].Events) != 2 || b1[0].Events[0] != b3[0].Events[0] {
		t.Fatal("filters must get their own batches of the same events")
	}
	builds := 0
	build := func() any { builds++; return "encoded" }
	for range 3 {
		if v := b1[0].Memo("sse-anon", build); v != "encoded" {
			t.Fatalf("Memo = %v", v)
		}
	}
	b2[0].Memo("other", build)
	if builds != 2 {
		t.Fatalf("built %d times, want once per key", builds)
	}
}

func TestBatchesSlowSubscriberMissesWholeBatches(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := hub.New(hub.Options{SubscriberBuffer: 4, ReplaySize: -1, Registerer: reg})
	slow := h.SubscribeBatches(anon)
	defer slow.Close()
	batch := func(ids ...string) []peba.Event {
		var out []peba.Event
		for _, id := range ids {
			out = append(out, ev(id, peba.DomainCommunity))
		}
		return out
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Publish(batch("a", "b", "c", "d", "e", "f")) // nothing pending: taken whole, beyond the buffer
		h.Publish(batch("g"))                          // 6 pending: missed
		for i := range 1000 {
			h.Publish(batch(fmt.Sprint(i))) // never blocks
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a slow subscriber")
	}
	got, _ := taken(t, slow)
	eq(t, got, "a", "b", "c", "d", "e", "f")
	if m := slow.Missed(); m != 1001 {
		t.Errorf("missed %d, want 1001", m)
	}
	if v := metric(t, reg, "peba_livefeed_dropped_events_total"); v != 1001 {
		t.Errorf("dropped = %v", v)
	}
	h.Publish(batch("after")) // caught up: delivered again
	got, _ = taken(t, slow)
	eq(t, got, "after")
}

func TestBatchesClose(t *testing.T) {
	h := hub.New(hub.Options{})
	s := h.SubscribeBatches(anon)
	h.Publish([]peba.Event{ev("a", peba.DomainCommunity)})
	h.Close()
	<-s.Ready()
	bs, more := s.Take(nil)
	if more || len(bs) != 1 || bs[0].Events[0].ID != "a" {
		t.Fatalf("after Hub.Close: %d batches, more %v; want the pending one and the end", len(bs), more)
	}
	s.Close() // idempotent after Hub.Close
	late := h.SubscribeBatches(anon)
	<-late.Ready()
	if bs, more := late.Take(nil); more || len(bs) != 0 {
		t.Fatal("subscribe after Hub.Close is not closed")
	}

	h2 := hub.New(hub.Options{})
	s2 := h2.SubscribeBatches(anon)
	s2.Close()
	h2.Publish([]peba.Event{ev("x", peba.DomainCommunity)})
	if bs, more := s2.Take(nil); more || len(bs) != 0 {
		t.Fatal("closed subscriber still receives")
	}
}
