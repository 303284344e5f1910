package pgfeed

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/peba-go/peba"
	"github.com/peba-go/peba/internal/pgtest"
	"github.com/peba-go/peba/postgres"
	"github.com/prometheus/client_golang/prometheus"
)

// recorder is a Publisher that remembers the event IDs it got, in order.
type recorder struct {
	mu  sync.Mutex
	ids []string
}

func (r *recorder) Publish(batches ...[]peba.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, events := range batches {
		for _, e := range events {
			r.ids = append(r.ids, e.ID)
		}
	}
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ids)
}

// waitFor polls until the recorder holds n IDs (or fails after 10 s), then
// waits a little longer so that a duplicate would show.
func (r *recorder) waitFor(t *testing.T, n int) []string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); len(r.got()) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("published %d of %d events: %v", len(r.got()), n, r.got())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	return r.got()
}

// testDecode reads rows written by this test: a JSON array of events.
func testDecode(b []byte) ([]peba.Event, error) {
	var evs []peba.Event
	return evs, json.Unmarshal(b, &evs)
}

// insertRow writes a live_feed row the way the store does (row and NOTIFY
// in one transaction), holding event IDs ids, in tx.
func insertRow(t *testing.T, ctx context.Context, tx pgx.Tx, ids ...string) int64 {
	t.Helper()
	var evs []map[string]string
	for _, id := range ids {
		evs = append(evs, map[string]string{"ID": id})
	}
	b, _ := json.Marshal(evs)
	var seq int64
	err := tx.QueryRow(ctx, `WITH f AS (INSERT INTO live_feed (events) VALUES ($1) RETURNING seq)
		SELECT seq FROM f, pg_notify('`+Channel+`', seq::text)`, b).Scan(&seq)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func commitRow(t *testing.T, pool *pgxpool.Pool, ids ...string) int64 {
	t.Helper()
	ctx := context.Background()
	var seq int64
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { seq = insertRow(t, ctx, tx, ids...); return nil }); err != nil {
		t.Fatal(err)
	}
	return seq
}

// feedDB returns a fresh database with the store's schema (its live_feed
// table) and a pool on it.
func feedDB(t *testing.T) (string, *pgxpool.Pool) {
	t.Helper()
	dsn := pgtest.DSN(t)
	st, err := postgres.Open(context.Background(), dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return dsn, st.Pool()
}

type testNode struct {
	l     *Listener
	rec   *recorder
	proxy *proxy
	reg   *prometheus.Registry
}

// startListener runs a Listener whose connection goes through a proxy the
// test can cut, as a network failure or a database restart would.
func startListener(t *testing.T, dsn string, opt Options) *testNode {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, fmt.Sprintf("%s:%d", cfg.Host, cfg.Port))
	host, port, _ := net.SplitHostPort(p.addr())
	cfg.Host = host
	fmt.Sscan(port, &cfg.Port)
	n := &testNode{rec: &recorder{}, proxy: p, reg: prometheus.NewRegistry()}
	opt.ConnConfig = cfg
	opt.Publisher = n.rec
	if opt.Decode == nil {
		opt.Decode = testDecode
	}
	opt.MinBackoff, opt.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	opt.Registerer = n.reg
	opt.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	n.l = New(opt)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.l.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-n.l.Ready():
	case <-time.After(10 * time.Second):
		t.Fatalf("listener not ready: %+v", n.l.State())
	}
	return n
}

func (n *testNode) counter(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := n.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func assertOnce(t *testing.T, got []string, want ...string) {
	t.Helper()
	s := slices.Clone(got)
	slices.Sort(s)
	w := slices.Clone(want)
	slices.Sort(w)
	if !slices.Equal(s, w) {
		t.Fatalf("published %v, want each of %v exactly once", got, want)
	}
}

// A row whose notification never came (the store notifies after its
// commit, and a node may die in between) is published by the sweep, once,
// and so is a row whose notification arrives after the sweep found it.
func TestSweepPublishesUnnotifiedRows(t *testing.T) {
	dsn, pool := feedDB(t)
	n := startListener(t, dsn, Options{SweepInterval: 100 * time.Millisecond})
	ctx := context.Background()
	var seq int64
	if err := pool.QueryRow(ctx, `INSERT INTO live_feed (events) VALUES ($1) RETURNING seq`, []byte(`[{"ID":"lost"}]`)).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	assertOnce(t, n.rec.waitFor(t, 1), "lost")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the unnotified row took %v", d)
	}
	// Its late notification changes nothing; the next row still arrives.
	if _, err := pool.Exec(ctx, "SELECT pg_notify($1, $2)", Channel, strconv.FormatInt(seq, 10)); err != nil {
		t.Fatal(err)
	}
	commitRow(t, pool, "next")
	assertOnce(t, n.rec.waitFor(t, 2), "lost", "next")
	time.Sleep(300 * time.Millisecond) // a few more sweeps
	assertOnce(t, n.rec.got(), "lost", "next")
	if c := n.counter(t, "peba_livefeed_pg_catchup_rows_total"); c < 1 {
		t.Errorf("catch-up rows %v, want the swept row counted", c)
	}
}

// Rows committed while connected are published once each, in commit
// order, also when a transaction that took its seq earlier commits later.
func TestNotifiedRowsArePublishedOnce(t *testing.T) {
	dsn, pool := feedDB(t)
	a := startListener(t, dsn, Options{})
	b := startListener(t, dsn, Options{})
	ctx := context.Background()

	// tx1 takes a seq first and commits last: seq order is not commit order.
	tx1, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx1.Rollback(ctx)
	s1 := insertRow(t, ctx, tx1, "late-1", "late-2")
	s2 := commitRow(t, pool, "early")
	if s1 >= s2 {
		t.Fatalf("seqs %d, %d: the test needs tx1 to hold the lower seq", s1, s2)
	}
	a.rec.waitFor(t, 1)
	if err := tx1.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*testNode{a, b} {
		got := n.rec.waitFor(t, 3)
		if !slices.Equal(got, []string{"early", "late-1", "late-2"}) {
			t.Errorf("published %v, want early, late-1, late-2", got)
		}
		if st := n.l.State(); !st.Connected || st.LastSeq != s1 {
			t.Errorf("state %+v", st)
		}
		if n.counter(t, "peba_livefeed_pg_events_total") != 3 {
			t.Errorf("events metric %v", n.counter(t, "peba_livefeed_pg_events_total"))
		}
	}
}

// While the listener is cut off, rows commit, among them one whose seq is
// lower than a row already published; after the reconnect the scan
// publishes exactly the missed ones.
func TestReconnectCatchesUpExactlyTheMissedRows(t *testing.T) {
	dsn, pool := feedDB(t)
	n := startListener(t, dsn, Options{})
	ctx := context.Background()

	tx1, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx1.Rollback(ctx)
	insertRow(t, ctx, tx1, "slow")          // lower seq, commits while cut off
	commitRow(t, pool, "before")            // published while connected
	n.rec.waitFor(t, 1)                     //
	n.proxy.setDown(true)                   // the network breaks
	waitState(t, n.l, false)                //
	if err := tx1.Commit(ctx); err != nil { // notified to nobody
		t.Fatal(err)
	}
	commitRow(t, pool, "during-1", "during-2")
	time.Sleep(100 * time.Millisecond) // several failed reconnects
	if got := n.rec.got(); len(got) != 1 {
		t.Fatalf("published while cut off: %v", got)
	}
	n.proxy.setDown(false)
	waitState(t, n.l, true)
	commitRow(t, pool, "after")
	assertOnce(t, n.rec.waitFor(t, 5), "before", "slow", "during-1", "during-2", "after")
	if c := n.counter(t, "peba_livefeed_pg_catchup_rows_total"); c != 2 {
		t.Errorf("catch-up rows %v, want 2 (slow, during)", c)
	}
	if r := n.l.State().Reconnects; r < 1 {
		t.Errorf("reconnects %d", r)
	}
}

func waitState(t *testing.T, l *Listener, connected bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); l.State().Connected != connected; {
		if time.Now().After(deadline) {
			t.Fatalf("listener state %+v, want connected=%v", l.State(), connected)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A listener started with Backfill publishes the newest rows from before
// its start once (they fill the hub's replay for the first viewers), not
// more and not older ones.
func TestBackfillOnStart(t *testing.T) {
	dsn, pool := feedDB(t)
	ctx := context.Background()
	commitRow(t, pool, "old")
	if _, err := pool.Exec(ctx, `UPDATE live_feed SET created = now() - interval '1 hour'`); err != nil {
		t.Fatal(err)
	}
	commitRow(t, pool, "recent-1")
	commitRow(t, pool, "recent-2a", "recent-2b")
	n := startListener(t, dsn, Options{Backfill: 1})
	commitRow(t, pool, "new")
	assertOnce(t, n.rec.waitFor(t, 3), "recent-2a", "recent-2b", "new")

	// Without backfill a listener starts at its first connection.
	m := startListener(t, dsn, Options{})
	commitRow(t, pool, "newer")
	assertOnce(t, m.rec.waitFor(t, 1), "newer")
}

// The set of seen seqs holds only rows within Overlap of the newest: it
// does not grow with the life of the node.
func TestSeenSetIsBounded(t *testing.T) {
	dsn, pool := feedDB(t)
	n := startListener(t, dsn, Options{Overlap: 200 * time.Millisecond})
	const rows = 60
	for i := range rows {
		commitRow(t, pool, fmt.Sprint(i))
		time.Sleep(10 * time.Millisecond)
	}
	n.rec.waitFor(t, rows)
	// The Run goroutine owns seen; reading its size once it is idle is
	// safe enough for a test (the race detector would tell).
	n.proxy.setDown(true)
	waitState(t, n.l, false)
	if s := len(n.l.seen); s >= rows*2/3 {
		t.Errorf("seen holds %d seqs after %d rows over %v with Overlap 200ms", s, rows, time.Duration(rows)*10*time.Millisecond)
	}
}

// A row that does not decode is counted and skipped; the rows after it
// still arrive.
func TestUndecodableRowIsSkipped(t *testing.T) {
	dsn, pool := feedDB(t)
	n := startListener(t, dsn, Options{Decode: func(b []byte) ([]peba.Event, error) {
		if strings.Contains(string(b), "poison") {
			return nil, fmt.Errorf("bad row")
		}
		return testDecode(b)
	}})
	commitRow(t, pool, "poison")
	commitRow(t, pool, "fine")
	assertOnce(t, n.rec.waitFor(t, 1), "fine")
	if c := n.counter(t, "peba_livefeed_pg_missing_rows_total"); c != 1 {
		t.Errorf("missing rows %v", c)
	}
}

// proxy forwards TCP connections to a PostgreSQL server until setDown(true)
// cuts every open connection and refuses new ones.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); p.setDown(true) })
	go p.serve()
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
	}
}

func (p *proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			s, err := net.Dial("tcp", p.target)
			if err != nil || !p.track(c, s) {
				c.Close()
				if s != nil {
					s.Close()
				}
				return
			}
			go func() { io.Copy(s, c); s.Close() }()
			io.Copy(c, s)
			c.Close()
		}()
	}
}

// Two nodes (two Stores on one database) append overlapping batches at the
// same time; a listener on each node publishes every stored event exactly
// once, the node's own included, and never a duplicate the store skipped.
func TestNodesSeeEveryStoredEventOnce(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	var stores []*postgres.Store
	var nodes []*testNode
	for range 2 {
		st, err := postgres.Open(ctx, dsn, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		stores = append(stores, st)
		nodes = append(nodes, startListener(t, dsn, Options{Decode: postgres.DecodeFeed}))
	}
	const batches, size = 20, 50
	now := time.Now().UTC().Truncate(time.Microsecond)
	var wg sync.WaitGroup
	for i, st := range stores {
		wg.Go(func() {
			for b := range batches {
				var evs []peba.Event
				for j := range size {
					// Each node sends every batch of the other one too
					// (both count b the same way): half of all appends are
					// duplicates, decided between the nodes.
					evs = append(evs, peba.Event{ID: fmt.Sprintf("e-%d-%d", b, j), Domain: peba.Domain(1 + (j+i)%2),
						ReceivedTime: now, CreateTime: now, PeerType: "test"})
				}
				if _, err := st.AppendEvents(ctx, evs); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	var want []string
	for b := range batches {
		for j := range size {
			want = append(want, fmt.Sprintf("e-%d-%d", b, j))
		}
	}
	for _, n := range nodes {
		assertOnce(t, n.rec.waitFor(t, len(want)), want...)
	}
}

// Quiet periods longer than PingInterval keep the connection (checked with
// a ping), and a notification after them still arrives.
func TestQuietPeriodKeepsTheConnection(t *testing.T) {
	dsn, pool := feedDB(t)
	n := startListener(t, dsn, Options{PingInterval: 30 * time.Millisecond})
	time.Sleep(300 * time.Millisecond) // about ten pings
	commitRow(t, pool, "after-quiet")
	assertOnce(t, n.rec.waitFor(t, 1), "after-quiet")
	if st := n.l.State(); !st.Connected || st.Reconnects != 0 || st.LastError != "" {
		t.Errorf("state after quiet period: %+v", st)
	}
}
