// Package seckcapi serves the REST endpoints of the SecKC MHN Dashboard API
// (reference seckc.md §3) from this service's own data: the stored events
// (peba.Stats, peba.Store), the GeoIP databases and the live feed hub,
// instead of a CHN server and MongoDB. JSON shapes follow seckc.md §3 and
// §10 (sorted keys, compact, ASCII only, a trailing newline); SecKC's leaks
// and its 500s for bad input are not repeated. The endpoints and every
// deviation are listed in docs/seckc.md.
package seckcapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/auth"
	"github.com/peba-go/peba/hpfeeds"
	"github.com/peba-go/peba/http/feedpayload"
	"github.com/peba-go/peba/hub"
	"github.com/peba-go/peba/logutil"
)

// DefaultSensorWindow is how far back /sensors/locations looks for sensors
// when Options.SensorWindow is zero.
const DefaultSensorWindow = 7 * 24 * time.Hour

// Authenticator checks a user's token (auth.Authenticator implements it).
type Authenticator interface {
	Authenticate(ctx context.Context, user, token string) (auth.Principal, error)
}

// EventFinder finds stored events (peba.Store implements it).
type EventFinder interface {
	FindEvents(ctx context.Context, f peba.EventFilter) ([]peba.Event, int64, error)
}

// Geocoder returns raw GeoIP2 City records (geoip.DB implements it). Its
// errors carry peba codes: EUNAVAILABLE without a database, ENOTFOUND for
// an address without data.
type Geocoder interface {
	LookupCity(ip netip.Addr) (map[string]any, netip.Prefix, error)
}

// Options are the dependencies and settings of the API. Hub, Stats and
// Events are required.
type Options struct {
	Auth   Authenticator // nil: every caller is anonymous, credentials are refused
	Stats  peba.Stats
	Events EventFinder
	Geo    Geocoder // nil: /geocode answers 503
	Hub    *hub.Hub
	// Hpfeeds returns the hpfeeds client's broker states for /feeds/status;
	// nil when no hpfeeds broker is configured.
	Hpfeeds func() []hpfeeds.BrokerState
	// Sanitize tunes the anonymous view of /feeds/events/recent; it should
	// be the live feed's, so both feeds hide the same fields.
	Sanitize feedpayload.SanitizeOptions
	// SensorWindow is how far back /sensors/locations looks;
	// DefaultSensorWindow if zero.
	SensorWindow time.Duration
	Now          func() time.Time // time.Now if nil
	Logger       *slog.Logger
}

// API serves the SecKC endpoints. Create it with New and mount it with
// Register.
type API struct {
	opt    Options
	now    func() time.Time
	log    *slog.Logger
	errLog *logutil.Throttled
}

// New returns the API.
func New(opt Options) *API {
	a := &API{opt: opt, now: opt.Now, log: opt.Logger}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.opt.SensorWindow <= 0 {
		a.opt.SensorWindow = DefaultSensorWindow
	}
	a.errLog = logutil.NewThrottled(a.log, 20, time.Minute)
	return a
}

// Register mounts the endpoints of seckc.md §3 on mux, and JSON 404s for
// every other path under their prefixes (SecKC answered an HTML page).
func (a *API) Register(mux *http.ServeMux) {
	routes := map[string]handler{
		"/auth/me":             a.handleAuthMe,
		"/sensors/locations":   a.handleSensors,
		"/stats/attacks":       a.handleAttacks,
		"/stats/attackers":     a.handleAttackers,
		"/stats/attacker/{ip}": a.handleAttacker,
		"/geocode/{ip}":        a.handleGeocode,
		"/feeds/events/recent": a.handleRecent,
		"/feeds/status":        a.handleStatus,
	}
	for pattern, h := range routes {
		mux.Handle(pattern, a.wrap(h))
	}
	for _, p := range []string{"auth", "sensors", "stats", "geocode", "feeds"} {
		// Without the exact pattern the mux would redirect /stats to /stats/.
		mux.Handle("/"+p, a.wrap(notFound))
		mux.Handle("/"+p+"/", a.wrap(notFound))
	}
}

// caller is who is asking.
type caller struct {
	principal *auth.Principal // nil for anonymous
	// entitled callers may see private data and unsanitized events: a
	// registered user who is not community-only, the PEBA API's rule (B-6).
	entitled bool
}

func (c caller) domains() []peba.Domain {
	if c.entitled {
		return []peba.Domain{peba.DomainCommunity, peba.DomainPrivate}
	}
	return []peba.Domain{peba.DomainCommunity}
}

func (c caller) filter() hub.Filter { return hub.Filter{Domains: c.domains()} }

// handler serves one endpoint for an identified caller. A returned error is
// rendered by wrap as {"error": message} with the status of its peba code.
type handler func(w http.ResponseWriter, r *http.Request, c caller) error

var (
	errNotFound      = peba.Errorf(peba.ENOTFOUND, "not found")
	errUnauthorized  = peba.Errorf(peba.EUNAUTHORIZED, "invalid credentials")
	errMethod        = peba.Errorf("method", "method not allowed")
	errUnavailable   = peba.Errorf(peba.EUNAVAILABLE, "service temporarily unavailable, retry later")
	allowedMethods   = "GET, HEAD, OPTIONS"
	corsAllowHeaders = []string{"Authorization", "Content-Type"}
)

func notFound(http.ResponseWriter, *http.Request, caller) error { return errNotFound }

// wrap adds SecKC's security headers and CORS (seckc.md §2.2, §2.3),
// answers OPTIONS and foreign methods, identifies the caller and renders
// errors.
func (a *API) wrap(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-XSS-Protection", "1; mode=block")
		// Answers depend on the credentials: no shared cache may keep them.
		hd.Set("Cache-Control", "no-store")
		hd.Set("Vary", "Origin, Authorization")
		if o := r.Header.Get("Origin"); o != "" {
			// Auth is an explicit header, never a cookie, so allowing any
			// origin gives a foreign page nothing it could not fetch itself.
			hd.Set("Access-Control-Allow-Origin", o)
		} else {
			hd.Set("Access-Control-Allow-Origin", "*")
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		case http.MethodOptions:
			hd.Set("Allow", allowedMethods)
			if r.Header.Get("Access-Control-Request-Method") != "" {
				hd.Set("Access-Control-Allow-Methods", allowedMethods)
				if ah := allowHeaders(r.Header.Values("Access-Control-Request-Headers")); ah != "" {
					hd.Set("Access-Control-Allow-Headers", ah)
				}
			}
			return
		default:
			hd.Set("Allow", allowedMethods)
			a.writeError(w, r, errMethod)
			return
		}
		c, err := a.identify(r)
		if err == nil {
			err = h(w, r, c)
		}
		if err != nil {
			a.writeError(w, r, err)
		}
	})
}

// allowHeaders is the requested headers we accept, in request spelling,
// sorted by code point (Flask-CORS, seckc.md §2.3; Cookie is not accepted:
// we do not use it).
func allowHeaders(req []string) string {
	var out []string
	for _, v := range req {
		for h := range strings.SplitSeq(v, ",") {
			h = strings.TrimSpace(h)
			for _, ok := range corsAllowHeaders {
				if strings.EqualFold(h, ok) && !slices.Contains(out, h) {
					out = append(out, h)
				}
			}
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// identify authenticates "Authorization: Bearer user:token" or Basic. No
// header gives an anonymous caller; a header that does not authenticate is
// an error (a client that tried to log in must learn that it failed, as
// the live feed does), never a silent anonymous answer.
func (a *API) identify(r *http.Request) (caller, error) {
	cred, present, ok := auth.ParseAuthorization(r.Header.Get("Authorization"))
	if !present {
		return caller{}, nil
	}
	if !ok || a.opt.Auth == nil {
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
	return caller{principal: &p, entitled: p.MayReadPrivate()}, nil
}

// writeError renders err as the envelope SecKC's README documents,
// {"code": status, "error": message, "timestamp": RFC 3339 UTC} (seckc.md
// §2.4: SecKC's code only ever wrote "error", so that key is kept for its
// clients; the other two are added). Internal errors (store failures) are
// logged and answered 503 with a generic message: the detail stays in the
// log, and the client learns to retry.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusServiceUnavailable
	msg := errUnavailable.Message
	switch peba.ErrorCode(err) {
	case peba.EINVALID:
		status, msg = http.StatusBadRequest, peba.ErrorMessage(err)
	case peba.ENOTFOUND:
		status, msg = http.StatusNotFound, peba.ErrorMessage(err)
	case peba.EUNAUTHORIZED:
		status, msg = http.StatusUnauthorized, peba.ErrorMessage(err)
		w.Header().Set("WWW-Authenticate", `Bearer realm="peba"`)
	case "method":
		status, msg = http.StatusMethodNotAllowed, peba.ErrorMessage(err)
	case peba.EUNAVAILABLE:
		msg = peba.ErrorMessage(err)
		w.Header().Set("Retry-After", "30")
	default:
		if !errors.Is(err, context.Canceled) {
			a.errLog.Warn(r.Context(), "SecKC API: cannot answer", "path", r.URL.Path, "error", err)
		}
		w.Header().Set("Retry-After", "30")
	}
	a.writeJSON(w, status, errorEnvelope{Code: status, Error: msg, Timestamp: a.now().UTC().Format(time.RFC3339)})
}

// errorEnvelope is an error answer; fields in sorted order (jsonify sorts keys).
type errorEnvelope struct {
	Code      int    `json:"code"`
	Error     string `json:"error"`
	Timestamp string `json:"timestamp"`
}

// writeJSON writes v as Flask's jsonify does (seckc.md §2.1): compact,
// sorted keys (maps are sorted by encoding/json; structs declare their
// fields in sorted order), '/', '<', '>', '&' unescaped, non-ASCII as
// \uXXXX, a trailing newline.
func (a *API) writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only a non-finite float can get here; none is produced on purpose.
		a.errLog.Warn(context.Background(), "SecKC API: cannot encode answer", "error", err)
		status = http.StatusServiceUnavailable
		buf.Reset()
		buf.WriteString(`{"code":503,"error":"` + errUnavailable.Message + `"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(asciiJSON(buf.Bytes()))
}

// asciiJSON rewrites every non-ASCII rune of encoding/json output as a
// \uXXXX escape (UTF-16 surrogate pairs beyond the BMP), Python's
// ensure_ascii. Non-ASCII bytes occur only inside strings, where the escape
// means the same character; encoding/json has already replaced invalid
// UTF-8 with U+FFFD.
func asciiJSON(b []byte) []byte {
	i := 0
	for i < len(b) && b[i] < utf8.RuneSelf {
		i++
	}
	if i == len(b) {
		return b
	}
	out := make([]byte, i, len(b)+len(b)/2)
	copy(out, b[:i])
	const hex = "0123456789abcdef"
	u := func(r rune) {
		out = append(out, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
	}
	for i < len(b) {
		if b[i] < utf8.RuneSelf {
			out = append(out, b[i])
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		i += n
		if r > 0xffff {
			r -= 0x10000
			u(0xd800 + (r>>10)&0x3ff)
			u(0xdc00 + r&0x3ff)
		} else {
			u(r)
		}
	}
	return out
}

// parseIP validates an address path segment (seckc.md §3.5, §3.6 passed it
// on unchecked). IPv4-mapped IPv6 is unmapped, as events store sources.
func parseIP(s string) (netip.Addr, error) {
	// The longest IPv6 text is 45 bytes; zones are not addresses of the
	// Internet.
	ip, err := netip.ParseAddr(s)
	if len(s) > 45 || err != nil || ip.Zone() != "" {
		return netip.Addr{}, peba.Errorf(peba.EINVALID, "invalid IP address")
	}
	return ip.Unmap(), nil
}

// intParam parses an optional integer query parameter in [lo, hi].
func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if len(s) > 10 || err != nil || n < lo || n > hi {
		return 0, peba.Errorf(peba.EINVALID, "%s must be an integer from %d to %d", name, lo, hi)
	}
	return n, nil
}

// epoch is t as float seconds with microseconds, SecKC's time.time().
func epoch(t time.Time) float64 { return float64(t.UnixMicro()) / 1e6 }
