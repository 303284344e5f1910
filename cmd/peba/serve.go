package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // served only on DEBUGADDR
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/auth"
	"github.com/peba-go/peba/blobstore"
	"github.com/peba-go/peba/cache"
	"github.com/peba-go/peba/config"
	"github.com/peba-go/peba/duckdb"
	"github.com/peba-go/peba/ews"
	"github.com/peba-go/peba/geoip"
	"github.com/peba-go/peba/hpfeeds"
	"github.com/peba-go/peba/http/clientip"
	"github.com/peba-go/peba/http/dashboard"
	"github.com/peba-go/peba/http/exportapi"
	"github.com/peba-go/peba/http/httpserver"
	"github.com/peba-go/peba/http/livefeed"
	"github.com/peba-go/peba/http/pebaapi"
	"github.com/peba-go/peba/http/seckcapi"
	"github.com/peba-go/peba/hub"
	"github.com/peba-go/peba/ingest"
	"github.com/peba-go/peba/journal"
	"github.com/peba-go/peba/postgres"
	"github.com/peba-go/peba/ratelimit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// storeEngine is what the subcommands need of a store; both engines
// (duckdb, postgres) implement it.
type storeEngine interface {
	peba.Store
	peba.Stats
	peba.SourceLister
}

// openStore opens the store the configuration selects: the PostgreSQL
// database of POSTGRES_DSN (multi-node mode, multinode.go), else the
// embedded store in cfg.DataDir, creating the directory. serving is true
// for serve, which wants the embedded store's caches of recent events
// loaded before its first requests; the other commands do not use them.
func openStore(cfg *config.Config, serving bool) (storeEngine, error) {
	if cfg.PostgresDSN != "" {
		return openPostgres(cfg)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("cannot create data directory: %w", err)
	}
	st, err := duckdb.Open(filepath.Join(cfg.DataDir, "peba.duckdb"), duckdb.Options{MemoryLimit: cfg.DuckDBMemoryLimit, Threads: cfg.DuckDBThreads, NoWarm: !serving})
	if err != nil {
		if strings.Contains(err.Error(), "lock") {
			return nil, fmt.Errorf("cannot open the database in %s (is a peba server running on it? stop it first): %w", cfg.DataDir, err)
		}
		return nil, fmt.Errorf("cannot open the database in %s: %w", cfg.DataDir, err)
	}
	return st, nil
}

// defaultGCPercent is the garbage collector's target for serve unless the
// GOGC environment variable sets one. Go's default, 100, lets the heap grow
// to twice what is live between collections. At saturating ingest, 60 kept
// Go's heap 35-45 MiB smaller and the peak RSS 28-62 MiB lower (414-424 vs
// 448-486 MiB), for about 9% of throughput (the median of three pairs, in
// noise of +-10%; docs/performance.md, session 7). The RSS budget (512 MiB)
// was the tighter of ingest's targets; GOGC=100 trades it back.
const defaultGCPercent = 60

// setGCPercent sets defaultGCPercent unless GOGC is set, and reports
// whether it did.
func setGCPercent(getenv func(string) string) bool {
	if getenv("GOGC") != "" {
		return false
	}
	debug.SetGCPercent(defaultGCPercent)
	return true
}

// mallocMmapThreshold is the size from which glibc's malloc serves a block
// by mmap, which goes back to the system when freed, unless the
// environment tunes malloc (MALLOC_MMAP_THRESHOLD_, GLIBC_TUNABLES). DuckDB
// keeps its buffer pool in a bundled jemalloc, but its other C++
// allocations (hash tables, vectors, metadata) and cgo's come from glibc.
// glibc's default threshold starts at 128 KiB and rises to the size of
// each mmapped block freed (up to 32 MiB), after which such blocks come
// from the heap arenas, which keep freed memory. Fixed at 128 KiB, peak RSS
// under saturating ingest was 17-22 MiB lower in two 180-s pairs (421/436
// against 438/458 MiB) and 29 MiB lower over 10 min (514 against 543 MiB),
// at the same rate (51.2k/50.3k against 51.4k/52.6k, and 51.4k against
// 51.3k alerts/s; docs/performance.md, session 11).
const mallocMmapThreshold = 128 << 10

// setMallocThreshold sets mallocMmapThreshold unless the environment sets
// glibc's malloc tunables, and reports whether it did.
func setMallocThreshold(getenv func(string) string) bool {
	if getenv("MALLOC_MMAP_THRESHOLD_") != "" || strings.Contains(getenv("GLIBC_TUNABLES"), "malloc.mmap_threshold") {
		return false
	}
	return setMallocMmapThreshold(mallocMmapThreshold)
}

func runServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, _, err := config.Load("serve", args, getenv, stderr, nil)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	log.Info("Starting peba", "version", version, "commit", commit)
	if setGCPercent(getenv) {
		log.Debug("Garbage collector", "gogc", defaultGCPercent)
	}
	if setMallocThreshold(getenv) {
		log.Debug("malloc", "mmap_threshold", mallocMmapThreshold)
	}
	for _, line := range cfg.Dump() {
		log.Debug("Config", "setting", line)
	}

	t := time.Now()
	store, err := openStore(cfg, true)
	if err != nil {
		return err
	}
	defer func() {
		t := time.Now()
		if err := store.Close(); err != nil {
			log.Error("Cannot close store", "error", err)
		}
		log.Info("Store closed", "duration", time.Since(t))
	}()
	pg, multiNode := store.(*postgres.Store)
	if multiNode {
		log.Info("Store opened", "engine", "postgres", "duration", time.Since(t))
	} else {
		log.Info("Store opened", "engine", "duckdb", "data_dir", cfg.DataDir, "duration", time.Since(t))
	}

	// Payload bytes: files in the data directory, or in multi-node mode the
	// shared database (nodes keep no local state).
	var blobs ingest.BlobWriter = pg
	if !multiNode {
		if blobs, err = blobstore.Open(filepath.Join(cfg.DataDir, "payloads")); err != nil {
			return err
		}
	}
	geo, err := geoip.Open(geoip.Config{CityPath: cfg.GeoIPCity, CountryPath: cfg.GeoIPCountry, ASNPath: cfg.GeoIPASN, ReloadInterval: time.Minute}, log)
	if err != nil {
		return err
	}
	defer geo.Close()
	logGeoStatus(log, geo)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	authn := auth.New(auth.Credentials{User: cfg.CommunityUser, Token: cfg.CommunityToken}, store, auth.Options{})
	// Every newly stored event is published once to the live feed: by
	// ingest after each commit, or in multi-node mode by the live feed
	// listener, which publishes every node's commits (this node's too).
	feedHub := hub.New(hub.Options{Registerer: reg})
	defer feedHub.Close()
	onCommit := feedHub.Publish
	// Ingest acknowledges after an fsynced journal append and applies to the
	// store behind it; what a crash left unapplied is applied before we
	// listen (deferred Close runs after pipe.Close, before the store's).
	// Multi-node: no journal; the durable write is the PostgreSQL
	// transaction, so a node can be replaced without losing anything.
	var jr *journal.Journal
	if multiNode {
		onCommit = nil
	} else {
		if jr, err = journal.Open(filepath.Join(cfg.DataDir, "journal"), journal.Options{}); err != nil {
			return err
		}
		defer jr.Close()
	}
	// The live feed shows events the embedded store certainly does not hold
	// yet as soon as they are journaled (durable), not after the apply.
	var fresh func([]peba.Event) []bool
	if f, ok := store.(interface{ CertainlyNew([]peba.Event) []bool }); ok && onCommit != nil {
		fresh = f.CertainlyNew
	}
	pipe := ingest.New(store, geo, blobs, ingest.Options{
		QueueEvents: cfg.QueueEvents, MaxBatch: cfg.CommitMaxBatch, ApplyBatch: cfg.CommitMaxBatch, ApplyDelay: cfg.ApplyDelay, WriterNice: cfg.WriterNice, Registerer: reg, Logger: log,
		OnCommit: onCommit, Journal: jr, Fresh: fresh,
	})
	t = time.Now()
	rec, err := pipe.Recover(ctx)
	if err != nil {
		return err
	}
	if jr != nil {
		log.Info("Journal recovered", "batches", rec.Batches, "events", rec.Events, "inserted", rec.Inserted, "duration", time.Since(t))
	}
	var respCache cache.Cache
	var cacheHealth func() error
	switch {
	case !cfg.ResponseCache:
		log.Info("Response cache disabled")
	case len(cfg.Memcached) > 0:
		mc, err := cache.NewMemcached("peba:", cfg.Memcached...)
		if err != nil {
			return err
		}
		if err := mc.Ping(); err != nil {
			log.Warn("Memcached not reachable; answers are computed until it is", "servers", cfg.Memcached, "error", err)
		}
		respCache = mc
		cacheHealth = mc.Ping
	default:
		respCache = cache.NewMemory(64<<20, nil)
	}
	api := pebaapi.New(pebaapi.Config{
		MaxBodyBytes:    cfg.MaxBodyBytes,
		QueueWait:       cfg.QueueWait,
		Decode:          ews.Options{MaxAlerts: cfg.MaxAlertsPerPost, MaxFieldBytes: cfg.MaxFieldBytes, MaxPayloadBytes: cfg.MaxPayloadBytes},
		MaxAlerts:       cfg.MaxAlerts,
		BadIPTimespan:   cfg.BadIPTimespan,
		CORSDomain:      cfg.CORSDomain,
		DefaultResponse: cfg.DefaultResponse,
		Cache:           respCache,
		CacheHealth:     cacheHealth,
		Limits:          ingestLimits(cfg),
	}, authn, pipe, store, peba.Stats(store), log, reg)

	srv := httpserver.New(cfg.BindHost, store, reg, log)
	api.Register(srv.Mux)
	feed := livefeed.New(livefeed.Options{Hub: feedHub, Auth: authn, Registerer: reg, Logger: log})
	defer feed.Close()
	feed.Register(srv.Mux)

	// The hpfeeds client is built here so /feeds/status can report its
	// state; it starts below with the other background work.
	var hp *hpfeeds.Client
	var hpState func() []hpfeeds.BrokerState
	if cfg.HpfeedsHost != "" {
		hp = newHpfeeds(cfg, pipe, log, reg)
		hpState = hp.State
	}
	seckcapi.New(seckcapi.Options{
		Auth: authn, Stats: store, Events: store, Geo: geo, Hub: feedHub, Hpfeeds: hpState, Logger: log,
	}).Register(srv.Mux)
	// Blocklists, event search and export under /api/v1 (docs/api.md);
	// windows reach back as far as the retention keeps events.
	exportapi.New(exportapi.Options{
		Auth: authn, Sources: store, Events: store, Logger: log, Cache: respCache,
		MaxWindow: time.Duration(cfg.RetentionDays) * 24 * time.Hour,
	}).Register(srv.Mux)
	if cfg.Dashboard {
		// At "/" the dashboard takes GET of / from PEBA's redirect
		// (DASHBOARDPATH=/dashboard/ keeps the redirect).
		dash, err := dashboard.New(dashboard.Options{Path: cfg.DashboardPath, GeoTypes: geoTypes(geo), Version: version, Logger: log})
		if err != nil {
			return err
		}
		dash.Register(srv.Mux)
	}

	ln, err := net.Listen("tcp", cfg.BindHost)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", cfg.BindHost, err)
	}
	log.Info("Listening", "addr", ln.Addr().String(), "ingest", "http://"+ln.Addr().String()+"/ews-0.1/alert/postSimpleMessage")

	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	if multiNode {
		// The live feed listener must be following before this node
		// commits anything (the HTTP server starts below).
		if err := startMultiNode(ctx, bg, cfg, pg, feedHub, reg, log); err != nil {
			return err
		}
	} else {
		go retentionLoop(bg, store, cfg.RetentionDays, log)
		go checkpointLoop(bg, store, log)
	}

	if cfg.DebugAddr != "" {
		go func() {
			// http.DefaultServeMux carries net/http/pprof's handlers only.
			log.Info("Profiling enabled", "addr", cfg.DebugAddr)
			if err := http.ListenAndServe(cfg.DebugAddr, http.DefaultServeMux); err != nil {
				log.Error("Profiling listener failed", "error", err)
			}
		}()
	}

	if hp != nil {
		go func() {
			if err := hp.Run(bg); err != nil {
				log.Error("hpfeeds client stopped", "error", err)
			}
		}()
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.HTTP.Serve(ln) }()

	select {
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("cannot serve: %w", err)
		}
	case <-ctx.Done():
	}
	// Shutdown in reverse order of start: stop taking requests, let in-flight
	// POSTs finish (they wait for their commit), drain the pipeline, close
	// the store (deferred).
	log.Info("Shutting down", "grace", cfg.ShutdownGrace)
	srv.SetDraining()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	if err := srv.HTTP.Shutdown(sctx); err != nil {
		log.Warn("HTTP shutdown incomplete", "error", err)
	}
	if err := pipe.Close(sctx); err != nil {
		log.Warn("Ingest pipeline did not drain", "error", err)
	}
	stopBG()
	return nil
}

// ingestLimits builds the ingest abuse limits from cfg (docs/deployment.md,
// "Abuse limits"). Each limiter keeps at most 100,000 keys (a few MB).
func ingestLimits(cfg *config.Config) pebaapi.Limits {
	const maxKeys = 100_000
	l := pebaapi.Limits{
		PerAddress:       ratelimit.New(float64(cfg.RateAddress), cfg.RateAddressBurst, maxKeys, nil),
		PerUser:          ratelimit.New(float64(cfg.RateUser), cfg.RateUserBurst, maxKeys, nil),
		PerSensor:        ratelimit.New(float64(cfg.RateSensor), cfg.RateSensorBurst, maxKeys, nil),
		BlockedAddresses: cfg.BlockAddresses,
		ClientIP:         clientip.New(cfg.TrustedProxies),
	}
	if len(cfg.BlockSensors) > 0 {
		l.Blocked = map[string]bool{}
		for _, s := range cfg.BlockSensors {
			l.Blocked[s] = true
		}
	}
	return l
}

// geoTypes reports the database_type of each loaded GeoIP database, for
// the dashboard's licence attribution (DB-IP Lite requires a link).
func geoTypes(geo *geoip.DB) func() []string {
	return func() []string {
		var out []string
		for _, st := range geo.Status() {
			if st.Loaded {
				out = append(out, st.Type)
			}
		}
		return out
	}
}

func logGeoStatus(log *slog.Logger, geo *geoip.DB) {
	loaded := 0
	for _, st := range geo.Status() {
		switch {
		case st.Loaded:
			loaded++
			log.Info("GeoIP database loaded", "kind", st.Kind, "path", st.Path, "type", st.Type, "built", st.BuildTime.Format("2006-01-02"))
		case st.Err != "":
			log.Warn("GeoIP database not loaded", "kind", st.Kind, "path", st.Path, "error", st.Err)
		}
	}
	if loaded == 0 {
		log.Warn("No GeoIP database loaded: countries, locations and ASNs will be '-' (private ranges still map to PIR). " +
			"Get DB-IP Lite City and ASN (no key needed) from https://db-ip.com/db/lite.php and set GEOIP_CITY / GEOIP_ASN.")
	}
}

// retentionLoop deletes events older than days, hourly (and at start).
func retentionLoop(ctx context.Context, store peba.Store, days int, log *slog.Logger) {
	if days <= 0 {
		return
	}
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		if err := retain(ctx, store, days, log); err != nil && ctx.Err() == nil {
			log.Error("Retention failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// retain deletes the events older than days (one retention round).
func retain(ctx context.Context, store peba.Store, days int, log *slog.Logger) error {
	cutoff := time.Now().UTC().AddDate(0, 0, -days)
	n, err := store.DeleteEventsBefore(ctx, cutoff)
	if err != nil {
		return err
	}
	if n > 0 {
		log.Info("Retention removed old events", "events", n, "before", cutoff.Format(time.RFC3339))
	}
	return nil
}

// checkpointer is implemented by stores that benefit from explicit,
// scheduled checkpoints (DuckDB: an automatic checkpoint runs inside a
// committing transaction and stalls ingest).
type checkpointer interface {
	Checkpoint(ctx context.Context) error
}

func checkpointLoop(ctx context.Context, store peba.Store, log *slog.Logger) {
	cp, ok := store.(checkpointer)
	if !ok {
		return
	}
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := cp.Checkpoint(ctx); err != nil && ctx.Err() == nil {
				log.Warn("Checkpoint failed", "error", err)
			}
		}
	}
}
