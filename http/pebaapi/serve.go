package pebaapi

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/peba-go/peba"
)

// PEBA 1.x's response cache TTLs (peba.md §2.5).
const (
	ttlAlertsCyber     = 1 * time.Second
	ttlSingleIP        = 60 * time.Second
	ttlAlertsCount     = 60 * time.Second
	ttlIPs             = 60 * time.Second
	ttlCountWithType   = 13 * time.Second
	ttlAlertsJSON      = 25 * time.Second
	ttlPerMonth        = 600 * time.Second
	ttlTypesPerMonth   = 3600 * time.Second
	ttlAlertStats      = 13 * time.Second
	ttlTopCountries    = 60 * time.Second
	ttlLatLon          = 60 * time.Second
	ttlTpotStatsPast   = 28 * 24 * time.Hour
	ttlGetStats        = 1800 * time.Second
	ttlTops            = 7200 * time.Second
	retryAfterSeconds  = "5"
	statsQueryDeadline = 20 * time.Second
)

// fillFunc computes an answer and how long it may be cached (0: not at all).
type fillFunc func(ctx context.Context) (response, time.Duration, error)

// access authenticates r for a statistics endpoint and writes the refusal
// itself when it returns false: 403 for bad credentials (and for missing or
// community credentials when registered is required, peba.md §2.2), 503
// when the check cannot be made.
func (a *API) access(w http.ResponseWriter, r *http.Request, registered bool) (caller, bool) {
	c, err := a.authenticate(r, registered)
	switch {
	case err == nil:
		if registered && !c.registered {
			forbidden(w)
			return caller{}, false
		}
		return c, true
	case errors.Is(err, errNoCredentials):
		if registered {
			forbidden(w)
			return caller{}, false
		}
		return caller{}, true
	case errors.Is(err, errBadCredentials):
		forbidden(w)
		return caller{}, false
	}
	a.log.Error("Cannot authenticate reader", "path", r.URL.Path, "error", err)
	unavailable(w)
	return caller{}, false
}

// answer writes the answer for key, from the cache when it holds one, else
// computed by fill (once for concurrent identical requests). The key must
// name the endpoint, every parameter that shapes the answer in canonical
// form, and the data domains; never the Host header. restricted marks
// answers that must not be stored by shared HTTP caches (private data, or
// endpoints that require authentication).
func (a *API) answer(w http.ResponseWriter, r *http.Request, key string, ds []peba.Domain, restricted bool, fill fillFunc) {
	key += "|" + domainKey(ds)
	var (
		res response
		ttl time.Duration
		err error
	)
	if a.loader == nil {
		ctx, cancel := context.WithTimeout(r.Context(), statsQueryDeadline)
		res, ttl, err = fill(ctx)
		cancel()
	} else {
		var b []byte
		b, err = a.loader.Load(r.Context(), key, func(ctx context.Context) ([]byte, time.Duration, error) {
			res, ttl, err := fill(ctx)
			if err != nil {
				return nil, 0, err
			}
			return encodeCached(res, ttl), ttl, nil
		})
		if err == nil {
			var ok bool
			if res, ttl, ok = decodeCached(b); !ok {
				err = errors.New("cannot decode cached answer")
			}
		}
	}
	if err != nil {
		if r.Context().Err() == nil {
			a.log.Error("Cannot answer statistics request", "path", r.URL.Path, "error", err)
		}
		unavailable(w)
		return
	}
	h := w.Header()
	switch {
	case ttl <= 0:
		h.Set("Cache-Control", "no-cache")
	case restricted || hasPrivate(ds):
		h.Set("Cache-Control", "private, max-age="+strconv.Itoa(int(ttl/time.Second)))
	default:
		h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(ttl/time.Second)))
	}
	// The answer depends on who asks (ci is narrowed to what the caller may
	// see), so a shared cache must not serve one caller's answer to another.
	h.Add("Vary", "Authorization")
	a.write(w, res)
}

// reply writes an answer that is not cached (validation failures: cheap,
// and PEBA's "Nope" answers).
func (a *API) reply(w http.ResponseWriter, res response) {
	w.Header().Set("Cache-Control", "no-cache")
	a.write(w, res)
}

func (a *API) write(w http.ResponseWriter, res response) {
	w.Header().Set("Content-Type", res.ctype)
	w.Header().Set("Content-Length", strconv.Itoa(len(res.body)))
	w.WriteHeader(http.StatusOK)
	w.Write(res.body)
}

// encodeCached stores the TTL with the answer so a cache hit sends the same
// Cache-Control as the miss that filled it.
func encodeCached(res response, ttl time.Duration) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(ttl/time.Second))
	return append(b, res.encode()...)
}

func decodeCached(b []byte) (response, time.Duration, bool) {
	if len(b) < 4 {
		return response{}, 0, false
	}
	ttl := time.Duration(binary.BigEndian.Uint32(b)) * time.Second
	res, ok := decodeResponse(b[4:])
	return res, ttl, ok
}

// forbidden is PEBA's abort(403) (peba.md §2.2); clients rely on the status.
func forbidden(w http.ResponseWriter) {
	w.Header().Set("Content-Type", ctHTML)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusForbidden)
	io.WriteString(w, "Forbidden")
}

// unavailable answers a store failure: PEBA answered "Nope" or an empty
// result with 200 (and cached it); a 503 tells clients and caches the truth.
func unavailable(w http.ResponseWriter) {
	w.Header().Set("Content-Type", ctHTML)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Retry-After", retryAfterSeconds)
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, "Service Unavailable")
}
