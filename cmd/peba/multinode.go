package main

// Multi-node mode (issue 5): with POSTGRES_DSN every node is stateless and
// shares one PostgreSQL database. Differences from the embedded mode, all
// wired here and in runServe:
//   - no ingest journal: a batch is acknowledged after its PostgreSQL
//     transaction commits; payload bytes go to the database, not DATADIR;
//   - the live feed comes from the database (pgfeed.Listener), not from
//     ingest's OnCommit, so every node publishes every node's events, once;
//   - periodic jobs (retention, live feed pruning) run once across the
//     cluster (postgres/cluster), not once per node;
//   - no DuckDB checkpoints.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/peba-go/peba/config"
	"github.com/peba-go/peba/hub"
	"github.com/peba-go/peba/postgres"
	"github.com/peba-go/peba/postgres/cluster"
	"github.com/peba-go/peba/postgres/pgfeed"
	"github.com/prometheus/client_golang/prometheus"
)

// Multi-node timing. The live feed table only has to outlive a listener's
// reconnect (pgfeed's package comment); ten minutes covers a database
// failover. Jobs are tried every tick on every node and run when due.
const (
	feedKeep      = 10 * time.Minute
	feedPruneTick = 15 * time.Second
	retentionTick = time.Minute
)

func openPostgres(cfg *config.Config) (*postgres.Store, error) {
	// Open applies migrations (one node at a time) and may wait for
	// another node's. Neither is bounded: a migration over a large database
	// takes minutes (0006 took 145 s on 10M events) and cutting it short
	// only rolls it back. A wrong DSN does not hang the start: connecting
	// has its own timeout (postgres.Open).
	st, err := postgres.Open(context.Background(), cfg.PostgresDSN, postgres.Options{MaxConns: int32(cfg.PostgresMaxConns), MemoBytes: memoBytes(cfg.PostgresMemoMB)})
	if err != nil {
		return nil, fmt.Errorf("cannot open the PostgreSQL database (POSTGRES_DSN): %w", err)
	}
	return st, nil
}

// startMultiNode starts the live feed listener and the cluster jobs on bg.
// It returns once the listener follows the feed (or after a bounded wait:
// a node whose listener cannot connect still ingests and answers queries;
// its live feed starts when the listener connects).
func startMultiNode(ctx, bg context.Context, cfg *config.Config, st *postgres.Store, h *hub.Hub, reg prometheus.Registerer, log *slog.Logger) error {
	size, _ := h.ReplayLimits()
	lis := pgfeed.New(pgfeed.Options{
		ConnConfig: st.Pool().Config().ConnConfig.Copy(),
		Publisher:  h,
		Decode:     postgres.DecodeFeed,
		Backfill:   size, // rows, each holding one or more events
		Registerer: reg,
		Logger:     log,
	})
	go lis.Run(bg)
	select {
	case <-lis.Ready():
		log.Info("Live feed listener following the cluster feed")
	case <-time.After(15 * time.Second):
		log.Warn("Live feed listener not connected yet; the live feed starts when it is", "state", fmt.Sprintf("%+v", lis.State()))
	case <-ctx.Done():
		return ctx.Err()
	}

	host, _ := os.Hostname()
	jobs := cluster.New(st.Pool(), cluster.Options{Node: host + " " + cfg.BindHost, Registerer: reg, Logger: log})
	ictx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := jobs.Init(ictx); err != nil {
		return fmt.Errorf("cannot prepare cluster jobs: %w", err)
	}
	if days := cfg.RetentionDays; days > 0 {
		go jobs.Loop(bg, cluster.Job{Name: "retention", Every: time.Hour, Run: func(ctx context.Context) error {
			return retain(ctx, st, days, log)
		}}, retentionTick)
	}
	go jobs.Loop(bg, cluster.Job{Name: "live_feed_prune", Every: time.Minute, Run: func(ctx context.Context) error {
		_, err := st.PruneFeed(ctx, time.Now().Add(-feedKeep))
		return err
	}}, feedPruneTick)
	return nil
}

// memoBytes converts POSTGRES_MEMO_MB to postgres.Options.MemoBytes, where
// 0 means the default and a negative value turns the memo off.
func memoBytes(mb int) int {
	if mb <= 0 {
		return -1
	}
	return mb << 20
}
