// Package pebaapi serves PEBA's HTTP interface: the EWS ingest endpoint that
// ewsposter posts to, PEBA's health check and PEBA's statistics endpoints
// (/alert/*, reference peba.md §3, §7) over peba.Stats, behind a response
// cache. Wire formats follow PEBA 1.x
// exactly where clients parse them (reference peba.md §2.1, §4.1); every
// deliberate deviation is listed in docs/compatibility.md.
package pebaapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/cache"
	"github.com/peba-go/peba/ews"
	"github.com/peba-go/peba/logutil"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is the part of the service configuration this API uses.
type Config struct {
	MaxBodyBytes int64
	Decode       ews.Options
	// QueueWait is how long an EWS post waits for room in a full ingest
	// queue before it is answered 503 (QUEUEWAIT); 0 answers at once.
	QueueWait time.Duration

	MaxAlerts       int    // MAXALERTS: size of retrieveAlertsCyber and querySingleIP
	BadIPTimespan   int    // BADIPTIMESPAN: minutes of retrieveIPs
	CORSDomain      string // CORSDOMAIN: target of / and the allowed CORS origin of /alert/*
	DefaultResponse string // DEFAULTRESPONSE: PEBA's "Nope"

	// Cache holds rendered statistics answers; nil disables the cache and
	// its single-flight (every request queries the store).
	Cache cache.Cache
	// Limits are the ingest rate limits and block lists.
	Limits Limits
	// CacheHealth reports whether the shared response cache (memcached)
	// answers, for /alert/heartbeat; nil when the cache is in-process or
	// off, which cannot fail.
	CacheHealth func() error

	// Now is the clock of the statistics endpoints; time.Now if nil.
	Now func() time.Time
}

// Pinger reports store health (peba.Store implements it).
type Pinger interface {
	Ping(ctx context.Context) error
}

// API holds the dependencies of the PEBA routes.
type API struct {
	cfg        Config
	decodeOpts ews.Options
	auth       Authenticator
	ingest     Submitter
	store      Pinger
	stats      peba.Stats
	loader     *cache.Loader
	now        func() time.Time
	log        *slog.Logger
	rejectLog  *logutil.Throttled
	retryAfter int // seconds

	mPosts  *prometheus.CounterVec
	mAlerts *prometheus.CounterVec
	mBatch  prometheus.Histogram
}

// New returns the API. stats answers the statistics endpoints. reg
// receives its metrics (nil: none).
func New(cfg Config, authn Authenticator, sub Submitter, store Pinger, stats peba.Stats, log *slog.Logger, reg prometheus.Registerer) *API {
	a := &API{
		cfg: cfg, decodeOpts: cfg.Decode, auth: authn, ingest: sub, store: store, stats: stats, log: log,
		now:        cfg.Now,
		rejectLog:  logutil.NewThrottled(log, 20, time.Minute),
		retryAfter: 30,
		mPosts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "peba_ews_posts_total", Help: "EWS POSTs by result (ok, bad_request, too_large, unauthorized, blocked, rate_limited, unavailable, method).",
		}, []string{"result"}),
		mAlerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "peba_ews_alerts_total", Help: "Alerts in accepted EWS POSTs by result (accepted: journaled for storage; skipped: can never be stored).",
		}, []string{"result"}),
		mBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "peba_ews_batch_alerts", Help: "Alerts per accepted EWS POST.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
		}),
	}
	if a.now == nil {
		a.now = time.Now
	}
	if cfg.Cache != nil {
		cacheErrs := logutil.NewThrottled(log, 5, time.Minute)
		a.loader = cache.NewLoader(cfg.Cache, func(op string, err error) {
			cacheErrs.Warn(context.Background(), "Response cache failed", "op", op, "error", err)
		})
	}
	if reg != nil {
		reg.MustRegister(a.mPosts, a.mAlerts, a.mBatch)
	}
	return a
}

// Register mounts the routes on mux (paths and methods of peba.md §3, §12).
// Every answer carries Access-Control-Allow-Credentials: true, and /alert/*
// answers CORS for CORSDOMAIN (peba.md §2.6).
func (a *API) Register(mux *http.ServeMux) {
	h := func(pattern string, fn http.HandlerFunc) { mux.Handle(pattern, a.cors(fn)) }
	h("/ews-0.1/alert/postSimpleMessage", a.handlePostSimpleMessage)
	h("GET /heartbeat", a.handleHeartbeat)
	h("GET /alert/heartbeat", a.handleAlertHeartbeat)
	h("/{$}", a.handleRoot)

	ips := a.handleRetrieveIPs(func(a *API) int { return a.cfg.BadIPTimespan })
	ips15 := a.handleRetrieveIPs(func(*API) int { return 15 })
	h("POST /alert/retrieveIPs", ips)
	h("POST /ews-0.1/alert/retrieveIPs", ips)
	h("POST /alert/retrieveIPs15m", ips15)
	h("POST /ews-0.1/alert/retrieveIPs15m", ips15)
	h("POST /alert/retrieveAlertsCyber", a.handleAlertsCyber)
	h("POST /alert/querySingleIP", a.handleQuerySingleIP)
	h("GET /alert/retrieveAlertsCount", a.handleAlertsCount)
	h("GET /alert/retrieveAlertsCountWithType", a.handleCountWithType)
	h("GET /alert/retrieveAlertsJson", a.handleAlertsJSON)
	h("GET /alert/datasetAlertsPerMonth", a.handlePerMonth)
	h("GET /alert/datasetAlertTypesPerMonth", a.handleTypesPerMonth)
	h("GET /alert/retrieveAlertStats", a.handleAlertStats)
	h("GET /alert/topCountriesAttacks", a.handleTopCountries)
	h("GET /alert/retrieveLatLonAttacks", a.handleLatLon)
	h("GET /alert/TpotStats", a.handleTpotStats)
	h("GET /alert/getStats", a.handleGetStats)
	h("GET /alert/tops", a.handleTops)
	// flask_cors answered every preflight under /alert/.
	h("OPTIONS /alert/", func(w http.ResponseWriter, r *http.Request) {})
}

// cors adds PEBA's CORS headers (peba.md §2.6): credentials allowed on every
// answer; under /alert/ the Origin is echoed when it is CORSDOMAIN, and
// OPTIONS preflights are answered.
func (a *API) cors(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Credentials", "true")
		if len(r.URL.Path) > len("/alert/") && r.URL.Path[:len("/alert/")] == "/alert/" {
			h.Add("Vary", "Origin")
			if o := r.Header.Get("Origin"); o != "" && o == a.cfg.CORSDomain {
				h.Set("Access-Control-Allow-Origin", o)
				if r.Method == http.MethodOptions {
					h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS, POST")
					if rh := r.Header.Get("Access-Control-Request-Headers"); rh != "" {
						h.Set("Access-Control-Allow-Headers", rh)
					}
					h.Set("Access-Control-Max-Age", "86400")
				}
			}
		}
		next(w, r)
	})
}

// handleRoot is GET / (peba.md §3.1): a redirect to CORSDOMAIN.
func (a *API) handleRoot(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		http.Redirect(w, r, a.cfg.CORSDomain, http.StatusFound)
	case http.MethodOptions:
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
	default:
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
	}
}

// handleHeartbeat is PEBA's health check (peba.md §3.2): "I'm alive" when the
// store answers, 401 otherwise (PEBA's status code, kept for monitors that
// check it).
func (a *API) handleHeartbeat(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := a.store.Ping(ctx); err != nil {
		a.log.Warn("Heartbeat: store unavailable", "error", err)
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, "Unauthorized")
		return
	}
	io.WriteString(w, "I'm alive")
}

// Answers of /alert/heartbeat, early PEBA's vocabulary (issue 7; peba.md
// B-35): "m" stood for memcached and "e" for Elasticsearch.
const (
	beatAll      = "me"       // store and shared cache healthy
	beatCache    = "m"        // only the cache is healthy: the store is down
	beatStore    = "e"        // only the store is healthy: memcached is down
	beatFlatline = "flatline" // nothing healthy
)

// handleAlertHeartbeat is GET /alert/heartbeat, the path PEBA's READMEs
// document (its code only had /heartbeat). "e" maps to the store
// (Elasticsearch's role) and "m" to the shared response cache (memcached;
// an in-process cache, or none, cannot fail and counts as healthy). The
// body is the state; the status is 200 only for "me", 503 otherwise, so a
// plain HTTP monitor alarms on any degradation. Never cached.
func (a *API) handleAlertHeartbeat(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	storeErr := a.store.Ping(ctx)
	var cacheErr error
	if a.cfg.CacheHealth != nil {
		cacheErr = a.cfg.CacheHealth()
	}
	state := beatAll
	switch {
	case storeErr != nil && cacheErr != nil:
		state = beatFlatline
	case storeErr != nil:
		state = beatCache
	case cacheErr != nil:
		state = beatStore
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if state != beatAll {
		a.rejectLog.Warn(ctx, "Heartbeat: backend unavailable", "state", state, "store_error", errText(storeErr), "cache_error", errText(cacheErr))
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	io.WriteString(w, state)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
