// Package pebaapi serves PEBA's HTTP interface: the EWS ingest endpoint that
// ewsposter posts to, and PEBA's health check. Wire formats follow PEBA 1.x
// exactly where clients parse them (reference peba.md §2.1, §4.1); every
// deliberate deviation is listed in docs/compatibility.md.
package pebaapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/peba-go/peba/ews"
	"github.com/peba-go/peba/logutil"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is the part of the service configuration this API uses.
type Config struct {
	MaxBodyBytes int64
	Decode       ews.Options
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
	log        *slog.Logger
	rejectLog  *logutil.Throttled
	retryAfter int // seconds

	mPosts  *prometheus.CounterVec
	mAlerts *prometheus.CounterVec
	mBatch  prometheus.Histogram
}

// New returns the API. reg receives its metrics (nil: none).
func New(cfg Config, authn Authenticator, sub Submitter, store Pinger, log *slog.Logger, reg prometheus.Registerer) *API {
	a := &API{
		cfg: cfg, decodeOpts: cfg.Decode, auth: authn, ingest: sub, store: store, log: log,
		rejectLog:  logutil.NewThrottled(log, 20, time.Minute),
		retryAfter: 30,
		mPosts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "peba_ews_posts_total", Help: "EWS POSTs by result (ok, bad_request, too_large, unauthorized, unavailable, method).",
		}, []string{"result"}),
		mAlerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "peba_ews_alerts_total", Help: "Alerts in accepted EWS POSTs by result (inserted, duplicate, skipped).",
		}, []string{"result"}),
		mBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "peba_ews_batch_alerts", Help: "Alerts per accepted EWS POST.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
		}),
	}
	if reg != nil {
		reg.MustRegister(a.mPosts, a.mAlerts, a.mBatch)
	}
	return a
}

// Register mounts the routes on mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("/ews-0.1/alert/postSimpleMessage", a.handlePostSimpleMessage)
	mux.HandleFunc("GET /heartbeat", a.handleHeartbeat)
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
