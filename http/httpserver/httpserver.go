// Package httpserver builds the service's HTTP server: timeouts, panic
// recovery, security headers, liveness/readiness and Prometheus metrics. The
// API surfaces (pebaapi, ...) register their own routes on the mux.
package httpserver

import (
	"context"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Pinger reports whether the store can serve requests.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Server wraps http.Server with the service's middleware.
type Server struct {
	HTTP     *http.Server
	Mux      *http.ServeMux
	draining atomic.Bool
	log      *slog.Logger
}

// New returns a server for addr. gatherer is exposed at /metrics.
func New(addr string, store Pinger, gatherer prometheus.Gatherer, log *slog.Logger) *Server {
	s := &Server{Mux: http.NewServeMux(), log: log}
	s.Mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Write([]byte("ok\n"))
	})
	s.Mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if s.draining.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		if err := store.Ping(ctx); err != nil {
			log.Warn("Readiness: store unavailable", "error", err)
			http.Error(w, "store unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	s.Mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	s.HTTP = &http.Server{
		Addr:              addr,
		Handler:           s.middleware(s.Mux),
		ReadHeaderTimeout: 5 * time.Second,
		// ewsposter's own timeout is 60 s; a large body on a slow uplink
		// must fit in ReadTimeout.
		ReadTimeout:    60 * time.Second,
		WriteTimeout:   60 * time.Second,
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s
}

// SetDraining makes /readyz fail so that load balancers stop sending
// requests before shutdown.
func (s *Server) SetDraining() { s.draining.Store(true) }

func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("Panic in handler", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		start := time.Now()
		next.ServeHTTP(w, r)
		if s.log.Enabled(r.Context(), slog.LevelDebug) {
			s.log.Debug("Request", "method", r.Method, "path", r.URL.Path, "client_ip", r.RemoteAddr, "duration", time.Since(start))
		}
	})
}
