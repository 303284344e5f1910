// Package duckdb implements peba.Store on an embedded DuckDB database file
// (github.com/duckdb/duckdb-go/v2). It is the default store of a single-node
// installation; the measurements behind the settings used here are in
// ../shared/docs/reference/storage-bakeoff.md.
package duckdb

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	duckdbdriver "github.com/duckdb/duckdb-go/v2"

	"github.com/peba-go/peba"
)

var _ peba.Store = (*Store)(nil)

// Options tunes the DuckDB instance. Zero values select the defaults.
type Options struct {
	// MemoryLimit caps DuckDB's buffer manager, e.g. "256MB" (default
	// DefaultMemoryLimit). Without a cap DuckDB takes 80% of the machine's RAM
	// for caching (storage-bakeoff.md note 6).
	MemoryLimit string
	// Threads is DuckDB's worker thread count (default DefaultThreads).
	Threads int
	// CheckpointThreshold is the WAL size that triggers an automatic
	// checkpoint inside a commit, e.g. "64MB" (default
	// DefaultCheckpointThreshold). See Store.Checkpoint.
	CheckpointThreshold string
	// NoWarm skips loading the caches of recent events (the de-duplication
	// filter, the newest events, the recent times) in the background after
	// Open. A server wants them before its first requests; a command that
	// exports, imports or manages users does not use them, and their load
	// holds the writer lock and DuckDB memory (~1 s on a day of millions
	// of events) while the command works.
	NoWarm bool
}

// Defaults. The checkpoint threshold: DuckDB's 16MB default stalled
// commits the most (BenchmarkAppendCommit, 1M events in 100-event appends,
// 2 CPUs: max 12.5 s, against 2.1 s at 128MB, and 4.3 s plus a 23 s
// checkpoint at Close at 1GB), and cost ~5 µs more per event at full
// ingest; 32MB ~4 µs more. 64MB costs no more per event than 128MB
// (TestIngestStages), and at full ingest `serve` peaked 50 MiB lower
// (449-450 against 497-503 MiB RSS over 180 s) with 5% more alerts/s: at
// 128MB the uncheckpointed data outgrew the memory limit, and each
// checkpoint spilled ~200 MB to the temporary file and read it back
// (docs/performance.md, session 9).
//
// The memory limit is mostly a cache of blocks DuckDB wrote or read, which
// it fills to the limit while ingesting: at 50k alerts/s `serve` peaked at
// 540-610 MiB RSS with 256MB and 460-490 MiB with 128MB, for the same rate
// (docs/performance.md, session 6). The statistics endpoints on 10M events
// were as fast with 128MB (their closed-bucket memos are Go memory). The
// largest statements of ingest, the source index merge's, work on key
// ranges of ~200k rows at a time, and ran on 9.6M sources within it
// (srcindex.go).
const (
	DefaultMemoryLimit         = "128MB"
	DefaultCheckpointThreshold = "64MB"
)

// DefaultThreads is DuckDB's worker thread count unless set: one per CPU
// but one, which is left to the Go side (HTTP, decoding, journal, live
// feed). With a thread per CPU, on 2 CPUs, DuckDB's idle worker spins for
// work and its parallel plans compete with the ingest handlers: ingest
// took 30 µs of CPU per alert against 25.5 µs with one thread, and the
// statistics endpoints on 10M events were within noise (session 6).
func DefaultThreads() int { return max(1, runtime.NumCPU()-1) }

// sizeRE accepts DuckDB size literals such as "1GB", "256MiB", "512 MB". The
// values go into a DSN, so nothing else is allowed through.
var sizeRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?\s*([KMGT]i?B|B)$`)

// Store is a peba.Store backed by one DuckDB database file. It is safe for
// concurrent use; writers are serialized on one dedicated connection.
type Store struct {
	db *sql.DB

	// mu serializes writers on wconn: the Appender writes on that one
	// connection, and concurrent DuckDB transactions updating the same
	// payload rows would abort each other (optimistic concurrency).
	mu     sync.Mutex
	wconn  *sql.Conn // the writer connection, used only with mu held
	closed bool
	srcIdx srcIndexState // guarded by mu (srcindex.go)
	tops   topsHint      // guarded by mu (tops_summary.go)
	ids    idFilter      // written under mu and idsMu; read under either (idfilter.go)
	idsMu  sync.Mutex    // lets CertainlyNew read ids while an append holds mu
	recent recentCache   // the newest events (recent.go)
	times  recentTimes   // the received times of the last day (recent.go)
	memo   memoState     // what was read of closed buckets (memo.go)

	sensorCache sensorCache // decoded sensor summaries (sensorcache.go)
}

//go:embed migrations/*.sql
var migrationFS embed.FS

// Open opens (creating if needed) the database file at path and applies the
// embedded migrations that are not yet recorded. The directory must exist.
// Open fails if the database records a migration this binary does not know,
// i.e. it was written by a newer version.
func Open(path string, opt Options) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?") {
		return nil, fmt.Errorf("cannot open database: invalid path %q", path)
	}
	if opt.MemoryLimit == "" {
		opt.MemoryLimit = DefaultMemoryLimit
	}
	if opt.CheckpointThreshold == "" {
		opt.CheckpointThreshold = DefaultCheckpointThreshold
	}
	if !sizeRE.MatchString(opt.MemoryLimit) {
		return nil, fmt.Errorf("cannot open database: invalid memory limit %q", opt.MemoryLimit)
	}
	if !sizeRE.MatchString(opt.CheckpointThreshold) {
		return nil, fmt.Errorf("cannot open database: invalid checkpoint threshold %q", opt.CheckpointThreshold)
	}
	if opt.Threads < 0 {
		return nil, fmt.Errorf("cannot open database: invalid thread count %d", opt.Threads)
	}
	q := url.Values{}
	q.Set("memory_limit", opt.MemoryLimit)
	q.Set("checkpoint_threshold", opt.CheckpointThreshold)
	if opt.Threads == 0 {
		opt.Threads = DefaultThreads()
	}
	q.Set("threads", strconv.Itoa(opt.Threads))
	// The data directory is ours: keep DuckDB from fetching extensions over
	// the network at run time.
	q.Set("autoinstall_known_extensions", "false")
	q.Set("autoload_known_extensions", "false")

	connector, err := duckdbdriver.NewConnector(path+"?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("cannot open database %s: %w", path, err)
	}
	db := sql.OpenDB(connector)
	s := &Store{db: db, memo: newMemoState()}
	ctx := context.Background()
	if s.wconn, err = db.Conn(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("cannot open database %s: %w", path, err)
	}
	if err := s.migrate(ctx); err != nil {
		s.wconn.Close()
		db.Close()
		return nil, fmt.Errorf("cannot open database %s: %w", path, err)
	}
	if !opt.NoWarm {
		go s.warmRecent() // recent.go
	}
	return s, nil
}

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

// migrate applies the missing migrations, one transaction each.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("cannot read migrations: %w", err)
	}
	if _, err := s.wconn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied TIMESTAMP NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("cannot create schema_migrations: %w", err)
	}
	applied := map[int]bool{}
	rows, err := s.wconn.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("cannot read schema_migrations: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("cannot read schema_migrations: %w", err)
		}
		applied[v] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read schema_migrations: %w", err)
	}
	known := map[int]bool{}
	for _, m := range ms {
		known[m.version] = true
	}
	for v := range applied {
		if !known[v] {
			return fmt.Errorf("database schema has migration %d, which this binary does not know (newest known: %d): the database was written by a newer version of peba", v, ms[len(ms)-1].version)
		}
	}
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		err := s.inTx(ctx, func() error {
			if _, err := s.wconn.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			_, err := s.wconn.ExecContext(ctx, `INSERT INTO schema_migrations (version, name) VALUES (?, ?)`, m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("cannot apply migration %s: %w", m.name, err)
		}
	}
	return nil
}

// inTx runs fn inside BEGIN/COMMIT on the writer connection (mu held or not
// yet shared). Transactions are issued as SQL on the one connection because
// the Appender must write on that same connection. On any error the
// transaction is rolled back with a fresh context, so a cancelled ctx still
// leaves nothing behind.
func (s *Store) inTx(ctx context.Context, fn func() error) error {
	// The closed-bucket memo learns what fn changed and is told around the
	// COMMIT (memo.go).
	defer s.memoPostCommit()
	if _, err := s.wconn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return fmt.Errorf("cannot begin transaction: %w", err)
	}
	if err := fn(); err != nil {
		if _, rbErr := s.wconn.ExecContext(context.Background(), "ROLLBACK"); rbErr != nil {
			return errors.Join(err, fmt.Errorf("cannot roll back: %w", rbErr))
		}
		return err
	}
	if err := ctx.Err(); err != nil {
		if _, rbErr := s.wconn.ExecContext(context.Background(), "ROLLBACK"); rbErr != nil {
			return errors.Join(err, fmt.Errorf("cannot roll back: %w", rbErr))
		}
		return err
	}
	// COMMIT is not given ctx: once we decided to commit, an interrupt
	// half-way would leave the caller unsure whether the data is stored.
	s.memoPreCommit()
	if _, err := s.wconn.ExecContext(context.Background(), "COMMIT"); err != nil {
		s.wconn.ExecContext(context.Background(), "ROLLBACK")
		return fmt.Errorf("cannot commit: %w", err)
	}
	return nil
}

// lockWriter takes the writer lock, or returns ErrUnavailable after Close.
func (s *Store) lockWriter() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return peba.ErrUnavailable
	}
	return nil
}

// Checkpoint writes the WAL into the database file. DuckDB also checkpoints
// automatically when the WAL exceeds CheckpointThreshold, but that happens
// inside a committing append and stalls it (1.1-1.3 s measured with the
// 16 MiB default, storage-bakeoff.md note 6). The service should call
// Checkpoint when ingest is idle so automatic checkpoints rarely trigger.
// Appends wait while it runs.
func (s *Store) Checkpoint(ctx context.Context) error {
	if err := s.lockWriter(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, err := s.wconn.ExecContext(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("cannot checkpoint: %w", err)
	}
	return nil
}

// Ping reports whether the database answers queries.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("cannot ping database: %w", errors.Join(peba.ErrUnavailable, err))
	}
	return nil
}

// Close checkpoints the WAL into the database file and closes the database.
// Further calls return peba.ErrUnavailable.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	_, cpErr := s.wconn.ExecContext(context.Background(), "CHECKPOINT")
	if cpErr != nil {
		cpErr = fmt.Errorf("cannot checkpoint: %w", cpErr)
	}
	return errors.Join(cpErr, s.wconn.Close(), s.db.Close())
}
