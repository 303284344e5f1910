// Package pgfeed carries the live feed between peba nodes that share one
// PostgreSQL database (issue 5, "an event ingested on node A reaches
// Socket.IO/SSE subscribers of node B ... each event once").
//
// The PostgreSQL store writes, in every AppendEvents transaction that
// inserted events, one live_feed row (seq, created, events: the inserted
// events in the store's encoding, see Options.Decode), and after the commit
// NOTIFYs channel peba_live_feed with the seq (not in the transaction: a
// NOTIFY makes commits wait for each other across the cluster, see
// postgres.Store.notifyFeed). Because the row is in the committing
// transaction, a committed event always has its row, even if the node dies
// right after the commit. A Listener on every node (the committing one
// included: ingest's OnCommit does not publish in this mode) LISTENs,
// fetches each notified row and publishes its events to the node's hub.
//
// Each row is published once per node:
//
//   - notifications are delivered only while connected; after a
//     (re)connect the Listener first LISTENs, then scans live_feed for rows
//     it has not seen, so a row is either notified or found by the scan (or
//     both);
//   - a notification can also be lost for good (the committing node died
//     before sending it), so every SweepInterval the Listener reads the
//     seqs of the rows created since the horizon and publishes those it has
//     not seen (the row arrives up to SweepInterval late);
//   - seqs come from a sequence, whose order is not commit order (a
//     transaction holding seq 10 may commit after the one holding 11), so
//     "everything above the last seq" is not a complete catch-up. The scan
//     instead covers every row created since the horizon, and a set of the
//     seqs seen since the horizon filters the repeats;
//   - the horizon is the newest row creation time seen minus Overlap. A row's
//     created is its transaction's start (database clock), so a transaction
//     that ran longer than Overlap and committed while this node was
//     disconnected is missed. AppendEvents transactions take milliseconds.
//
// Rows older than the horizon are never looked at again, so the seen set
// holds at most the rows of one Overlap. The store prunes old rows
// (postgres.Store.PruneFeed, run as a cluster job); a node that was
// disconnected longer than the pruning age misses what was pruned: the live
// feed is a view, the events themselves are in the store.
package pgfeed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/peba-go/peba"
	"github.com/prometheus/client_golang/prometheus"
)

// Channel is the NOTIFY channel the store signals new live_feed rows on.
const Channel = "peba_live_feed"

// Publisher receives the events of each row (hub.Hub implements it). It must
// not block and must not keep the slice.
type Publisher interface {
	Publish(batches ...[]peba.Event)
}

// Options configure a Listener. ConnConfig, Publisher and Decode are
// required.
type Options struct {
	// ConnConfig is used for the Listener's own connection (not a pooled
	// one: it stays in LISTEN for the life of the node). Typically
	// store.Pool().Config().ConnConfig.
	ConnConfig *pgx.ConnConfig
	Publisher  Publisher
	// Decode turns a live_feed.events value into events
	// (postgres.DecodeFeed).
	Decode func([]byte) ([]peba.Event, error)
	// Overlap is how long a transaction may run and still be caught by the
	// scan after a reconnect (see the package comment). Default 1 minute.
	Overlap time.Duration
	// Backfill is how many of the newest rows from before the first
	// connection (and at most BackfillAge old) are published at start, so
	// that a freshly started node's replay buffer is not empty. Default 0:
	// the Listener starts at its first connection.
	Backfill    int
	BackfillAge time.Duration // default 5 minutes (the hub's replay age)
	// PingInterval: after this long without a notification the connection
	// is checked, so a silently dead one is noticed. Default 15 s.
	PingInterval time.Duration
	// SweepInterval: this often the Listener also reads the seqs of the
	// rows created since the horizon and publishes those it has not seen.
	// The store notifies after its commit (postgres.Store.notifyFeed), so
	// a node that dies in between leaves a committed row that nobody is
	// told about; the sweep publishes it within SweepInterval. Default 2 s.
	SweepInterval time.Duration
	// MinBackoff, MaxBackoff bound the reconnect delay, which doubles after
	// each failed attempt (with jitter). Defaults 100 ms and 10 s.
	MinBackoff, MaxBackoff time.Duration
	// Registerer receives the Listener's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// State is a snapshot of the Listener for status pages and tests.
type State struct {
	Connected  bool
	Since      time.Time // of the current connection or disconnection
	LastSeq    int64     // newest seq published
	LastError  string    // of the last failed connection or query
	Reconnects int64     // connections after the first
}

// Listener follows live_feed and publishes each row's events once. Create
// it with New and call Run.
type Listener struct {
	opt Options
	log *slog.Logger

	// Used only by the Run goroutine.
	seen    map[int64]time.Time // seq -> created, for (at least) the rows created at or after horizon
	horizon time.Time           // zero until the first connection
	newest  time.Time           // newest created seen
	pruned  time.Time           // horizon when seen was last pruned

	mu     sync.Mutex
	state  State
	ready  chan struct{} // closed after the first successful catch-up
	readyO sync.Once

	mNotify, mRows, mEvents, mCaught, mReconnects, mMissing prometheus.Counter
	mConnected                                              prometheus.Gauge
}

// New returns a Listener.
func New(opt Options) *Listener {
	if opt.Overlap <= 0 {
		opt.Overlap = time.Minute
	}
	if opt.BackfillAge <= 0 {
		opt.BackfillAge = 5 * time.Minute
	}
	if opt.PingInterval <= 0 {
		opt.PingInterval = 15 * time.Second
	}
	if opt.SweepInterval <= 0 {
		opt.SweepInterval = 2 * time.Second
	}
	if opt.MinBackoff <= 0 {
		opt.MinBackoff = 100 * time.Millisecond
	}
	if opt.MaxBackoff < opt.MinBackoff {
		opt.MaxBackoff = max(10*time.Second, opt.MinBackoff)
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	l := &Listener{
		opt: opt, log: opt.Logger,
		seen:  map[int64]time.Time{},
		ready: make(chan struct{}),
		mNotify: counter("peba_livefeed_pg_notifications_total",
			"Notifications received on the peba_live_feed channel."),
		mRows: counter("peba_livefeed_pg_rows_total",
			"live_feed rows published to this node's hub (each once)."),
		mEvents: counter("peba_livefeed_pg_events_total",
			"Events published to this node's hub from live_feed rows."),
		mCaught: counter("peba_livefeed_pg_catchup_rows_total",
			"live_feed rows found by the scan after a (re)connect or by the periodic sweep that had not been notified."),
		mReconnects: counter("peba_livefeed_pg_reconnects_total",
			"Connections of the live feed listener after the first."),
		mMissing: counter("peba_livefeed_pg_missing_rows_total",
			"Notified live_feed rows that no longer existed (pruned) or could not be decoded."),
		mConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "peba_livefeed_pg_connected", Help: "1 while the live feed listener is connected and listening.",
		}),
	}
	if opt.Registerer != nil {
		opt.Registerer.MustRegister(l.mNotify, l.mRows, l.mEvents, l.mCaught, l.mReconnects, l.mMissing, l.mConnected)
	}
	return l
}

// State returns a snapshot of the Listener's state.
func (l *Listener) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state
}

// Ready is closed once the Listener has connected, listened and caught up
// for the first time.
func (l *Listener) Ready() <-chan struct{} { return l.ready }

// Run connects, listens and publishes until ctx ends, reconnecting with
// backoff after any failure. It returns ctx's error.
func (l *Listener) Run(ctx context.Context) error {
	backoff := l.opt.MinBackoff
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			l.mReconnects.Inc()
			l.mu.Lock()
			l.state.Reconnects++
			l.mu.Unlock()
		}
		connected, err := l.session(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		l.setDisconnected(err)
		if connected {
			backoff = l.opt.MinBackoff // it worked for a while: retry soon
		}
		l.log.Warn("Live feed listener disconnected; reconnecting", "error", err, "in", backoff)
		// Full jitter keeps restarting nodes from reconnecting in lockstep.
		delay := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		backoff = min(2*backoff, l.opt.MaxBackoff)
	}
}

func (l *Listener) setDisconnected(err error) {
	l.mConnected.Set(0)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.state.Connected = false
	l.state.Since = time.Now()
	if err != nil {
		l.state.LastError = err.Error()
	}
}

// session runs one connection: LISTEN, catch up, then follow
// notifications. connected reports whether it got as far as following
// (then the next attempt starts from the shortest backoff).
func (l *Listener) session(ctx context.Context) (connected bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	conn, err := pgx.ConnectConfig(cctx, l.opt.ConnConfig)
	cancel()
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer func() {
		// Bounded: on a dead network even the goodbye message may hang.
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	// LISTEN before the scan: a row committed after LISTEN is notified, one
	// committed before it is visible to the scan (see the package comment).
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	if err := l.catchUp(ctx, conn); err != nil {
		return false, fmt.Errorf("catch up: %w", err)
	}
	l.mConnected.Set(1)
	l.mu.Lock()
	l.state.Connected = true
	l.state.Since = time.Now()
	l.mu.Unlock()
	l.readyO.Do(func() { close(l.ready) })

	seqs := make([]int64, 0, 64)
	nextSweep, nextPing := time.Now().Add(l.opt.SweepInterval), time.Now().Add(l.opt.PingInterval)
	for {
		if !time.Now().Before(nextSweep) {
			// Due even while notifications keep arriving.
			if err := l.sweep(ctx, conn); err != nil {
				return true, fmt.Errorf("sweep: %w", err)
			}
			nextSweep, nextPing = time.Now().Add(l.opt.SweepInterval), time.Now().Add(l.opt.PingInterval)
		}
		deadline := nextSweep
		if nextPing.Before(deadline) {
			deadline = nextPing
		}
		wctx, cancel := context.WithDeadline(ctx, deadline)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return true, ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) || pgconnTimeout(err) {
				if time.Now().Before(nextPing) {
					continue // time to sweep
				}
				// Quiet period: make sure the connection is alive.
				pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err = conn.Ping(pctx)
				cancel()
				if err == nil {
					nextPing = time.Now().Add(l.opt.PingInterval)
					continue
				}
			}
			return true, err
		}
		nextPing = time.Now().Add(l.opt.PingInterval)
		l.mNotify.Inc()
		seq, err := strconv.ParseInt(n.Payload, 10, 64)
		if err != nil {
			l.log.Warn("Live feed: ignoring a notification that is not a seq", "payload", n.Payload)
			continue
		}
		seqs = append(seqs[:0], seq)
		// Take the notifications that already arrived, so a busy cluster
		// costs one query per batch of commits, not one per commit. An
		// expired context returns buffered notifications only.
		done, stop := context.WithCancel(ctx)
		stop()
		for len(seqs) < 1000 {
			n, err := conn.WaitForNotification(done)
			if err != nil || n == nil {
				break
			}
			l.mNotify.Inc()
			if s, err := strconv.ParseInt(n.Payload, 10, 64); err == nil {
				seqs = append(seqs, s)
			}
		}
		if err := l.fetch(ctx, conn, seqs); err != nil {
			return true, err
		}
	}
}

// pgconnTimeout reports a read timeout (the context deadline set on the
// socket), which leaves the connection usable.
func pgconnTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// catchUp publishes the rows created since the horizon that were not seen,
// in seq order. On the first connection the horizon is the database's now,
// and the Backfill rows before it are published first (they are below the
// horizon, so no later scan repeats them).
func (l *Listener) catchUp(ctx context.Context, conn *pgx.Conn) error {
	if l.horizon.IsZero() {
		var now time.Time
		if err := conn.QueryRow(ctx, "SELECT now()").Scan(&now); err != nil {
			return err
		}
		if l.opt.Backfill > 0 {
			rows, err := conn.Query(ctx, `SELECT seq, created, events FROM (
				SELECT seq, created, events FROM live_feed WHERE created >= $1 AND created < $2 ORDER BY seq DESC LIMIT $3
			) newest ORDER BY seq`, now.Add(-l.opt.BackfillAge), now, l.opt.Backfill)
			if err != nil {
				return err
			}
			if _, _, err := l.publishRows(rows); err != nil {
				return err
			}
		}
		l.horizon = now
	}
	rows, err := conn.Query(ctx, `SELECT seq, created, events FROM live_feed WHERE created >= $1 ORDER BY seq`, l.horizon)
	if err != nil {
		return err
	}
	_, caught, err := l.publishRows(rows)
	l.mCaught.Add(float64(caught))
	if caught > 0 {
		l.log.Info("Live feed caught up after (re)connecting", "rows", caught)
	}
	return err
}

// sweep publishes the rows created since the horizon that were not seen:
// rows whose notification was lost (see Options.SweepInterval). It reads
// only their seqs first, so a sweep of a busy minute moves no event data
// that was published already.
func (l *Listener) sweep(ctx context.Context, conn *pgx.Conn) error {
	rows, err := conn.Query(ctx, `SELECT seq FROM live_feed WHERE created >= $1`, l.horizon)
	if err != nil {
		return err
	}
	all, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	missing := slices.DeleteFunc(all, func(s int64) bool { _, seen := l.seen[s]; return seen })
	if len(missing) == 0 {
		return nil
	}
	rows, err = conn.Query(ctx, `SELECT seq, created, events FROM live_feed WHERE seq = ANY($1) ORDER BY seq`, missing)
	if err != nil {
		return err
	}
	_, published, err := l.publishRows(rows)
	l.mCaught.Add(float64(published))
	if published > 0 {
		l.log.Info("Live feed: published rows that were not notified", "rows", published)
	}
	return err
}

// fetch publishes the notified rows that were not seen yet.
func (l *Listener) fetch(ctx context.Context, conn *pgx.Conn, seqs []int64) error {
	want := seqs[:0]
	for _, s := range seqs {
		if _, dup := l.seen[s]; !dup {
			want = append(want, s)
		}
	}
	if len(want) == 0 {
		return nil
	}
	rows, err := conn.Query(ctx, `SELECT seq, created, events FROM live_feed WHERE seq = ANY($1) ORDER BY seq`, want)
	if err != nil {
		return err
	}
	found, _, err := l.publishRows(rows)
	if err == nil && found < len(want) {
		l.mMissing.Add(float64(len(want) - found))
	}
	return err
}

// publishRows publishes each unseen row of rows, records it as seen and
// advances the horizon. It returns how many rows it read and how many of
// them it published.
func (l *Listener) publishRows(rows pgx.Rows) (found, published int, err error) {
	defer rows.Close()
	var (
		seq     int64
		created time.Time
		raw     []byte
	)
	for rows.Next() {
		if err := rows.Scan(&seq, &created, &raw); err != nil {
			return found, published, err
		}
		found++
		if _, dup := l.seen[seq]; dup {
			continue
		}
		l.seen[seq] = created
		if created.After(l.newest) {
			l.newest = created
		}
		events, err := l.opt.Decode(raw)
		if err != nil {
			// Not retried: the row will not decode better next time.
			l.mMissing.Inc()
			l.log.Error("Live feed: cannot decode a live_feed row", "seq", seq, "error", err)
			continue
		}
		published++
		l.opt.Publisher.Publish(events)
		l.mRows.Inc()
		l.mEvents.Add(float64(len(events)))
		l.mu.Lock()
		l.state.LastSeq = seq
		l.mu.Unlock()
	}
	if err := rows.Err(); err != nil {
		return found, published, err
	}
	l.advance()
	return found, published, nil
}

// advance moves the horizon to Overlap before the newest row seen and
// forgets the seqs below it, which no later scan looks at. The set is
// pruned when the horizon moved by an eighth of Overlap, not on every
// batch: it holds a few thousand rows on a busy cluster.
func (l *Listener) advance() {
	h := l.newest.Add(-l.opt.Overlap)
	if !h.After(l.horizon) {
		return
	}
	l.horizon = h
	if h.Sub(l.pruned) < l.opt.Overlap/8 {
		return
	}
	l.pruned = h
	for s, c := range l.seen {
		if c.Before(h) {
			delete(l.seen, s)
		}
	}
}
