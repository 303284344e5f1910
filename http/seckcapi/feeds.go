package seckcapi

import (
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/hpfeeds"
	"github.com/peba-go/peba/http/feedpayload"
)

// maxRecent is SecKC's cap on /feeds/events/recent (min(limit, 100),
// seckc.md §3.7); defaultRecent its default limit.
const (
	maxRecent     = 100
	defaultRecent = 50
)

type authMe struct {
	Active  bool     `json:"active"`
	Email   string   `json:"email"`
	Name    string   `json:"name"`
	Private bool     `json:"private"`
	Roles   []string `json:"roles"`
}

// handleAuthMe is GET /auth/me (seckc.md §3.1): {"active":false} for
// anonymous callers; for valid credentials CHN's fields (active, email,
// roles) plus name and private (may read private data). Roles: "community"
// for the community credentials, "user" for registered users.
func (a *API) handleAuthMe(w http.ResponseWriter, r *http.Request, c caller) error {
	if c.principal == nil {
		a.writeJSON(w, http.StatusOK, struct {
			Active bool `json:"active"`
		}{false})
		return nil
	}
	me := authMe{Active: true, Name: c.principal.Name, Private: c.entitled, Roles: []string{"community"}}
	if u := c.principal.User; u != nil {
		me.Email, me.Roles = u.Email, []string{"user"}
	}
	a.writeJSON(w, http.StatusOK, me)
	return nil
}

type recentEntry struct {
	CachedAt  string         `json:"cached_at"`
	Event     map[string]any `json:"event"`
	Timestamp float64        `json:"timestamp"`
}

type recentAnswer struct {
	Authenticated bool          `json:"authenticated"`
	Count         int           `json:"count"`
	Events        []recentEntry `json:"events"`
	ServerTime    float64       `json:"server_time"`
}

// handleRecent is GET /feeds/events/recent (seckc.md §3.7): the live feed's
// replay buffer, entitled callers every event as the Socket.IO activeUsers
// room gets it, everyone else community events sanitized as anonUsers gets
// them (feedpayload.NewPayload, feedpayload.Sanitize). "timestamp" is the
// receive time; entries are in receive-time order, so a client polling
// with since = the last timestamp misses nothing that is still buffered.
// Unlike SecKC, a since or limit that is not a number, a negative limit, or
// a non-finite since are 400 (SecKC silently used defaults or dropped the
// oldest events).
func (a *API) handleRecent(w http.ResponseWriter, r *http.Request, c caller) error {
	since := 0.0
	if s := r.URL.Query().Get("since"); s != "" {
		var err error
		since, err = strconv.ParseFloat(s, 64)
		if len(s) > 32 || err != nil || math.IsNaN(since) || math.IsInf(since, 0) {
			return peba.Errorf(peba.EINVALID, "since must be a number of seconds since 1970")
		}
	}
	limit, err := intParam(r, "limit", defaultRecent, 0, math.MaxInt32)
	if err != nil {
		return peba.Errorf(peba.EINVALID, "limit must be a non-negative integer")
	}
	if limit == 0 || limit > maxRecent {
		limit = maxRecent // SecKC: 0 means all, and all is at most 100
	}
	evs := a.opt.Hub.Recent(c.filter())
	slices.SortStableFunc(evs, func(x, y *peba.Event) int { return x.ReceivedTime.Compare(y.ReceivedTime) })
	out := recentAnswer{Authenticated: c.entitled, Events: []recentEntry{}, ServerTime: epoch(a.now())}
	for _, ev := range evs {
		ts := epoch(ev.ReceivedTime)
		if since != 0 && ts <= since {
			continue
		}
		p := feedpayload.NewPayload(ev)
		if !c.entitled {
			p = feedpayload.Sanitize(p, a.opt.Sanitize)
		}
		m := make(map[string]any, len(p))
		for _, f := range p {
			m[f.Key] = f.Value
		}
		out.Events = append(out.Events, recentEntry{
			CachedAt:  ev.ReceivedTime.UTC().Format("2006-01-02 15:04:05 UTC"),
			Event:     m,
			Timestamp: ts,
		})
	}
	if len(out.Events) > limit {
		out.Events = out.Events[len(out.Events)-limit:] // the newest, as SecKC
	}
	out.Count = len(out.Events)
	a.writeJSON(w, http.StatusOK, out)
	return nil
}

type brokerStatus struct {
	Addr          string   `json:"addr,omitempty"`
	Connects      *uint64  `json:"connects,omitempty"`
	Errors        *uint64  `json:"errors,omitempty"`
	Ident         string   `json:"ident,omitempty"`
	LastError     string   `json:"last_error,omitempty"`
	LastErrorTime *float64 `json:"last_error_time,omitempty"`
	LastMessage   *float64 `json:"last_message,omitempty"`
	Messages      uint64   `json:"messages"`
	Since         *float64 `json:"since,omitempty"`
	Status        string   `json:"status"`
}

type statusAnswer struct {
	CachedEvents     int            `json:"cached_events"`
	Hpfeeds          []brokerStatus `json:"hpfeeds,omitempty"`
	RetentionSeconds int64          `json:"retention_seconds"`
	ServerTime       float64        `json:"server_time"`
	Status           string         `json:"status"`
	ValidEvents      int            `json:"valid_events"`
}

// handleStatus is GET /feeds/status (seckc.md §3.8). Unlike SecKC's
// constant "active", status is truthful: "active" when no hpfeeds broker is
// configured (events arrive over HTTP) or at least one is connected,
// "disconnected" otherwise; "hpfeeds" lists each broker's state (addresses,
// idents and error texts for entitled callers only). The counts are of the
// events the caller may see.
func (a *API) handleStatus(w http.ResponseWriter, r *http.Request, c caller) error {
	_, age := a.opt.Hub.ReplayLimits()
	out := statusAnswer{
		CachedEvents:     a.opt.Hub.Buffered(c.filter()),
		ValidEvents:      len(a.opt.Hub.Recent(c.filter())),
		RetentionSeconds: int64(age.Seconds()),
		ServerTime:       epoch(a.now()),
		Status:           "active",
	}
	if a.opt.Hpfeeds != nil {
		connected := false
		for _, s := range a.opt.Hpfeeds() {
			connected = connected || s.Status == hpfeeds.StatusConnected
			out.Hpfeeds = append(out.Hpfeeds, brokerView(s, c.entitled))
		}
		if !connected {
			out.Status = "disconnected"
		}
	}
	a.writeJSON(w, http.StatusOK, out)
	return nil
}

func brokerView(s hpfeeds.BrokerState, entitled bool) brokerStatus {
	opt := func(t time.Time) *float64 {
		if t.IsZero() {
			return nil
		}
		f := epoch(t)
		return &f
	}
	b := brokerStatus{Status: string(s.Status), Messages: s.Messages, Since: opt(s.Since), LastMessage: opt(s.LastMessage)}
	if entitled {
		b.Addr, b.Ident, b.LastError = s.Addr, s.Ident, s.LastError
		b.LastErrorTime = opt(s.LastErrorTime)
		b.Connects, b.Errors = &s.Connects, &s.Errors
	}
	return b
}
