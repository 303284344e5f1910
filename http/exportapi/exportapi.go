// Package exportapi serves the data-export API under /api/v1 (issue 6):
// IP blocklists in plain text, CSV and JSON, event search with keyset
// paging, an NDJSON event export for SIEM ingestion, and the OpenAPI
// document of every /api/v1 route. See docs/api.md.
//
// Callers authenticate with "Authorization: Bearer user:token" (or Basic),
// the credentials of the PEBA API, checked by package auth. Without a
// header a caller is anonymous. The entitlement rule is the PEBA API's ci
// rule (auth.Principal.MayReadPrivate): only a registered user who is not
// community-only may ask for private data; everyone else gets community
// data, and events in the sanitized view the live feed gives anonymous
// viewers.
package exportapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/auth"
	"github.com/peba-go/peba/cache"
)

// Authenticator checks credentials (*auth.Authenticator implements it).
type Authenticator interface {
	Authenticate(ctx context.Context, user, token string) (auth.Principal, error)
}

// EventFinder searches events (peba.Store implements it).
type EventFinder interface {
	FindEvents(ctx context.Context, f peba.EventFilter) ([]peba.Event, int64, error)
}

// Options are the API's dependencies and limits.
type Options struct {
	Auth    Authenticator     // required
	Sources peba.SourceLister // required: blocklists
	Events  EventFinder       // required: search and export

	// MaxWindow bounds a blocklist window and the time range of a search
	// or export (DefaultMaxWindow if zero). Set it to the retention: older
	// events are gone anyway.
	MaxWindow time.Duration
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// Logger receives store failures; slog.Default() if nil.
	Logger *slog.Logger
	// Cache, if not nil, keeps computed blocklists for BlocklistCacheTTL
	// (the service's response cache: in-process or memcached), with
	// single-flight: a burst of identical requests costs one query.
	Cache cache.Cache
}

// Limits of the API.
const (
	DefaultMaxWindow = 90 * 24 * time.Hour // RETENTIONDAYS' default
	// MaxBlocklist is the most addresses one blocklist lists (and its
	// default limit): a few tens of MB of text at most.
	MaxBlocklist = 1_000_000
	// DefaultEvents and MaxEvents are the page sizes of event search.
	DefaultEvents = 100
	MaxEvents     = 1000
	// exportPage is how many events the NDJSON export reads per query and
	// writes (and flushes) at a time.
	exportPage = 5000
	// maxParamLen bounds free-text parameters (type, sensor).
	maxParamLen = 256
)

// API serves the routes. Create it with New.
type API struct {
	opt    Options
	log    *slog.Logger
	now    func() time.Time
	loader *cache.Loader // nil without Options.Cache
}

// New returns the API.
func New(opt Options) *API {
	if opt.MaxWindow <= 0 {
		opt.MaxWindow = DefaultMaxWindow
	}
	a := &API{opt: opt, log: opt.Logger, now: opt.Now}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.now == nil {
		a.now = time.Now
	}
	if opt.Cache != nil {
		a.loader = cache.NewLoader(opt.Cache, func(op string, err error) {
			a.log.Warn("Export API: response cache failed", "op", op, "error", err)
		})
	}
	return a
}

// route is one registered route. The OpenAPI document must describe each
// (TestOpenAPIDescribesEveryRoute).
type route struct {
	method, path string
	handler      func(*API) http.HandlerFunc
}

var routes = []route{
	{"GET", "/api/v1/blocklist", func(a *API) http.HandlerFunc { return a.blocklist("") }},
	{"GET", "/api/v1/blocklist.txt", func(a *API) http.HandlerFunc { return a.blocklist("txt") }},
	{"GET", "/api/v1/blocklist.csv", func(a *API) http.HandlerFunc { return a.blocklist("csv") }},
	{"GET", "/api/v1/blocklist.json", func(a *API) http.HandlerFunc { return a.blocklist("json") }},
	{"GET", "/api/v1/events", func(a *API) http.HandlerFunc { return a.searchEvents }},
	{"GET", "/api/v1/events/export", func(a *API) http.HandlerFunc { return a.exportEvents }},
	{"GET", "/api/v1/openapi.json", func(a *API) http.HandlerFunc { return serveOpenAPI }},
}

// Register mounts the routes on mux, and a JSON 404 for other /api/v1
// paths (more specific patterns, such as the live feed's
// /api/v1/events/stream, still win).
func (a *API) Register(mux *http.ServeMux) {
	for _, r := range routes {
		mux.HandleFunc(r.method+" "+r.path, r.handler(a))
	}
	mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path+" (see /api/v1/openapi.json)")
	})
}

// caller is who is asking.
type caller struct {
	authenticated bool
	// private: may read private data and unsanitized events.
	private bool
}

// errUnauthorized: credentials were sent and are wrong.
var errUnauthorized = peba.Errorf(peba.EUNAUTHORIZED, "invalid credentials (expected Authorization: Bearer <user>:<token>)")

// identify authenticates the Authorization header. No header is an
// anonymous caller; a header that does not authenticate is an error (a
// client that tried to log in must learn that it failed), never a silent
// anonymous answer.
func (a *API) identify(r *http.Request) (caller, error) {
	cred, present, ok := auth.ParseAuthorization(r.Header.Get("Authorization"))
	if !present {
		return caller{}, nil
	}
	if !ok {
		return caller{}, errUnauthorized
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	p, err := a.opt.Auth.Authenticate(ctx, cred.User, cred.Token)
	if err != nil {
		if peba.ErrorCode(err) == peba.EUNAUTHORIZED {
			return caller{}, errUnauthorized
		}
		return caller{}, err
	}
	return caller{authenticated: true, private: p.MayReadPrivate()}, nil
}

// domains resolves the domain parameter ("community", the default;
// "private"; "all") for c. Asking for private data without entitlement is
// an error, never a silently smaller answer: a blocklist that quietly
// lacks the private addresses would look complete.
func (c caller) domains(v string) ([]peba.Domain, error) {
	var ds []peba.Domain
	switch v {
	case "", "community":
		return []peba.Domain{peba.DomainCommunity}, nil
	case "private":
		ds = []peba.Domain{peba.DomainPrivate}
	case "all":
		ds = []peba.Domain{peba.DomainCommunity, peba.DomainPrivate}
	default:
		return nil, invalid("domain", "must be community, private or all")
	}
	switch {
	case c.private:
		return ds, nil
	case !c.authenticated:
		return nil, peba.Errorf(peba.EUNAUTHORIZED, "domain=%s needs the token of a user entitled to private data", v)
	default:
		return nil, peba.Errorf(errForbidden, "domain=%s: this user may read community data only", v)
	}
}

// errForbidden is the code of an authenticated caller asking for more than
// it may see (403).
const errForbidden = "forbidden"

// invalid is a 400 naming the parameter.
func invalid(param, msg string) error {
	return peba.Errorf(peba.EINVALID, "invalid parameter %s: %s", param, msg)
}

// errorBody is every error answer: {"error": message}.
type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Del("ETag")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorBody{Error: msg})
}

// fail answers err: its peba code gives the status; anything that is not
// the caller's fault is a 503 with Retry-After, logged, with a generic
// message (details stay in the log).
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch peba.ErrorCode(err) {
	case peba.EINVALID:
		writeError(w, http.StatusBadRequest, peba.ErrorMessage(err))
	case peba.EUNAUTHORIZED:
		w.Header().Set("WWW-Authenticate", `Bearer realm="peba"`)
		writeError(w, http.StatusUnauthorized, peba.ErrorMessage(err))
	case errForbidden:
		writeError(w, http.StatusForbidden, peba.ErrorMessage(err))
	default:
		if !errors.Is(err, context.Canceled) {
			a.log.Warn("Export API: cannot answer", "path", r.URL.Path, "error", err)
		}
		w.Header().Set("Retry-After", "30")
		writeError(w, http.StatusServiceUnavailable, "the store is unavailable; retry later")
	}
}
