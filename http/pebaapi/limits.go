package pebaapi

import (
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/http/clientip"
	"github.com/peba-go/peba/ratelimit"
)

// Limits are the ingest abuse limits (issue 7): the community credentials
// are public, so anyone can post into the community domain. The zero value
// limits and blocks nothing.
type Limits struct {
	// Alerts per second per source address (IPv6: per /64), per user and
	// per sensor (user + peerIdent); nil limiters are off. A refused batch
	// is answered 429 with Retry-After and a Result body: ewsposter spools
	// it and resends it on its next loops, up to 10 times (ewsposter.md
	// §3.4), so nothing is lost while the limit clears within that.
	PerAddress, PerUser, PerSensor *ratelimit.Limiter
	// Blocked holds usernames and sensor idents (peerIdent) whose batches
	// are refused with 403 (BLOCKSENSORS).
	Blocked map[string]bool
	// BlockedAddresses are source prefixes refused with 403 before the body
	// is read (BLOCKADDRESSES).
	BlockedAddresses []netip.Prefix
	// ClientIP finds the source address behind trusted proxies
	// (TRUSTEDPROXIES); nil: the peer address.
	ClientIP *clientip.Resolver
}

// charge takes n alerts from every limiter that applies to the batch. On
// refusal it refunds what it took and returns the wait and which limit
// refused; a batch is admitted whole or not at all.
func (l *Limits) charge(addr, user string, events []peba.Event) (time.Duration, string) {
	type taken struct {
		lim *ratelimit.Limiter
		key string
		n   int
	}
	var done []taken
	take := func(lim *ratelimit.Limiter, key string, n int) time.Duration {
		if w := lim.Take(key, n); w > 0 {
			for _, t := range done {
				t.lim.Refund(t.key, t.n)
			}
			return w
		}
		done = append(done, taken{lim, key, n})
		return 0
	}
	n := len(events)
	if w := take(l.PerAddress, addr, n); w > 0 {
		return w, "source address"
	}
	if w := take(l.PerUser, user, n); w > 0 {
		return w, "user"
	}
	if l.PerSensor != nil {
		per := map[string]int{}
		for i := range events {
			per[events[i].PeerIdent]++
		}
		for ident, k := range per {
			// The NUL separator cannot occur in a decoded XML name.
			if w := take(l.PerSensor, user+"\x00"+ident, k); w > 0 {
				return w, "sensor " + clip(ident)
			}
		}
	}
	return 0, ""
}

// blockedSensor returns the first blocked sensor ident of events, if any.
func (l *Limits) blockedSensor(events []peba.Event) (string, bool) {
	if len(l.Blocked) == 0 {
		return "", false
	}
	for i := range events {
		if l.Blocked[events[i].PeerIdent] {
			return events[i].PeerIdent, true
		}
	}
	return "", false
}

// tooMany answers a rate-limited batch: 429, Retry-After in whole seconds
// (at least 1), and a Result body ewsposter can read.
func (a *API) tooMany(w http.ResponseWriter, r *http.Request, wait time.Duration, what string, src rejectSource) {
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(max(1, secs)))
	a.reject(w, r, http.StatusTooManyRequests, "rate_limited", "rate limit exceeded for this "+what+"; retry after "+strconv.Itoa(max(1, secs))+" s", src)
}
