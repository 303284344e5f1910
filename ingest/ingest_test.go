package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/duckdb"
	"github.com/peba-go/peba/ingest"
	"github.com/peba-go/peba/journal"
	"github.com/prometheus/client_golang/prometheus"
)

func openStore(t *testing.T) *duckdb.Store {
	t.Helper()
	st, err := duckdb.Open(filepath.Join(t.TempDir(), "peba.duckdb"), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func events(prefix string, n int) []peba.Event {
	out := make([]peba.Event, n)
	for i := range out {
		out[i] = peba.Event{
			ID:         fmt.Sprintf("%s-%04d", prefix, i),
			Origin:     "ews",
			CreateTime: time.Date(2026, 11, 20, 8, 0, i%60, 0, time.UTC),
			PeerIdent:  "cowrie-community-01",
			PeerType:   "SSH/console(cowrie)",
			SrcIP:      netip.MustParseAddr("216.160.83.56"),
			SrcPort:    int32(40000 + i),
			DstIP:      netip.MustParseAddr("81.2.69.142"),
			DstPort:    22,
			Transport:  "tcp",
		}
	}
	return out
}

type fixedGeo struct{}

func (fixedGeo) Lookup(ip netip.Addr) peba.Geo {
	return peba.Geo{Country: "SE", CountryName: "Sweden", ASN: "AS1 Test", Lat: 59.3, Lon: 18.1}
}

func TestConcurrentSubmitsShareCommitsAndAreAllStored(t *testing.T) {
	st := openStore(t)
	reg := prometheus.NewRegistry()
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	p := ingest.New(st, fixedGeo{}, nil, ingest.Options{Registerer: reg, Now: func() time.Time { return now }})
	const senders, per = 16, 50
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := p.Submit(context.Background(), peba.DomainPrivate, events(fmt.Sprintf("s%02d", s), per))
			if err != nil || res.Accepted != per {
				t.Errorf("sender %d: %+v %v", s, res, err)
			}
		}()
	}
	wg.Wait()
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, total, err := st.FindEvents(context.Background(), peba.EventFilter{Limit: 1})
	if err != nil || total != senders*per {
		t.Fatalf("stored %d events, want %d (%v)", total, senders*per, err)
	}
	e := got[0]
	if e.Domain != peba.DomainPrivate || !e.ReceivedTime.Equal(now) || e.Src.Country != "SE" || e.Dst.ASN != "AS1 Test" {
		t.Errorf("event not enriched: %+v", e)
	}
	commits := histogramCount(t, reg, "peba_ingest_commit_seconds")
	if commits == 0 || commits > senders {
		t.Errorf("%d commits for %d senders", commits, senders)
	}
	t.Logf("%d senders were committed in %d transactions", senders, commits)
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("metric %s missing", name)
	return 0
}

func TestResubmitIsDeduplicated(t *testing.T) {
	st := openStore(t)
	reg := prometheus.NewRegistry()
	p := ingest.New(st, nil, nil, ingest.Options{Journal: openJournal(t, t.TempDir()), Registerer: reg})
	defer p.Close(context.Background())
	ev := events("a", 20)
	if res, err := p.Submit(context.Background(), peba.DomainCommunity, ev); err != nil || res.Accepted != 20 {
		t.Fatalf("first: %+v %v", res, err)
	}
	again := events("a", 25) // 20 resent + 5 new
	if res, err := p.Submit(context.Background(), peba.DomainCommunity, again); err != nil || res.Accepted != 25 {
		t.Fatalf("resend: %+v %v", res, err)
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, total, err := st.FindEvents(context.Background(), peba.EventFilter{}); err != nil || total != 25 {
		t.Fatalf("stored %d, want 25 (%v)", total, err)
	}
	if ins, dup := counter(t, reg, "inserted"), counter(t, reg, "duplicate"); ins != 25 || dup != 20 {
		t.Fatalf("inserted=%v duplicate=%v, want 25 and 20", ins, dup)
	}
}

func counter(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "peba_ingest_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func openJournal(t *testing.T, dir string) *journal.Journal {
	t.Helper()
	j, err := journal.Open(dir, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func TestOverloadFailsFastAndRetryably(t *testing.T) {
	p := ingest.New(openStore(t), nil, nil, ingest.Options{QueueEvents: 10})
	defer p.Close(context.Background())
	_, err := p.Submit(context.Background(), peba.DomainCommunity, events("x", 11))
	if !errors.Is(err, ingest.ErrOverloaded) || peba.ErrorCode(err) != peba.EUNAVAILABLE {
		t.Fatalf("err = %v, want ErrOverloaded", err)
	}
	if res, err := p.Submit(context.Background(), peba.DomainCommunity, events("x", 10)); err != nil || res.Accepted != 10 {
		t.Fatalf("within bound: %+v %v", res, err)
	}
}

func TestSubmitAfterCloseIsRefused(t *testing.T) {
	p := ingest.New(openStore(t), nil, nil, ingest.Options{})
	p.Close(context.Background())
	if _, err := p.Submit(context.Background(), peba.DomainCommunity, events("c", 1)); !errors.Is(err, ingest.ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
}

// gatedStore holds the first commit until released, so that the requests
// queued meanwhile are committed together in the next group. It refuses,
// as invalid, every transaction that holds an event with ID prefix
// "poison" (Submit's validation keeps real invalid events out of the store,
// so a refusal at apply time can only be simulated).
type gatedStore struct {
	*duckdb.Store
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (g *gatedStore) AppendEvents(ctx context.Context, ev []peba.Event) (peba.AppendResult, error) {
	g.once.Do(func() { close(g.entered); <-g.release })
	for _, e := range ev {
		if strings.HasPrefix(e.ID, "poison") {
			return peba.AppendResult{}, peba.Errorf(peba.EINVALID, "poisoned")
		}
	}
	return g.Store.AppendEvents(ctx, ev)
}

func TestPoisonedBatchDoesNotFailItsGroup(t *testing.T) {
	for _, withJournal := range []bool{false, true} {
		t.Run(fmt.Sprintf("journal=%v", withJournal), func(t *testing.T) {
			g := &gatedStore{Store: openStore(t), entered: make(chan struct{}), release: make(chan struct{})}
			reg := prometheus.NewRegistry()
			opt := ingest.Options{Registerer: reg}
			if withJournal {
				opt.Journal = openJournal(t, t.TempDir())
			}
			p := ingest.New(g, nil, nil, opt)
			defer p.Close(context.Background())
			first := make(chan error, 1)
			go func() {
				_, err := p.Submit(context.Background(), peba.DomainCommunity, events("first", 1))
				first <- err
			}()
			if !withJournal {
				<-g.entered
			}
			results := make(chan error, 2)
			go func() {
				_, err := p.Submit(context.Background(), peba.DomainCommunity, events("good", 3))
				results <- err
			}()
			go func() {
				_, err := p.Submit(context.Background(), peba.DomainCommunity, events("poison", 3))
				results <- err
			}()
			if withJournal {
				<-g.entered
			}
			time.Sleep(100 * time.Millisecond) // let both queue behind the held commit
			close(g.release)
			if err := <-first; err != nil {
				t.Fatal(err)
			}
			var ok, failed int
			for range 2 {
				if err := <-results; err != nil {
					failed++
				} else {
					ok++
				}
			}
			if err := p.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			// Without a journal the poisoned sender hears the refusal; with
			// one it was acknowledged before, and the loss is counted.
			wantOK, wantRefused := 1, 0.0
			if withJournal {
				wantOK, wantRefused = 2, 3
			}
			if ok != wantOK || failed != 2-wantOK {
				t.Fatalf("ok=%d failed=%d, want %d ok", ok, failed, wantOK)
			}
			if got := counter(t, reg, "refused"); got != wantRefused {
				t.Fatalf("refused = %v, want %v", got, wantRefused)
			}
			_, total, _ := g.FindEvents(context.Background(), peba.EventFilter{})
			if total != 4 {
				t.Fatalf("stored %d, want 4 (first + good; nothing of poison)", total)
			}
		})
	}
}

func TestInvalidEventIsRefusedBeforeAcknowledgement(t *testing.T) {
	st := openStore(t)
	p := ingest.New(st, nil, nil, ingest.Options{Journal: openJournal(t, t.TempDir())})
	defer p.Close(context.Background())
	bad := events("bad", 3)
	bad[1].Username = "\xff\xfe not UTF-8"
	if _, err := p.Submit(context.Background(), peba.DomainCommunity, bad); peba.ErrorCode(err) != peba.EINVALID {
		t.Fatalf("err = %v, want EINVALID", err)
	}
	long := events("long", 1)
	long[0].Fields = []peba.Attr{{Key: "k", Value: strings.Repeat("<", peba.MaxFieldLen/6)}} // 6x as JSON
	if _, err := p.Submit(context.Background(), peba.DomainCommunity, long); peba.ErrorCode(err) != peba.EINVALID {
		t.Fatalf("err = %v, want EINVALID for attributes too long as JSON", err)
	}
	p.Flush(context.Background())
	if _, total, _ := st.FindEvents(context.Background(), peba.EventFilter{}); total != 0 {
		t.Fatalf("stored %d events of refused batches", total)
	}
}

// stuckStore never applies anything: the pipeline over it acknowledges from
// the journal and then "crashes" with everything unapplied.
type stuckStore struct{ peba.Store }

func (stuckStore) AppendEvents(context.Context, []peba.Event) (peba.AppendResult, error) {
	return peba.AppendResult{}, errors.New("store is stuck")
}

func TestAcknowledgedEventsSurviveACrashBeforeApply(t *testing.T) {
	jdir := t.TempDir()
	crashed := ingest.New(stuckStore{}, fixedGeo{}, nil, ingest.Options{Journal: openJournal(t, jdir)})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		crashed.Close(ctx) // gives up: the store never recovers
	}()
	const senders, per = 8, 30
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			if _, err := crashed.Submit(context.Background(), peba.DomainPrivate, events(fmt.Sprintf("c%d", s), per)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// The crash: the journal directory as it is now, nothing applied.
	copied := t.TempDir()
	ents, _ := os.ReadDir(jdir)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(jdir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(copied, e.Name()), b, 0o640)
	}

	st := openStore(t)
	var published int
	p := ingest.New(st, nil, nil, ingest.Options{Journal: openJournal(t, copied), OnCommit: func(bs ...[]peba.Event) {
		for _, b := range bs {
			published += len(b)
		}
	}})
	rec, err := p.Recover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rec.Batches != senders || rec.Events != senders*per || rec.Inserted != senders*per {
		t.Fatalf("recovered %+v, want %d batches, %d events, all inserted", rec, senders, senders*per)
	}
	if published != 0 {
		t.Fatalf("recovered events were published to the live feed: %d", published)
	}
	got, total, err := st.FindEvents(context.Background(), peba.EventFilter{ID: "c3-0007"})
	if err != nil || total != 1 {
		t.Fatalf("event c3-0007: %d found (%v)", total, err)
	}
	if e := got[0]; e.Domain != peba.DomainPrivate || e.Src.Country != "SE" || e.SrcPort != 40007 {
		t.Fatalf("recovered event lost its enrichment: %+v", e)
	}
	if _, total, _ := st.FindEvents(context.Background(), peba.EventFilter{}); total != senders*per {
		t.Fatalf("stored %d, want %d", total, senders*per)
	}
	// Recovery checkpointed: nothing to replay a second time.
	if again, err := p.Recover(context.Background()); err != nil || again.Batches != 0 {
		t.Fatalf("second recovery: %+v %v", again, err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestJournaledEventsAreAppliedPublishedAndCheckpointed(t *testing.T) {
	st := openStore(t)
	jdir := t.TempDir()
	j := openJournal(t, jdir)
	reg := prometheus.NewRegistry()
	var mu sync.Mutex
	published := map[string]bool{}
	p := ingest.New(st, nil, nil, ingest.Options{Journal: j, Registerer: reg, OnCommit: func(bs ...[]peba.Event) {
		mu.Lock()
		defer mu.Unlock()
		for _, b := range bs {
			for _, e := range b {
				published[e.ID] = true
			}
		}
	}})
	var wg sync.WaitGroup
	for s := range 16 {
		wg.Go(func() {
			if _, err := p.Submit(context.Background(), peba.DomainCommunity, events(fmt.Sprintf("j%02d", s), 50)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, total, _ := st.FindEvents(context.Background(), peba.EventFilter{}); total != 800 {
		t.Fatalf("stored %d, want 800", total)
	}
	if len(published) != 800 {
		t.Fatalf("published %d, want 800", len(published))
	}
	var left int
	if err := j.Replay(func([]byte) error { left++; return nil }); err != nil || left != 0 {
		t.Fatalf("%d records left after Close (%v), want all checkpointed", left, err)
	}
}

// TestOverloadedWhileQueueIsFull checks Overloaded, which the HTTP handler
// asks before it decodes a batch: true exactly while the queue has no room.
func TestOverloadedWhileQueueIsFull(t *testing.T) {
	ctx := context.Background()
	g := &gatedStore{Store: openStore(t), entered: make(chan struct{}), release: make(chan struct{})}
	p := ingest.New(g, nil, nil, ingest.Options{QueueEvents: 10})
	defer p.Close(ctx)
	if p.Overloaded() {
		t.Fatal("Overloaded with an empty queue")
	}
	done := make(chan error, 1)
	go func() {
		_, err := p.Submit(ctx, peba.DomainCommunity, events("full", 10))
		done <- err
	}()
	<-g.entered
	if !p.Overloaded() {
		t.Fatal("not Overloaded with a full queue")
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p.Overloaded() {
		t.Fatal("Overloaded after the queue was committed")
	}
}

// A sender that finds the queue full waits up to WaitRoom's bound: it is
// refused if the store is still busy when the bound passes, and admitted as
// soon as the apply in progress makes room, not at the end of the bound.
func TestWaitRoomWaitsForTheApplyInProgress(t *testing.T) {
	ctx := context.Background()
	g := &gatedStore{Store: openStore(t), entered: make(chan struct{}), release: make(chan struct{})}
	p := ingest.New(g, nil, nil, ingest.Options{QueueEvents: 10})
	defer p.Close(ctx)
	if !p.WaitRoom(ctx, 0) {
		t.Fatal("no room in an empty queue")
	}
	done := make(chan error, 1)
	go func() {
		_, err := p.Submit(ctx, peba.DomainCommunity, events("full", 10))
		done <- err
	}()
	<-g.entered

	t0 := time.Now()
	if p.WaitRoom(ctx, 30*time.Millisecond) {
		t.Fatal("room while the store holds the whole queue")
	}
	if d := time.Since(t0); d < 30*time.Millisecond {
		t.Fatalf("refused after %s, before the bound of 30ms", d)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if p.WaitRoom(cctx, time.Minute) {
		t.Fatal("room reported to a cancelled caller while the queue is full")
	}

	waited := make(chan bool, 1)
	go func() { waited <- p.WaitRoom(ctx, time.Minute) }()
	select {
	case ok := <-waited:
		t.Fatalf("WaitRoom returned %v before the store made room", ok)
	case <-time.After(50 * time.Millisecond):
	}
	t0 = time.Now()
	close(g.release)
	select {
	case ok := <-waited:
		if !ok {
			t.Fatal("no room after the apply")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitRoom not woken by the apply")
	}
	t.Logf("woken %s after the store was released", time.Since(t0))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := p.Submit(ctx, peba.DomainCommunity, events("after", 10)); err != nil {
		t.Fatalf("admitted by WaitRoom, then: %v", err)
	}
}

// heldStore blocks AppendEvents while hold is set, to keep journaled
// events from being applied.
type heldStore struct {
	*duckdb.Store
	mu   sync.Mutex
	hold chan struct{}
}

func (h *heldStore) AppendEvents(ctx context.Context, ev []peba.Event) (peba.AppendResult, error) {
	h.mu.Lock()
	c := h.hold
	h.mu.Unlock()
	if c != nil {
		<-c
	}
	return h.Store.AppendEvents(ctx, ev)
}

// With Options.Fresh (the DuckDB store's ID filter), journaled events the
// store certainly does not hold are published before they are applied, and
// every event is still published once: not again when a resend of its batch
// arrives while it waits to be applied, nor after, nor by the apply.
func TestFreshEventsArePublishedAtJournalTimeOnce(t *testing.T) {
	h := &heldStore{Store: openStore(t)}
	var mu sync.Mutex
	published := map[string]int{}
	count := func(prefix string) (n int) {
		mu.Lock()
		defer mu.Unlock()
		for id, k := range published {
			if strings.HasPrefix(id, prefix) {
				n += k
			}
		}
		return n
	}
	p := ingest.New(h, nil, nil, ingest.Options{Journal: openJournal(t, t.TempDir()), Fresh: h.CertainlyNew,
		OnCommit: func(bs ...[]peba.Event) {
			mu.Lock()
			defer mu.Unlock()
			for _, b := range bs {
				for _, e := range b {
					published[e.ID]++
				}
			}
		}})
	ctx := context.Background()
	submit := func(evs []peba.Event) {
		t.Helper()
		if _, err := p.Submit(ctx, peba.DomainCommunity, evs); err != nil {
			t.Fatal(err)
		}
	}
	// The filter is loaded by the first append; until then nothing is
	// certainly new, and events are published after their apply.
	submit(events("w", 5))
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count("w"); n != 5 {
		t.Fatalf("warm-up: %d publications, want 5", n)
	}

	release := make(chan struct{})
	h.mu.Lock()
	h.hold = release
	h.mu.Unlock()
	submit(events("a", 20)) // acknowledged once journaled; the apply waits
	if n := count("a"); n != 20 {
		t.Fatalf("%d of 20 new events published before their apply, want all", n)
	}
	submit(events("a", 20)) // a resend while the first copy waits
	if n := count("a"); n != 20 {
		t.Fatalf("a resend in flight was published again: %d publications", n)
	}
	h.mu.Lock()
	h.hold = nil
	h.mu.Unlock()
	close(release)
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	submit(events("a", 20)) // a resend after the apply
	submit(events("b", 3))  // new events again
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for id, k := range published {
		if k != 1 {
			t.Errorf("event %s published %d times", id, k)
		}
	}
	if len(published) != 28 {
		t.Errorf("%d events published, want 28", len(published))
	}
	if _, total, _ := h.FindEvents(ctx, peba.EventFilter{}); total != 28 {
		t.Errorf("stored %d, want 28", total)
	}
}

// countingStore records the size of every store transaction.
type countingStore struct {
	*duckdb.Store
	mu    sync.Mutex
	sizes []int
}

func (c *countingStore) AppendEvents(ctx context.Context, ev []peba.Event) (peba.AppendResult, error) {
	c.mu.Lock()
	c.sizes = append(c.sizes, len(ev))
	c.mu.Unlock()
	return c.Store.AppendEvents(ctx, ev)
}

func (c *countingStore) transactions() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.sizes)
}

// waitStored polls until the store holds n events.
func waitStored(t *testing.T, st *duckdb.Store, n int, within time.Duration) time.Duration {
	t.Helper()
	t0 := time.Now()
	for {
		_, total, err := st.FindEvents(context.Background(), peba.EventFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if total == int64(n) {
			return time.Since(t0)
		}
		if time.Since(t0) > within {
			t.Fatalf("stored %d events after %s, want %d", total, within, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// With ApplyDelay, batches journaled within the delay share one store
// transaction; a Flush or a queue half full does not wait for it.
func TestApplyDelayGathersBatchesIntoOneTransaction(t *testing.T) {
	ctx := context.Background()
	t.Run("gathered", func(t *testing.T) {
		cs := &countingStore{Store: openStore(t)}
		p := ingest.New(cs, nil, nil, ingest.Options{Journal: openJournal(t, t.TempDir()), ApplyDelay: time.Second})
		defer p.Close(ctx)
		t0 := time.Now()
		for i := range 5 {
			if _, err := p.Submit(ctx, peba.DomainCommunity, events(fmt.Sprintf("g%d", i), 10)); err != nil {
				t.Fatal(err)
			}
		}
		if d := time.Since(t0); d > 500*time.Millisecond {
			t.Skipf("5 journal appends took %s: too slow a disk to tell", d)
		}
		waitStored(t, cs.Store, 50, 10*time.Second)
		if got := cs.transactions(); !slices.Equal(got, []int{50}) {
			t.Fatalf("transactions %v, want one of 50", got)
		}
		if d := time.Since(t0); d < 900*time.Millisecond {
			t.Fatalf("applied after %s, before the delay of 1s", d)
		}
	})
	t.Run("flush", func(t *testing.T) {
		cs := &countingStore{Store: openStore(t)}
		p := ingest.New(cs, nil, nil, ingest.Options{Journal: openJournal(t, t.TempDir()), ApplyDelay: time.Minute})
		defer p.Close(ctx)
		if _, err := p.Submit(ctx, peba.DomainCommunity, events("f", 10)); err != nil {
			t.Fatal(err)
		}
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := p.Flush(fctx); err != nil {
			t.Fatalf("Flush waited for the apply delay: %v", err)
		}
		waitStored(t, cs.Store, 10, time.Second)
	})
	t.Run("queue half full", func(t *testing.T) {
		cs := &countingStore{Store: openStore(t)}
		p := ingest.New(cs, nil, nil, ingest.Options{Journal: openJournal(t, t.TempDir()), ApplyDelay: time.Minute, QueueEvents: 100})
		defer p.Close(ctx)
		if _, err := p.Submit(ctx, peba.DomainCommunity, events("h", 60)); err != nil {
			t.Fatal(err)
		}
		waitStored(t, cs.Store, 60, 10*time.Second)
	})
}
