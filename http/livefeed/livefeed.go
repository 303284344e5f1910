// Package livefeed serves the live attack feed from a hub.Hub: Socket.IO
// protocol 5 over Engine.IO 4 at /socket.io/ (seckc.md §4, for JS clients
// 3.x and 4.x) and Server-Sent Events at GET /api/v1/events/stream. Both
// send entitled viewers every event and everyone else sanitized community
// events only (docs/livefeed.md).
package livefeed

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/auth"
	"github.com/peba-go/peba/http/feedpayload"
	"github.com/peba-go/peba/hub"
	"github.com/prometheus/client_golang/prometheus"
	engine "github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// Authenticator checks a user's token (auth.Authenticator implements it).
type Authenticator interface {
	Authenticate(ctx context.Context, user, token string) (auth.Principal, error)
}

// Rooms of the Socket.IO namespace "/" (seckc.md §4.3).
const (
	RoomActive = "activeUsers" // entitled viewers: every event, unsanitized
	RoomAnon   = "anonUsers"   // everyone else: community events, sanitized
)

// Options configure a Server.
type Options struct {
	Hub *hub.Hub // required
	// Auth checks credentials; nil makes every viewer anonymous.
	Auth Authenticator
	// Sanitize tunes the anonymous payload (credentials, peerIdent).
	Sanitize feedpayload.SanitizeOptions
	// Heartbeat is the SSE comment interval, 15 s if zero. It keeps proxies
	// from closing an idle stream.
	Heartbeat time.Duration
	// Registerer receives the feed's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// WriteBudget bounds how often the feed writes to its viewers, in
	// writes per second across all of them: after a write of events a
	// viewer waits viewers/WriteBudget seconds before the next, which
	// takes everything published meanwhile (Server.writeGap). 0 means
	// DefaultWriteBudget; negative writes every batch at once.
	WriteBudget int
}

// DefaultWriteBudget is Options.WriteBudget's default. With up to 500
// viewers every batch of a 10 ms commit tick is written at once; with
// 1,000 the gap is 20 ms and every other batch waits for the next: a
// quarter less CPU per delivery on the server, and a shorter tail at 1,000
// viewers × 5,000 events/s on 2 cores (docs/performance.md, "Live feed").
const DefaultWriteBudget = 50000

// Server serves the live feed. Create it with New, mount it with Register,
// stop it with Close.
type Server struct {
	hub       *hub.Hub
	auth      Authenticator
	sanitize  feedpayload.SanitizeOptions
	heartbeat time.Duration
	log       *slog.Logger

	io      *socket.Server
	handler http.Handler
	joins   chan *sioViewer
	done    chan struct{}
	stopped chan struct{}
	closeMu sync.Once

	full, anon *encodedCache // payloads per audience

	budget  int          // Options.WriteBudget; 0: no pacing
	viewers atomic.Int64 // connected viewers, both transports

	mInjected prometheus.Counter
	mConns    *prometheus.GaugeVec
	mAuthFail prometheus.Counter
}

// New returns a Server and starts its Socket.IO broadcaster.
func New(opt Options) *Server {
	s := &Server{
		hub:       opt.Hub,
		auth:      opt.Auth,
		sanitize:  opt.Sanitize,
		heartbeat: opt.Heartbeat,
		log:       opt.Logger,
		budget:    opt.WriteBudget,
		joins:     make(chan *sioViewer, 256),
		done:      make(chan struct{}),
		stopped:   make(chan struct{}),
		mInjected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "peba_livefeed_client_events_ignored_total",
			Help: "hpfeedevent messages sent by Socket.IO clients and ignored (SecKC re-broadcast them, seckc.md §4.5).",
		}),
		mConns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "peba_livefeed_connections", Help: "Open live feed connections by transport (socketio, sse).",
		}, []string{"transport"}),
		mAuthFail: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "peba_livefeed_auth_failures_total", Help: "Live feed connections refused for invalid credentials.",
		}),
	}
	s.full = newEncodedCache(func(ev *peba.Event) []byte { return appendJSON(feedpayload.NewPayload(ev)) })
	s.anon = newEncodedCache(func(ev *peba.Event) []byte {
		return appendJSON(feedpayload.Sanitize(feedpayload.NewPayload(ev), s.sanitize))
	})
	switch {
	case s.budget == 0:
		s.budget = DefaultWriteBudget
	case s.budget < 0:
		s.budget = 0
	}
	if s.heartbeat <= 0 {
		s.heartbeat = 15 * time.Second
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if opt.Registerer != nil {
		opt.Registerer.MustRegister(s.mInjected, s.mConns, s.mAuthFail)
	}

	o := socket.DefaultServerOptions()
	// seckc.md §4.1: 25 s ping interval, 20 s timeout. Clients send nothing
	// we use, so their packets are capped far below SecKC's 1 MB.
	o.SetPingInterval(25 * time.Second)
	o.SetPingTimeout(20 * time.Second)
	o.SetMaxHttpBufferSize(64 << 10)
	o.SetServeClient(false)
	// Any origin may watch (seckc.md §2.3); auth is a token in the
	// handshake, never a cookie, so no credentials mode is needed.
	o.SetCors(&types.Cors{Origin: "*"})
	// The library's transports, with the websocket sending synchronously
	// (wstransport.go), which the broadcaster's direct writes rely on.
	o.SetTransports(types.NewSet[engine.TransportCtor](engine.Polling, &wsTransportCtor{}))
	s.io = socket.NewServer(nil, o)
	sio := s.io.ServeHandler(nil)
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isWebSocketUpgrade(r) {
			// The websocket writes through a wsConn; a new connection's
			// reads wait for the Socket.IO layer (wsConn.gate).
			w = &wsHijacker{ResponseWriter: w, gated: r.URL.Query().Get("sid") == "", pace: s.writeGap}
		}
		sio.ServeHTTP(w, r)
	})
	// Registered after the Socket.IO server's own listener (ServeHandler
	// binds it), so this runs once the socket's data handler is attached.
	_ = s.io.Engine().On("connection", func(args ...any) {
		if len(args) > 0 {
			releaseReads(args[0])
		}
	})
	s.io.Use(s.authenticateSocket)
	_ = s.io.On("connection", func(args ...any) {
		sock, ok := args[0].(*socket.Socket)
		if !ok {
			return
		}
		v, _ := sock.Data().(viewer)
		sv := &sioViewer{sock: sock, entitled: v.entitled}
		s.mConns.WithLabelValues("socketio").Inc()
		s.viewers.Add(1)
		_ = sock.On("disconnect", func(...any) {
			sv.gone.Store(true)
			s.viewers.Add(-1)
			s.mConns.WithLabelValues("socketio").Dec()
		})
		// seckc.md §4.5: SecKC re-broadcast client-sent events to every
		// viewer. We count and drop them.
		_ = sock.On("hpfeedevent", func(...any) { s.mInjected.Inc() })
		// Never block the library's goroutine: it may hold locks the
		// broadcaster needs.
		select {
		case s.joins <- sv:
		default:
			go func() {
				select {
				case s.joins <- sv:
				case <-s.done:
				}
			}()
		}
	})

	size, age := s.hub.ReplayLimits()
	go s.broadcast(size, age)
	return s
}

// jsonScratch holds buffers for encoding payloads: the payload is then
// copied once at its size, instead of growing a slice from nothing (whose
// outgrown copies, about three times the payload, are garbage at once).
var jsonScratch = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// appendJSON returns p's JSON in a slice of its own size.
func appendJSON(p feedpayload.Payload) []byte {
	bp := jsonScratch.Get().(*[]byte)
	b := p.AppendJSON((*bp)[:0])
	out := bytes.Clone(b)
	if cap(b) <= 64<<10 {
		*bp = b
		jsonScratch.Put(bp)
	}
	return out
}

// Register mounts /socket.io/ and GET /api/v1/events/stream on mux.
func (s *Server) Register(mux *http.ServeMux) {
	mux.Handle("/socket.io/", s.handler)
	mux.HandleFunc("GET /api/v1/events/stream", s.stream)
}

// Close disconnects every Socket.IO client, stops the broadcaster and ends
// the SSE streams (which also end when the hub is closed). SSE connections
// on HTTP/1.1 are taken over from net/http, so http.Server.Shutdown does
// not wait for them.
func (s *Server) Close() {
	s.closeMu.Do(func() {
		close(s.done)
		<-s.stopped
		s.io.Close(nil)
	})
}

// writeGap is how long a viewer waits after a write of events before the
// next (0: not at all): the viewers share the write budget. Every write
// costs a system call and, on the receiving side, a wake-up, whatever its
// size: on loopback about as much as the bytes of a few tens of events
// (docs/performance.md, "Live feed"). A viewer that has not been written
// to for the gap is written to at once.
func (s *Server) writeGap() time.Duration {
	if s.budget == 0 {
		return 0
	}
	gap := time.Duration(s.viewers.Load()) * time.Second / time.Duration(s.budget)
	if gap < minWriteGap {
		return 0 // not worth a timer
	}
	return gap
}

// minWriteGap is the shortest gap writeGap enforces.
const minWriteGap = time.Millisecond

// viewer is what a connection may see.
type viewer struct {
	entitled bool
}

func (v viewer) filter() hub.Filter {
	if v.entitled {
		return hub.Filter{Domains: []peba.Domain{peba.DomainCommunity, peba.DomainPrivate}}
	}
	return hub.Filter{Domains: []peba.Domain{peba.DomainCommunity}}
}

// identify turns presented credentials (auth.ParseAuthorization's results)
// into a viewer. No credentials give an anonymous viewer; wrong or
// malformed ones an EUNAUTHORIZED error (a client that tried to log in must
// learn that it failed, not silently see less).
func (s *Server) identify(ctx context.Context, c auth.Credentials, present, ok bool) (viewer, error) {
	if !present {
		return viewer{}, nil
	}
	if !ok || s.auth == nil {
		s.mAuthFail.Inc()
		return viewer{}, peba.Errorf(peba.EUNAUTHORIZED, "invalid credentials")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := s.auth.Authenticate(ctx, c.User, c.Token)
	if err != nil {
		if peba.ErrorCode(err) == peba.EUNAUTHORIZED {
			s.mAuthFail.Inc()
		} else {
			s.log.Warn("Live feed: cannot authenticate", "error", err)
		}
		return viewer{}, err
	}
	// Only private-domain users not restricted to community data may see
	// private events (peba.User.CommunityOnly, B-6).
	return viewer{entitled: p.Domain == peba.DomainPrivate && (p.User == nil || !p.User.CommunityOnly)}, nil
}

// tokenCredentials reads the "user:token" of a Socket.IO handshake's auth
// payload, with the results of auth.ParseAuthorization.
func tokenCredentials(t string) (c auth.Credentials, present, ok bool) {
	if t == "" {
		return auth.Credentials{}, false, false
	}
	user, token, found := strings.Cut(t, ":")
	if !found || user == "" || token == "" {
		return auth.Credentials{}, true, false
	}
	return auth.Credentials{User: user, Token: token}, true, true
}

// authenticateSocket is the namespace middleware: credentials come from the
// handshake's auth payload {token: "user:token"} or the Authorization
// header of the Engine.IO handshake request.
func (s *Server) authenticateSocket(sock *socket.Socket, next func(*socket.ExtendedError)) {
	token := ""
	if hs := sock.Handshake(); hs != nil {
		token, _ = hs.Auth["token"].(string)
	}
	c, present, ok := tokenCredentials(token)
	if !present {
		c, present, ok = auth.ParseAuthorization(sock.Request().Headers().Peek("Authorization"))
	}
	// Not the request's context: with polling, the handshake request that
	// sock.Request() describes has already been answered.
	v, err := s.identify(context.Background(), c, present, ok)
	if err != nil {
		next(socket.NewExtendedError(peba.ErrorMessage(err), nil))
		return
	}
	sock.SetData(v)
	next(nil)
}
