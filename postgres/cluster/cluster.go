// Package cluster runs periodic jobs (retention, live feed pruning) once
// across all peba nodes that share one PostgreSQL database, instead of once
// per node (issue 5, "Retention and other periodic jobs run once across the
// cluster").
//
// Every node runs the same loop; each tick it asks whether the job is due.
// Two things make "once" hold:
//
//   - a transaction-scoped advisory lock per job
//     (pg_try_advisory_xact_lock): at most one node runs a job at a time;
//     nodes that do not get the lock skip the tick without waiting;
//   - a row per job in table cluster_jobs with the database time of the last
//     successful run: the node holding the lock runs the job only if that is
//     at least one period ago. Without it, a node whose tick comes a second
//     after another node finished would run the job a second time in the
//     same period, since the lock is free again by then.
//
// The lock, the due check and the run share one transaction. If the node
// dies while running, PostgreSQL ends its session, the lock is released, the
// row is not updated, and another node runs the job at its next tick. Times
// come from the database clock, so skewed node clocks do not matter.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// lockClass is the first key of the cluster jobs' two-key advisory locks
// ("PEBA" in ASCII; the store's partition locks use "PART"). The
// single-bigint lock form (the store's migration, retention and DDL locks)
// lives in a separate key space in pg_locks (objsubid 1 vs 2), so they
// never collide.
const lockClass int32 = 0x50454241

// schema creates the job table. It is not part of the store's migrations:
// it holds no data, only when each job last ran, and the store works
// without it.
const schema = `CREATE TABLE IF NOT EXISTS cluster_jobs (
	name       TEXT PRIMARY KEY,
	last_start TIMESTAMPTZ NOT NULL,
	last_end   TIMESTAMPTZ NOT NULL,
	node       TEXT NOT NULL
)`

// Job is a periodic task that must run once per period across the cluster.
type Job struct {
	// Name identifies the job across nodes (and keys its advisory lock).
	Name string
	// Every is the period: the job runs when its last successful run started
	// at least this long ago (database time).
	Every time.Duration
	// Run does the work. It may use other connections (the store); it must
	// honour ctx. An error leaves the job due, so the next tick (on any
	// node) retries it.
	Run func(ctx context.Context) error
}

// Options configure a Runner.
type Options struct {
	// Node names this node in cluster_jobs and in logs (e.g. host:port).
	Node string
	// Registerer receives the runner's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Runner runs Jobs on a connection pool. It is safe for concurrent use.
type Runner struct {
	pool *pgxpool.Pool
	opt  Options
	log  *slog.Logger

	mRuns *prometheus.CounterVec
}

// New returns a Runner. Call Init once before running jobs.
func New(pool *pgxpool.Pool, opt Options) *Runner {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	r := &Runner{
		pool: pool, opt: opt, log: opt.Logger,
		mRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "peba_cluster_job_runs_total",
			Help: "Periodic cluster job rounds on this node, by job and result (ran, failed, not_due: another node ran it this period, locked: another node is running it).",
		}, []string{"job", "result"}),
	}
	if opt.Registerer != nil {
		opt.Registerer.MustRegister(r.mRuns)
	}
	return r
}

// Init creates the job table if it does not exist. Nodes starting at the
// same time serialise on an advisory lock: concurrent CREATE TABLE IF NOT
// EXISTS can otherwise fail on a catalog unique index.
func (r *Runner) Init(ctx context.Context) error {
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, lockClass); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, schema)
		return err
	})
}

// Result says what TryRun did.
type Result int

const (
	Ran    Result = iota // this node ran the job, successfully
	Failed               // this node ran the job and it failed (still due)
	NotDue               // the job ran less than Every ago (on some node)
	Locked               // another node is running it right now
)

func (r Result) String() string {
	return [...]string{"ran", "failed", "not_due", "locked"}[r]
}

// TryRun runs job if no other node is running it and it is due. It never
// waits for another node. The error is the job's (Failed) or a database
// error (nothing ran).
func (r *Runner) TryRun(ctx context.Context, job Job) (Result, error) {
	res, err := r.tryRun(ctx, job)
	if err == nil || res == Failed {
		r.mRuns.WithLabelValues(job.Name, res.String()).Inc()
	}
	return res, err
}

var errSkip = errors.New("skip")

func (r *Runner) tryRun(ctx context.Context, job Job) (Result, error) {
	res := Ran
	var jobErr error
	err := r.inTx(ctx, func(tx pgx.Tx) error {
		var got bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1, $2)`, lockClass, jobKey(job.Name)).Scan(&got); err != nil {
			return err
		}
		if !got {
			res = Locked
			return errSkip
		}
		var due bool
		err := tx.QueryRow(ctx, `SELECT coalesce((SELECT last_start <= now() - make_interval(secs => $2)
			FROM cluster_jobs WHERE name = $1), true)`, job.Name, job.Every.Seconds()).Scan(&due)
		if err != nil {
			return err
		}
		if !due {
			res = NotDue
			return errSkip
		}
		// last_start is the transaction's start (now()): the period is
		// measured start to start, so a slow run does not drift the schedule.
		if jobErr = job.Run(ctx); jobErr != nil {
			res = Failed
			return errSkip
		}
		_, err = tx.Exec(ctx, `INSERT INTO cluster_jobs (name, last_start, last_end, node) VALUES ($1, now(), clock_timestamp(), $2)
			ON CONFLICT (name) DO UPDATE SET last_start = excluded.last_start, last_end = excluded.last_end, node = excluded.node`,
			job.Name, r.opt.Node)
		return err
	})
	switch {
	case jobErr != nil:
		return Failed, jobErr
	case errors.Is(err, errSkip):
		return res, nil
	case err != nil:
		return res, fmt.Errorf("cluster job %s: %w", job.Name, err)
	}
	return Ran, nil
}

// inTx runs fn in a transaction. Unlike pgx.BeginFunc it rolls back with
// a fresh context: when ctx has ended (the node shuts down mid-job), a
// rollback under ctx would not be sent, and the lock would stay held until
// the pool got around to closing the connection.
func (r *Runner) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tx.Rollback(rctx) // no-op after Commit
	}()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// Loop calls TryRun every tick (and at once) until ctx ends, logging
// failures. tick should be a fraction of job.Every, so that when the node
// that ran a job last is gone, another picks it up soon after it is due.
func (r *Runner) Loop(ctx context.Context, job Job, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		res, err := r.TryRun(ctx, job)
		if err != nil && ctx.Err() == nil {
			r.log.Error("Cluster job failed", "job", job.Name, "result", res.String(), "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// jobKey is the second advisory lock key of a job: a stable hash of its name.
func jobKey(name string) int32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return int32(h.Sum32())
}
