// Package postgres implements peba.Store and peba.Stats on PostgreSQL 15+
// (github.com/jackc/pgx/v5), for installations where several peba nodes
// share one database (issue 5; architecture.md "Storage"). It passes the
// same contract suites (storetest) as the embedded DuckDB store; behaviour
// does not differ between them.
//
// Schema and choices (migrations/0001_init.sql):
//   - events are partitioned by receive day; AppendEvents creates the
//     partitions of a batch's days, DeleteEventsBefore drops whole old
//     partitions and deletes rows only from the boundary day;
//   - ids are made unique across partitions by table event_ids: each
//     AppendEvents inserts its ids there first (ON CONFLICT DO NOTHING
//     RETURNING id), which decides which events are new, also when two
//     nodes append the same event at once; the new events are then written
//     with COPY;
//   - rollups, payload records and the live feed row are maintained in the
//     same transaction; every row-locking statement touches its rows in
//     sorted key order, so concurrent nodes never deadlock each other, and
//     each append counts into its own rollup shard, so that nodes do not
//     wait for each other's commits on the hot rollup rows; the live feed
//     NOTIFY follows the commit (notifyFeed);
//   - the rollup tables are partitioned by dim; statistics read whole
//     buckets from them and only short raw edges (stats.go), Top of the
//     long-tail dims without reading the tail (topbounded.go), sensors from
//     their own daily rollup (sensors.go); what a node read for the
//     stable parts of windows that slide with the clock is remembered
//     under versions read with every query, exact across nodes (memo.go);
//   - text columns are COLLATE "C" (byte order, as the contracts require),
//     and text values have NUL escaped (escText), because PostgreSQL text
//     cannot hold NUL while peba.ValidateEvent accepts it;
//   - times are TIMESTAMP without time zone holding UTC microseconds, so no
//     query depends on the session's TimeZone.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/internal/closedmemo"
)

var (
	_ peba.Store = (*Store)(nil)
	_ peba.Stats = (*Store)(nil)
)

// Options tunes the connection pool. Zero values select the defaults.
type Options struct {
	// MaxConns is the pool size (default DefaultMaxConns).
	MaxConns int32
	// Logger receives notes about schema migrations; nil discards them.
	Logger *slog.Logger
	// MemoBytes bounds the statistics memo (memo.go; default
	// DefaultMemoBytes, negative: no memo).
	MemoBytes int
}

// DefaultMaxConns is the default pool size: appends hold a connection for
// one transaction each, statistics one per query.
const DefaultMaxConns = 8

// Store is a peba.Store backed by a PostgreSQL database. It is safe for
// concurrent use, and several Stores (nodes) may share one database.
type Store struct {
	pool *pgxpool.Pool
	log  *slog.Logger

	// parts caches the receive days (days since the Unix epoch) whose
	// partition this Store has created or seen, so that appends issue the
	// partition DDL only for a new day.
	parts sync.Map

	// memo holds partial statistics of stable ranges (memo.go); nil if
	// disabled.
	memo *closedmemo.Memo
	// last is the last range entry per kind of window (memo.go).
	lastMu sync.Mutex
	last   map[string]*lastRange
	// bg counts the memo's background fills (memo.go, fill), fills
	// holds the keys of those running; bgMu orders their start with
	// Close.
	bg    sync.WaitGroup
	bgMu  sync.Mutex
	fills sync.Map

	closed atomic.Bool
}

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrateLockKey is the advisory lock (single bigint form) under which Open
// applies migrations, one node at a time: "pebamigr" in ASCII.
const migrateLockKey int64 = 0x70656261_6d696772

// Open connects to the database at dsn (a postgres:// URL or key=value
// string), applies the embedded migrations it lacks under an advisory lock
// (so nodes starting together apply each migration once), and refuses to
// start, with an error, if the database records a migration this binary
// does not know (it was written by a newer peba).
//
// Sessions are set to TimeZone UTC and synchronous_commit on (unless the
// DSN sets them): AppendEvents promises durability when it returns.
func Open(ctx context.Context, dsn string, opt Options) (*Store, error) {
	return openTo(ctx, dsn, opt, 0)
}

// openTo is Open applying the migrations up to version maxVersion only
// (0: all), for the tests of a migration on an older schema's data.
func openTo(ctx context.Context, dsn string, opt Options, maxVersion int) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the DSN, password included.
		return nil, errors.New("cannot open database: invalid PostgreSQL connection string")
	}
	if opt.MaxConns > 0 {
		cfg.MaxConns = opt.MaxConns
	} else if opt.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	} else {
		return nil, fmt.Errorf("cannot open database: invalid pool size %d", opt.MaxConns)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 { // no connect_timeout in the DSN
		// An unreachable server must fail the start, not hang it (callers
		// do not bound Open: migrations may take minutes).
		cfg.ConnConfig.ConnectTimeout = 30 * time.Second
	}
	rp := cfg.ConnConfig.RuntimeParams
	for k, v := range map[string]string{"timezone": "UTC", "synchronous_commit": "on", "application_name": "peba"} {
		if _, ok := rp[k]; !ok {
			rp[k] = v
		}
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot open database: %w", err)
	}
	s := &Store{pool: pool, log: log}
	switch {
	case opt.MemoBytes == 0:
		s.memo = closedmemo.New(DefaultMemoBytes)
	case opt.MemoBytes > 0:
		s.memo = closedmemo.New(opt.MemoBytes)
	}
	if maxVersion > 0 && maxVersion < memoMigration {
		s.memo = nil // no stats_epoch
	}
	if err := s.migrate(ctx, maxVersion); err != nil {
		pool.Close()
		return nil, fmt.Errorf("cannot open database: %w", err)
	}
	return s, nil
}

// Pool returns the connection pool, for the cross-node live feed listener
// and cluster-wide job locks (package postgres/cluster).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations ordered by version. File names
// are "NNNN_name.sql"; the files are append-only: a released file is never
// edited, a change is a new file.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("bad migration file name %q", e.Name())
		}
		b, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// migrate applies the missing migrations (up to maxVersion, if not 0), one
// transaction each, holding a session advisory lock on one connection
// throughout. A second node that starts meanwhile waits for the lock and
// then finds the migrations recorded.
func (s *Store) migrate(ctx context.Context, maxVersion int) (err error) {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("cannot read migrations: %w", err)
	}
	if maxVersion > 0 {
		ms = slices.DeleteFunc(ms, func(m migration) bool { return m.version > maxVersion })
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLockKey); err != nil {
		return fmt.Errorf("cannot take the migration lock: %w", err)
	}
	defer func() {
		// A session lock outlives a failed unlock: close the connection so
		// that the server drops the lock, rather than pool it.
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrateLockKey); uerr != nil {
			conn.Conn().Close(context.Background())
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied TIMESTAMPTZ NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("cannot create schema_migrations: %w", err)
	}
	rows, err := conn.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("cannot read schema_migrations: %w", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return fmt.Errorf("cannot read schema_migrations: %w", err)
	}
	known := map[int]bool{}
	for _, m := range ms {
		known[m.version] = true
	}
	applied := map[int]bool{}
	for _, v := range versions {
		if !known[int(v)] {
			return fmt.Errorf("database schema has migration %d, which this binary does not know (newest known: %d): the database was written by a newer version of peba", v, ms[len(ms)-1].version)
		}
		applied[int(v)] = true
	}
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("cannot apply migration %s: %w", m.name, err)
		}
		s.log.Info("Applied PostgreSQL schema migration", "migration", m.name)
	}
	return nil
}

// check returns ErrUnavailable after Close.
func (s *Store) check() error {
	if s.closed.Load() {
		return peba.ErrUnavailable
	}
	return nil
}

// Ping reports whether the database answers queries.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("cannot ping database: %w", errors.Join(peba.ErrUnavailable, err))
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be returned.
// Further calls return peba.ErrUnavailable.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.bgMu.Lock() // no fill starts after this
	s.bgMu.Unlock()
	s.bg.Wait()
	s.pool.Close()
	return nil
}

// dbTime converts t to what a TIMESTAMP column stores: UTC, microseconds
// (truncated, as the DuckDB store does).
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// escText makes s storable in a PostgreSQL text value, which cannot hold
// NUL: NUL becomes "\x01\x01" and U+0001 becomes "\x01\x02". The mapping is
// injective, keeps valid UTF-8 valid, and preserves byte order (the
// contracts order keys bytewise), so equality, ORDER BY and range
// conditions on escaped values agree with the raw strings. Strings without
// those two bytes (all real ones) are returned as they are.
func escText(s string) string {
	if strings.IndexByte(s, 0) < 0 && strings.IndexByte(s, 1) < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 0:
			b.WriteString("\x01\x01")
		case 1:
			b.WriteString("\x01\x02")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// unescText reverses escText.
func unescText(s string) string {
	if strings.IndexByte(s, 1) < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 1 && i+1 < len(s) {
			i++
			c = s[i] - 1 // "\x01\x01" -> 0, "\x01\x02" -> 1
		}
		b.WriteByte(c)
	}
	return b.String()
}

// escTexts escapes each element of ss (a new slice).
func escTexts(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = escText(s)
	}
	return out
}

// args collects the positional parameters of a query; add returns the
// placeholder of v.
type args []any

func (a *args) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// retryable reports whether err is a transient conflict after which the
// whole transaction may be run again: a serialization failure or a
// deadlock (the sorted lock order avoids deadlocks between appends; this
// is the safety net).
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// noPartition reports whether err says a row had no partition to go to:
// another node's retention dropped a partition this Store had cached.
func noPartition(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23514" && strings.Contains(pe.Message, "no partition")
}
