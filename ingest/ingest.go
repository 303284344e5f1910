// Package ingest is the path every event takes from a decoder to the store:
// enrichment (receive time, data domain, GeoIP, payload bytes to the blob
// store), validation, and group commit. Many concurrent senders share one
// durable write; each sender is answered only after the write holding its
// events, so an acknowledged event survives a crash, and a sender whose
// answer was lost resends and is de-duplicated by the event ID
// (architecture.md, "Data flow").
//
// With a journal (Options.Journal), the durable write is one fsynced journal
// append per group, and a second goroutine applies journaled batches to the
// store in large transactions behind it: a store transaction has a fixed cost
// of milliseconds, so thousands of events per transaction are much cheaper
// per event than the few hundred that wait for one fsync. Recover replays
// what a crash left unapplied. Without a journal, the durable write is the
// store transaction itself.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/journal"
	"github.com/prometheus/client_golang/prometheus"
)

// GeoLookup enriches addresses (geoip.DB implements it).
type GeoLookup interface {
	Lookup(ip netip.Addr) peba.Geo
}

// BlobWriter keeps payload bytes (blobstore.Store implements it).
type BlobWriter interface {
	Put(md5 string, data []byte) error
}

// Options tune the pipeline. Zero values take the defaults.
type Options struct {
	// QueueEvents bounds the events accepted but not yet in the store
	// (waiting, being journaled, or journaled and not yet applied); beyond
	// it Submit fails fast with ErrOverloaded (HTTP 503 + Retry-After)
	// instead of letting memory and latency grow without bound.
	QueueEvents int
	// MaxBatch bounds the events of one durable write (journal append, or
	// store transaction without a journal).
	MaxBatch int
	// ApplyBatch bounds the events of one store transaction that applies
	// journaled batches. Default 50,000.
	ApplyBatch int
	// ApplyDelay, with a Journal, is how long the applier waits for more
	// journaled batches before it starts a store transaction with fewer
	// than ApplyBatch events; 0 starts at once. A DuckDB transaction has a
	// fixed cost of milliseconds (statements, rollups, commit), so at a few
	// thousand events per second many small transactions kept a core busy
	// that the live feed needed. It delays only what the store shows, not
	// acknowledgements (journal) nor the live feed (Fresh); a flush or a
	// queue half full ends the wait.
	ApplyDelay time.Duration
	// WriterNice, if negative, is the nice value the applier's OS thread
	// asks for (Linux; with a Journal), so that the single writer, which
	// bounds ingest, is not kept waiting for a CPU by the request handlers
	// it cannot keep up with anyway: at full load on 2 CPUs it waited for
	// one 11% of its time; at nice -5 to -19 ingest posted ~5% more alerts
	// per second (median of 18 runs against 13), a POST p99 ~10% lower
	// and ~20% fewer 503s (docs/performance.md, session 9). It needs
	// CAP_SYS_NICE or an RLIMIT_NICE that allows it (systemd LimitNICE=);
	// without, the applier runs at the process's priority and says so once.
	// 0 leaves the priority alone.
	WriterNice int
	// Journal, if set, makes Submit return after an fsynced journal append
	// and the store be written behind it; the caller opens and closes it
	// (after Close). Nil: Submit returns after the store transaction.
	Journal *journal.Journal
	// OnCommit, if set, is called by the committing goroutine with the events
	// that were new in each store transaction, or journaled (Fresh), in
	// one or more slices that are one publication (the live feed
	// subscribes here: hub.Hub.Publish). It must not block, and must copy
	// what it keeps of the slices (they may be the arrays senders' batches
	// were decoded into, or an array ingest reuses). Events applied by
	// Recover are not passed.
	OnCommit func(batches ...[]peba.Event)
	// Fresh, if set with a Journal and OnCommit, tells for each event
	// whether the store certainly does not hold it yet (without waiting
	// for an apply in progress). Those events are passed to OnCommit right
	// after the journal append that makes them durable, instead of after
	// the store transaction that applies them (tens of milliseconds later:
	// the live feed's delay); the others still go after the apply, if they
	// were new. Each event is passed once: an event of a resend that is
	// still waiting to be applied is not passed again. An event that the
	// store refuses after its acknowledgement (counted as refused) will
	// have been passed. The pipeline owns the slice Fresh returns.
	Fresh func([]peba.Event) []bool
	// Now is the clock (tests inject one).
	Now func() time.Time
	// Registerer receives the pipeline's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// ErrOverloaded is returned when the commit queue is full.
var ErrOverloaded = &peba.Error{Code: peba.EUNAVAILABLE, Message: "ingest queue is full, retry later"}

// ErrClosed is returned after Close.
var ErrClosed = &peba.Error{Code: peba.EUNAVAILABLE, Message: "service is shutting down, retry later"}

var errNotStored = &peba.Error{Code: peba.EUNAVAILABLE, Message: "cannot store events, retry later"}

// Result is what one Submit accepted. Whether each event was new or a resend
// is decided when the store applies it, later with a journal; the pipeline's
// metrics count that.
type Result struct {
	Accepted int // events durably accepted (new or not)
}

// Recovered describes what Recover applied.
type Recovered struct {
	Batches  int // journal records (senders' batches) replayed
	Events   int // events in them
	Inserted int // events the store did not have yet
}

// Pipeline enriches, validates and group-commits events. Create it with
// New; it runs until Close.
type Pipeline struct {
	store peba.Store
	geo   GeoLookup
	blobs BlobWriter
	jr    *journal.Journal
	opt   Options
	log   *slog.Logger

	mu        sync.RWMutex // guards closed against concurrent sends on queue
	closed    bool
	queue     chan *request
	applyq    chan *group  // journal mode: journaled groups for the applier
	queued    atomic.Int64 // events admitted and not yet applied (or failed)
	unapplied atomic.Int64 // events journaled and not yet applied
	done      chan struct{}
	abort     chan struct{} // closed when Close gives up: stop retrying
	abortOnce sync.Once
	encBuf    []byte // journal goroutine's encoding buffer

	emu   sync.Mutex
	early map[string]struct{} // IDs passed to OnCommit at journal time, not yet applied

	roomMu  sync.Mutex
	room    chan struct{} // closed (and replaced) when queued shrinks while waiters > 0
	waiters atomic.Int32  // callers in WaitRoom

	mCommit     prometheus.Histogram
	mGroup      prometheus.Histogram
	mJournal    prometheus.Histogram
	mEvents     *prometheus.CounterVec
	mCommitErrs prometheus.Counter
	writerNice  atomic.Int32 // the applier thread's nice value, once set
}

// request is one Submit, or a Flush marker (flushed != nil).
type request struct {
	events  []peba.Event
	done    chan error // buffered(1)
	flushed chan struct{}
}

// group is what the journal goroutine hands to the applier: the batches of
// one append (one per sender) and the journal position after them.
type group struct {
	batches [][]peba.Event
	n       int
	pos     journal.Pos
	flushed []chan struct{}
}

// New starts a pipeline writing to store.
func New(store peba.Store, geo GeoLookup, blobs BlobWriter, opt Options) *Pipeline {
	if opt.QueueEvents <= 0 {
		opt.QueueEvents = 200_000
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 20_000
	}
	if opt.ApplyBatch <= 0 {
		opt.ApplyBatch = 50_000
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	p := &Pipeline{
		store: store, geo: geo, blobs: blobs, jr: opt.Journal, opt: opt, log: opt.Logger,
		queue:  make(chan *request, 4096),
		applyq: make(chan *group, 1024),
		done:   make(chan struct{}),
		abort:  make(chan struct{}),
		mCommit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "peba_ingest_commit_seconds", Help: "Duration of one store transaction.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		mGroup: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "peba_ingest_commit_events", Help: "Events per store transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 18),
		}),
		mJournal: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "peba_ingest_journal_seconds", Help: "Duration of one journal append (write + fdatasync).",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
		}),
		mEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "peba_ingest_events_total", Help: "Events handled by the store stage, by result (inserted, duplicate, " +
				"failed: answered with an error; refused: acknowledged, then refused by the store as invalid, so lost).",
		}, []string{"result"}),
		mCommitErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "peba_ingest_commit_errors_total", Help: "Store transactions that failed.",
		}),
	}
	if opt.Registerer != nil {
		opt.Registerer.MustRegister(p.mCommit, p.mGroup, p.mJournal, p.mEvents, p.mCommitErrs,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "peba_ingest_queued_events", Help: "Events accepted or waiting, not yet in the store (the admission bound applies to it).",
			}, func() float64 { return float64(p.queued.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "peba_ingest_unapplied_events", Help: "Events journaled and acknowledged, not yet in the store (apply lag).",
			}, func() float64 { return float64(p.unapplied.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "peba_ingest_writer_nice", Help: "Nice value of the store writer's thread (WRITERNICE; 0: runs at the process's priority).",
			}, func() float64 { return float64(p.writerNice.Load()) }))
	}
	go p.run()
	if p.jr != nil {
		go p.applyLoop()
	}
	return p
}

// Submit enriches events (Domain, ReceivedTime, GeoIP; payload bytes go to the
// blob store), validates them and stores them. It returns after they are
// durable (journaled, or committed without a journal), or with an error, in
// which case this call stored none of them. Errors are *peba.Error: EINVALID
// for events no store would keep (a resend cannot cure it), EUNAVAILABLE for
// conditions a sender should retry (queue full, store or journal down,
// shutting down). With a journal, Recover must have returned first.
func (p *Pipeline) Submit(ctx context.Context, domain peba.Domain, events []peba.Event) (Result, error) {
	if len(events) == 0 {
		return Result{}, nil
	}
	// Admission first, so an overloaded service does no enrichment work.
	n := int64(len(events))
	if p.queued.Add(n) > int64(p.opt.QueueEvents) {
		p.queued.Add(-n)
		return Result{}, ErrOverloaded
	}
	if err := p.enrich(domain, events); err != nil {
		p.release(int(n))
		return Result{}, err
	}
	// A journaled batch is acknowledged; if the store refused it later, it
	// would be lost. Refuse it now instead, while the sender can hear it.
	for i := range events {
		if err := peba.ValidateEvent(&events[i]); err != nil {
			p.release(int(n))
			return Result{}, peba.Errorf(peba.EINVALID, "event %d: %s", i, err)
		}
	}
	req := &request{events: events, done: make(chan error, 1)}
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		p.release(int(n))
		return Result{}, ErrClosed
	}
	p.queue <- req
	p.mu.RUnlock()
	// Wait for the durable write even if ctx is cancelled: the events are
	// queued and will be written; returning early would only hide the outcome.
	if err := <-req.done; err != nil {
		return Result{}, err
	}
	return Result{Accepted: len(events)}, nil
}

// WaitRoom waits up to max for the queue to have room, and reports whether
// it has. An ingest handler calls it before it reads a body: a sender that
// would be refused with 503 (and, like ewsposter, spool its batch for its
// next cycle, minutes later) is instead answered as soon as the store has
// applied the transaction in progress, and a sender that resends at once
// does not make the server read and refuse its body in a loop. Room is not
// reserved: Submit may still refuse the batch if others took it first.
func (p *Pipeline) WaitRoom(ctx context.Context, max time.Duration) bool {
	if !p.Overloaded() {
		return true
	}
	if max <= 0 {
		return false
	}
	p.waiters.Add(1)
	defer p.waiters.Add(-1)
	t := time.NewTimer(max)
	defer t.Stop()
	for {
		p.roomMu.Lock()
		if p.room == nil {
			p.room = make(chan struct{})
		}
		ch := p.room
		p.roomMu.Unlock()
		// Checked after taking ch, so a release in between is not missed.
		if !p.Overloaded() {
			return true
		}
		select {
		case <-ch:
		case <-t.C:
			return !p.Overloaded()
		case <-ctx.Done():
			return false
		}
	}
}

// release takes n events off the admission count and wakes WaitRoom's
// callers, if any.
func (p *Pipeline) release(n int) {
	p.queued.Add(-int64(n))
	if p.waiters.Load() == 0 {
		return
	}
	p.roomMu.Lock()
	if p.room != nil {
		close(p.room)
		p.room = nil
	}
	p.roomMu.Unlock()
}

// Overloaded reports whether the queue is full, so that Submit would
// refuse any batch with ErrOverloaded now. A caller checks it before it
// reads and decodes a batch: under overload, decoding batches that are then
// refused took CPU the store needed to catch up.
func (p *Pipeline) Overloaded() bool {
	return p.queued.Load() >= int64(p.opt.QueueEvents)
}

func (p *Pipeline) enrich(domain peba.Domain, events []peba.Event) error {
	// One receive time per batch, at DuckDB/PostgreSQL precision.
	now := p.opt.Now().UTC().Truncate(time.Microsecond)
	for i := range events {
		e := &events[i]
		e.Domain = domain
		e.ReceivedTime = now
		if p.geo != nil {
			e.Src = p.geo.Lookup(e.SrcIP)
			e.Dst = p.geo.Lookup(e.DstIP)
		} else {
			e.Src, e.Dst = peba.UnknownGeo, peba.UnknownGeo
		}
		if pl := e.Payload; pl != nil && pl.Data != nil && p.blobs != nil {
			if err := p.blobs.Put(pl.MD5, pl.Data); err != nil {
				p.log.Error("Cannot store payload", "md5", pl.MD5, "error", err)
				return &peba.Error{Code: peba.EUNAVAILABLE, Message: "cannot store payload, retry later"}
			}
			// The bytes are on disk; do not keep them in memory while queued.
			cp := *pl
			cp.Data = nil
			e.Payload = &cp
		}
	}
	return nil
}

// run is the single goroutine that makes batches durable: it takes
// everything queued (up to MaxBatch events) into one journal append, or
// without a journal into one store transaction. Batching is natural, without
// an artificial delay: while one write runs, the next group accumulates.
func (p *Pipeline) run() {
	if p.jr != nil {
		defer close(p.applyq)
	} else {
		defer close(p.done)
	}
	for req := range p.queue {
		reqs := []*request{req}
		n := len(req.events)
	fill:
		for n < p.opt.MaxBatch {
			select {
			case r, ok := <-p.queue:
				if !ok {
					break fill
				}
				reqs = append(reqs, r)
				n += len(r.events)
			default:
				break fill
			}
		}
		data, flushed := split(reqs)
		if p.jr != nil {
			p.journal(data, n, flushed)
		} else {
			p.commit(data, n, flushed)
		}
	}
}

func split(reqs []*request) (data []*request, flushed []chan struct{}) {
	for _, r := range reqs {
		if r.flushed != nil {
			flushed = append(flushed, r.flushed)
		} else {
			data = append(data, r)
		}
	}
	return data, flushed
}

// commit stores a group in one transaction and answers its senders (no
// journal).
func (p *Pipeline) commit(data []*request, n int, flushed []chan struct{}) {
	if len(data) > 0 {
		batches := make([][]peba.Event, len(data))
		for i, r := range data {
			batches[i] = r.events
		}
		_, errs := p.apply(batches, n, nil, false, true)
		p.release(n)
		for i, r := range data {
			err := errs[i]
			if err != nil {
				p.mEvents.WithLabelValues("failed").Add(float64(len(r.events)))
				p.log.Error("Cannot commit events", "events", len(r.events), "error", err)
				if !errors.As(err, new(*peba.Error)) {
					err = errNotStored
				}
			}
			r.done <- err
		}
	}
	closeAll(flushed)
}

// journal appends a group with one fsync, answers its senders, and hands it
// to the applier. One record per sender's batch, so that the store applies
// a batch all or nothing after a crash too.
func (p *Pipeline) journal(data []*request, n int, flushed []chan struct{}) {
	g := &group{flushed: flushed}
	if len(data) > 0 {
		buf := p.encBuf[:0]
		ends := make([]int, len(data))
		for i, r := range data {
			buf = appendEvents(buf, r.events)
			ends[i] = len(buf)
		}
		recs := make([][]byte, len(data))
		for i, start := 0, 0; i < len(data); i++ {
			recs[i], start = buf[start:ends[i]], ends[i]
		}
		if cap(buf) <= 16<<20 {
			p.encBuf = buf
		}
		t := time.Now()
		pos, err := p.jr.Append(recs...)
		p.mJournal.Observe(time.Since(t).Seconds())
		if err != nil {
			p.release(n)
			p.mEvents.WithLabelValues("failed").Add(float64(n))
			p.log.Error("Cannot journal events", "events", n, "error", err)
			for _, r := range data {
				r.done <- errNotStored
			}
		} else {
			p.unapplied.Add(int64(n))
			g.batches, g.n, g.pos = make([][]peba.Event, len(data)), n, pos
			p.publishEarly(data) // before the answers: a sender that got one sees its events published
			for i, r := range data {
				g.batches[i] = r.events
				r.done <- nil
			}
		}
	}
	if g.n > 0 || len(g.flushed) > 0 {
		p.applyq <- g
	}
}

// applyLoop is the single goroutine that applies journaled groups: it takes
// all that are waiting (up to ApplyBatch events) into one store transaction,
// then checkpoints the journal after them.
func (p *Pipeline) applyLoop() {
	defer close(p.done)
	// The store's writes run on one OS thread. Go moves a goroutine between
	// threads, and glibc gives every thread that allocates its own malloc
	// arena: DuckDB's allocations, spread over ten threads' arenas, held
	// ~50 MB more RSS at 50k alerts/s (docs/performance.md, session 6).
	runtime.LockOSThread()
	// The thread stays locked until the goroutine exits, and Go then ends
	// it: no other goroutine ever runs at this priority.
	p.raiseWriterPriority()
	var wait *time.Timer
	var all []peba.Event // apply's array for groups of several batches, reused
	for g := range p.applyq {
		gs := []*group{g}
		n := g.n
		hurry := len(g.flushed) > 0
		waiting := false
	fill:
		for n < p.opt.ApplyBatch {
			var g2 *group
			ok := true
			select {
			case g2, ok = <-p.applyq:
			default:
				// Nothing waiting: start now, or wait up to ApplyDelay for more.
				if hurry || p.opt.ApplyDelay <= 0 || p.queued.Load() >= int64(p.opt.QueueEvents/2) {
					break fill
				}
				if !waiting {
					waiting = true
					if wait == nil {
						wait = time.NewTimer(p.opt.ApplyDelay)
					} else {
						wait.Reset(p.opt.ApplyDelay)
					}
				}
				select {
				case g2, ok = <-p.applyq:
				case <-wait.C:
					waiting = false
					break fill
				}
			}
			if !ok {
				break
			}
			gs = append(gs, g2)
			n += g2.n
			hurry = hurry || len(g2.flushed) > 0
		}
		if waiting {
			wait.Stop() // Go 1.23+: no stale tick is delivered after Stop or Reset
		}
		var batches [][]peba.Event
		var pos journal.Pos
		var flushed []chan struct{}
		for _, g := range gs {
			if g.n > 0 {
				batches = append(batches, g.batches...)
				pos = g.pos
			}
			flushed = append(flushed, g.flushed...)
		}
		if n > 0 {
			p.applyJournaled(batches, n, pos, &all)
		}
		closeAll(flushed)
	}
}

// raiseWriterPriority gives the calling (applier) thread the nice value
// of Options.WriterNice, and records the value it has.
func (p *Pipeline) raiseWriterPriority() {
	if p.opt.WriterNice >= 0 {
		return
	}
	if err := setThreadNice(p.opt.WriterNice); err != nil {
		p.log.Info("Cannot raise the store writer's priority; it runs at the process's priority, and full-load ingest is slower "+
			"(allow it with CAP_SYS_NICE or RLIMIT_NICE, e.g. systemd LimitNICE=, or set WRITERNICE=0)",
			"nice", p.opt.WriterNice, "error", err)
	}
	if nice, err := threadNice(); err == nil {
		p.writerNice.Store(int32(nice))
	}
}

func (p *Pipeline) applyJournaled(batches [][]peba.Event, n int, pos journal.Pos, buf *[]peba.Event) {
	_, errs := p.apply(batches, n, buf, true, true)
	p.forgetEarly(batches)
	complete := true
	for i, err := range errs {
		switch {
		case err == nil:
		case peba.ErrorCode(err) == peba.EINVALID:
			p.refused(batches[i], err)
		default:
			complete = false // Close gave up; the journal keeps it for Recover
		}
	}
	p.unapplied.Add(-int64(n))
	p.release(n)
	if !complete {
		return
	}
	if err := p.jr.Checkpoint(pos); err != nil {
		// Harmless but for disk use: a later checkpoint covers it, and a
		// replay of applied batches is de-duplicated.
		p.log.Error("Cannot checkpoint journal", "error", err)
	}
}

// refused reports an acknowledged batch the store refused as invalid. Submit
// validates what every store accepts, so this is a bug; the batch is lost.
func (p *Pipeline) refused(batch []peba.Event, err error) {
	p.mEvents.WithLabelValues("refused").Add(float64(len(batch)))
	p.log.Error("Acknowledged batch refused by the store; it is lost",
		"events", len(batch), "submitter", batch[0].Submitter, "peer_ident", batch[0].PeerIdent,
		"event_id", batch[0].ID, "error", err)
}

// apply stores batches in one transaction. If that fails, it retries each
// batch on its own, so that one poisoned batch does not fail the others
// that shared the transaction. With retry, a batch failing with anything
// but EINVALID is retried with back-off until it is stored or Close gives
// up. It returns the events inserted and one error per batch.
//
// Several batches are gathered into one array for the store: *buf if buf
// is not nil, kept for the caller's next call and cleared after use (the
// store and OnCommit keep nothing of it), else a new one. Copying into a
// new array each time was 18% of all the memory ingest allocated; a pool
// of such arrays held ~18 MB of live heap (docs/performance.md, sessions 7
// and 8). One array, cleared, holds no pointers between transactions.
func (p *Pipeline) apply(batches [][]peba.Event, n int, buf *[]peba.Event, retry, publish bool) (int, []error) {
	all := batches[0]
	if len(batches) > 1 {
		var arr []peba.Event
		if buf != nil {
			arr = *buf
			defer func() { clear(all); *buf = all[:0] }()
		}
		if cap(arr) < n {
			arr = make([]peba.Event, 0, n)
		}
		all = arr[:0]
		for _, b := range batches {
			all = append(all, b...)
		}
	}
	errs := make([]error, len(batches))
	inserted, err := p.appendOnce(all, publish)
	if err == nil {
		return inserted, errs
	}
	if len(batches) > 1 {
		p.log.Warn("Group commit failed, retrying its batches one by one", "batches", len(batches), "events", n, "error", err)
	}
	for i, b := range batches {
		if len(batches) > 1 {
			var k int
			k, err = p.appendOnce(b, publish)
			inserted += k
		}
		for wait := 100 * time.Millisecond; err != nil && retry && peba.ErrorCode(err) != peba.EINVALID; wait = min(2*wait, 5*time.Second) {
			p.log.Error("Cannot store journaled events, retrying", "events", len(b), "retry_in", wait, "error", err)
			if !p.sleep(wait) {
				break
			}
			var k int
			k, err = p.appendOnce(b, publish)
			inserted += k
		}
		errs[i] = err
	}
	return inserted, errs
}

// sleep waits for d and reports false if Close gave up meanwhile.
func (p *Pipeline) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.abort:
		return false
	case <-t.C:
		return true
	}
}

// appendOnce runs one store transaction and returns the events it inserted.
func (p *Pipeline) appendOnce(events []peba.Event, publish bool) (int, error) {
	start := time.Now()
	// The commit must not be cut short by one client's cancelled request.
	res, err := p.store.AppendEvents(context.Background(), events)
	p.mCommit.Observe(time.Since(start).Seconds())
	p.mGroup.Observe(float64(len(events)))
	if err != nil {
		p.mCommitErrs.Inc()
		return 0, err
	}
	p.mEvents.WithLabelValues("inserted").Add(float64(len(res.Inserted)))
	p.mEvents.WithLabelValues("duplicate").Add(float64(len(events) - len(res.Inserted)))
	if publish && p.opt.OnCommit != nil && len(res.Inserted) > 0 {
		if ins := p.notEarly(res.Inserted); len(ins) > 0 {
			p.opt.OnCommit(ins)
		}
	}
	return len(res.Inserted), nil
}

func closeAll(chs []chan struct{}) {
	for _, c := range chs {
		close(c)
	}
}

// Recover applies to the store every batch the journal holds after its
// checkpoint (what a crash left unapplied), then checkpoints. Batches the
// store has already are skipped by its de-duplication. The recovered events
// are not passed to OnCommit: the live feed shows what arrives, and these
// arrived before the restart. Call it before the first Submit; without a
// journal it does nothing. An error (store down, journal corrupt) leaves the
// journal as it was, for the next attempt.
func (p *Pipeline) Recover(ctx context.Context) (Recovered, error) {
	var rec Recovered
	if p.jr == nil {
		return rec, nil
	}
	var batches [][]peba.Event
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		inserted, errs := p.apply(batches, n, nil, false, false)
		rec.Inserted += inserted
		for i, err := range errs {
			if peba.ErrorCode(err) == peba.EINVALID {
				p.refused(batches[i], err)
			} else if err != nil {
				return err
			}
		}
		batches, n = nil, 0
		return nil
	}
	err := p.jr.Replay(func(payload []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		evs, err := decodeEvents(payload)
		if err != nil {
			return err
		}
		rec.Batches++
		rec.Events += len(evs)
		if len(evs) == 0 {
			return nil
		}
		batches = append(batches, evs)
		n += len(evs)
		if n >= p.opt.ApplyBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err == nil {
		err = p.jr.Checkpoint(p.jr.End())
	}
	if err != nil {
		return rec, fmt.Errorf("cannot recover journaled events: %w", err)
	}
	return rec, nil
}

// Flush returns when every event whose Submit returned before the call is
// in the store (or was refused), or when ctx expires.
func (p *Pipeline) Flush(ctx context.Context) error {
	r := &request{flushed: make(chan struct{})}
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		r.flushed = p.done // Close drains everything
	} else {
		p.queue <- r
		p.mu.RUnlock()
	}
	select {
	case <-r.flushed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting events, makes durable and answers everything
// already queued, applies everything journaled, and returns when that is
// done or ctx expires. After ctx expired, the applier stops retrying a
// failing store; what it did not apply stays in the journal for Recover.
// The caller closes the journal after Close.
func (p *Pipeline) Close(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.queue)
	}
	p.mu.Unlock()
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		p.abortOnce.Do(func() { close(p.abort) })
		return ctx.Err()
	}
}

// publishEarly passes the events of a journaled group that the store
// certainly does not hold, and that were not passed already, to OnCommit
// (Options.Fresh). Called by the journal goroutine after the append.
func (p *Pipeline) publishEarly(data []*request) {
	if p.opt.Fresh == nil || p.opt.OnCommit == nil || p.jr == nil {
		return
	}
	// One call for the group. A batch whose events all go is passed as it
	// is (OnCommit copies what it keeps); of the others, the events that
	// go are gathered. Gathering every batch of a group into one array was
	// 8% of all the memory ingest allocated (docs/performance.md, session 8).
	out := make([][]peba.Event, 0, len(data))
	p.emu.Lock()
	if p.early == nil {
		p.early = map[string]struct{}{}
	}
	for _, r := range data {
		keep := p.opt.Fresh(r.events) // then: whether it goes now
		all := true
		for i := range r.events {
			if _, passed := p.early[r.events[i].ID]; !keep[i] || passed {
				keep[i], all = false, false
				continue
			}
			p.early[r.events[i].ID] = struct{}{}
		}
		if all {
			out = append(out, r.events)
			continue
		}
		var some []peba.Event
		for i := range r.events {
			if keep[i] {
				some = append(some, r.events[i])
			}
		}
		if len(some) > 0 {
			out = append(out, some)
		}
	}
	p.emu.Unlock()
	if len(out) > 0 {
		p.opt.OnCommit(out...)
	}
}

// notEarly returns the inserted events that publishEarly did not pass.
func (p *Pipeline) notEarly(inserted []peba.Event) []peba.Event {
	if p.opt.Fresh == nil {
		return inserted
	}
	p.emu.Lock()
	defer p.emu.Unlock()
	if len(p.early) == 0 {
		return inserted
	}
	// Usually every event was passed early: allocate only for the others.
	var out []peba.Event
	for i := range inserted {
		if _, passed := p.early[inserted[i].ID]; !passed {
			out = append(out, inserted[i])
		}
	}
	return out
}

// forgetEarly drops the IDs of applied (or given up) batches: the store's
// filter answers for them from now on.
func (p *Pipeline) forgetEarly(batches [][]peba.Event) {
	if p.opt.Fresh == nil {
		return
	}
	p.emu.Lock()
	defer p.emu.Unlock()
	for _, b := range batches {
		for i := range b {
			delete(p.early, b[i].ID)
		}
	}
}
