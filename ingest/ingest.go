// Package ingest is the path every event takes from a decoder to the store:
// enrichment (receive time, data domain, GeoIP, payload bytes to the blob
// store) and group commit. Many concurrent senders share one store
// transaction; each sender is answered only after the transaction holding its
// events committed, so an acknowledged event survives a crash, and a sender
// whose answer was lost resends and is de-duplicated by the event ID
// (architecture.md, "Data flow").
package ingest

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peba-go/peba"
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
	// QueueEvents bounds the events waiting for a commit; beyond it Submit
	// fails fast with ErrOverloaded (HTTP 503 + Retry-After) instead of
	// letting memory and latency grow without bound.
	QueueEvents int
	// MaxBatch bounds the events of one group commit.
	MaxBatch int
	// OnCommit, if set, is called by the committing goroutine with the events
	// that were new in each commit (the live feed subscribes here). It must
	// not block.
	OnCommit func([]peba.Event)
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

// Result is what one Submit stored.
type Result struct {
	Inserted   int // events that were new
	Duplicates int // events already stored (resends)
}

// Pipeline enriches and group-commits events. Create it with New; it runs
// until Close.
type Pipeline struct {
	store peba.Store
	geo   GeoLookup
	blobs BlobWriter
	opt   Options
	log   *slog.Logger

	mu     sync.RWMutex // guards closed against concurrent sends on queue
	closed bool
	queue  chan *request
	queued atomic.Int64 // events in queue or being committed
	done   chan struct{}

	mCommit     prometheus.Histogram
	mGroup      prometheus.Histogram
	mEvents     *prometheus.CounterVec
	mCommitErrs prometheus.Counter
}

type request struct {
	events []peba.Event
	done   chan outcome // buffered(1)
}

type outcome struct {
	res Result
	err error
}

// New starts a pipeline writing to store.
func New(store peba.Store, geo GeoLookup, blobs BlobWriter, opt Options) *Pipeline {
	if opt.QueueEvents <= 0 {
		opt.QueueEvents = 200_000
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 20_000
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	p := &Pipeline{
		store: store, geo: geo, blobs: blobs, opt: opt, log: opt.Logger,
		queue: make(chan *request, 4096),
		done:  make(chan struct{}),
		mCommit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "peba_ingest_commit_seconds", Help: "Duration of one group commit (store transaction).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		mGroup: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "peba_ingest_commit_events", Help: "Events per group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 16),
		}),
		mEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "peba_ingest_events_total", Help: "Events handled by the commit stage, by result (inserted, duplicate, failed).",
		}, []string{"result"}),
		mCommitErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "peba_ingest_commit_errors_total", Help: "Group commits that failed.",
		}),
	}
	if opt.Registerer != nil {
		opt.Registerer.MustRegister(p.mCommit, p.mGroup, p.mEvents, p.mCommitErrs,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "peba_ingest_queued_events", Help: "Events waiting for or in a commit.",
			}, func() float64 { return float64(p.queued.Load()) }))
	}
	go p.run()
	return p
}

// Submit enriches events (Domain, ReceivedTime, GeoIP; payload bytes go to the
// blob store) and stores them. It returns after the commit that holds them,
// or with an error, in which case none of them was stored by this call.
// Errors are *peba.Error with code EUNAVAILABLE for conditions a sender
// should retry (queue full, store down, shutting down).
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
		p.queued.Add(-n)
		return Result{}, err
	}
	req := &request{events: events, done: make(chan outcome, 1)}
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		p.queued.Add(-n)
		return Result{}, ErrClosed
	}
	p.queue <- req
	p.mu.RUnlock()
	// Wait for the commit even if ctx is cancelled: the events are queued
	// and will be committed; returning early would only hide the outcome.
	o := <-req.done
	return o.res, o.err
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

// run is the single committing goroutine: it takes everything queued (up to
// MaxBatch events) into one transaction. Batching is natural, without an
// artificial delay: while one commit runs, the next group accumulates.
func (p *Pipeline) run() {
	defer close(p.done)
	for req := range p.queue {
		group := []*request{req}
		n := len(req.events)
	fill:
		for n < p.opt.MaxBatch {
			select {
			case r, ok := <-p.queue:
				if !ok {
					break fill
				}
				group = append(group, r)
				n += len(r.events)
			default:
				break fill
			}
		}
		p.commit(group, n)
	}
}

func (p *Pipeline) commit(group []*request, n int) {
	all := group[0].events
	if len(group) > 1 {
		all = make([]peba.Event, 0, n)
		for _, r := range group {
			all = append(all, r.events...)
		}
	}
	start := time.Now()
	// The commit must not be cut short by one client's cancelled request.
	res, err := p.store.AppendEvents(context.Background(), all)
	p.mCommit.Observe(time.Since(start).Seconds())
	p.mGroup.Observe(float64(len(all)))
	if err != nil && len(group) > 1 {
		// One poisoned batch must not fail the others that shared its
		// transaction: retry each request on its own.
		p.log.Warn("Group commit failed, retrying its batches one by one", "batches", len(group), "events", n, "error", err)
		for _, r := range group {
			p.commit([]*request{r}, len(r.events))
		}
		return
	}
	p.queued.Add(-int64(n))
	if err != nil {
		p.mCommitErrs.Inc()
		p.mEvents.WithLabelValues("failed").Add(float64(n))
		p.log.Error("Cannot commit events", "events", n, "error", err)
		if !errors.As(err, new(*peba.Error)) {
			err = &peba.Error{Code: peba.EUNAVAILABLE, Message: "cannot store events, retry later"}
		}
		for _, r := range group {
			r.done <- outcome{err: err}
		}
		return
	}
	p.mEvents.WithLabelValues("inserted").Add(float64(len(res.Inserted)))
	p.mEvents.WithLabelValues("duplicate").Add(float64(n - len(res.Inserted)))
	if p.opt.OnCommit != nil && len(res.Inserted) > 0 {
		p.opt.OnCommit(res.Inserted)
	}
	// Attribute inserted events to the requests. The store keeps the first
	// occurrence of an ID, so claim IDs in input order.
	unclaimed := make(map[string]int, len(res.Inserted))
	for i := range res.Inserted {
		unclaimed[res.Inserted[i].ID]++
	}
	for _, r := range group {
		var out Result
		for i := range r.events {
			if id := r.events[i].ID; unclaimed[id] > 0 {
				unclaimed[id]--
				out.Inserted++
			} else {
				out.Duplicates++
			}
		}
		r.done <- outcome{res: out}
	}
}

// Close stops accepting events, commits everything already queued and
// returns when the last commit finished or ctx expires.
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
		return ctx.Err()
	}
}
