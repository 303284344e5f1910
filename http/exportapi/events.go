package exportapi

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/peba-go/peba"
)

// eventParams are the parameters of /api/v1/events; the export takes the
// same without paging.
var (
	eventParams  = []string{"ip", "sensor", "type", "from", "to", "domain", "limit", "cursor"}
	exportParams = []string{"ip", "sensor", "type", "from", "to", "domain"}
)

// defaultRange is the time range of a search or export without from.
const defaultRange = 24 * time.Hour

// eventQuery parses the filter parameters shared by search and export
// into f (without paging). A non-entitled caller's sensor filter matches
// the peer ident only: hostnames and sensor UUIDs are not in its view of
// the events, so it must not be able to probe for them either.
func (a *API) eventQuery(p *params, c caller) (peba.EventFilter, error) {
	var f peba.EventFilter
	if ip := p.get("ip"); ip != "" {
		addr, err := netip.ParseAddr(ip)
		if err != nil {
			p.fail("ip", "not an IPv4 or IPv6 address")
		}
		f.SrcIP = addr.Unmap().String()
	}
	if s := p.text("sensor"); s != "" {
		if c.private {
			f.Sensor = s
		} else {
			f.PeerIdent = s
		}
	}
	f.PeerType = p.text("type")
	from, to := p.instant("from"), p.instant("to")
	domain := p.get("domain")
	if p.err != nil {
		return f, p.err
	}
	if to.IsZero() {
		to = a.now().UTC()
	}
	if from.IsZero() {
		from = to.Add(-defaultRange)
	}
	if !from.Before(to) {
		return f, invalid("from", "must be before to")
	}
	if to.Sub(from) > a.opt.MaxWindow {
		return f, invalid("from", "the range from..to may span at most "+formatWindow(a.opt.MaxWindow))
	}
	f.Since, f.Until = from, to
	ds, err := c.domains(domain)
	if err != nil {
		return f, err
	}
	f.Domains = ds
	return f, nil
}

// searchResult is the answer of /api/v1/events.
type searchResult struct {
	Events []json.RawMessage `json:"events"`
	// NextCursor continues the search (same parameters plus cursor);
	// absent on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// searchEvents serves GET /api/v1/events: newest first (receive time
// descending, then id ascending), limit per page, keyset paging by cursor.
func (a *API) searchEvents(w http.ResponseWriter, r *http.Request) {
	c, err := a.identify(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	p := &params{q: r.URL.Query()}
	p.only(eventParams)
	limit := int(p.intIn("limit", DefaultEvents, 1, MaxEvents))
	var after *peba.EventKey
	if cur := p.get("cursor"); cur != "" {
		k, ok := decodeCursor(cur)
		if !ok {
			p.fail("cursor", "not a cursor of this API (use next_cursor as given)")
		}
		after = k
	}
	f, err := a.eventQuery(p, c)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	// One more than the page tells whether there is a next page, so the
	// last page carries no cursor to an empty one.
	f.Limit, f.After, f.NoTotal = limit+1, after, true
	evs, _, err := a.opt.Events.FindEvents(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	res := searchResult{Events: make([]json.RawMessage, 0, min(len(evs), limit))}
	if len(evs) > limit {
		last := evs[limit-1]
		res.NextCursor = encodeCursor(last.ReceivedTime, last.ID)
		evs = evs[:limit]
	}
	for i := range evs {
		res.Events = append(res.Events, eventJSON(&evs[i], c.private))
	}
	body, err := json.Marshal(res)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	writeCacheable(w, r, c, append(body, '\n'), 10)
}

// exportEvents serves GET /api/v1/events/export: every matching event of
// the range as NDJSON (one JSON object per line, the shape of
// /api/v1/events), in search order, read and flushed a page at a time, so
// memory stays flat whatever the range holds. A store failure mid-stream
// aborts the connection: the client sees a truncated response, never a
// short export that looks complete.
func (a *API) exportEvents(w http.ResponseWriter, r *http.Request) {
	c, err := a.identify(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	p := &params{q: r.URL.Query()}
	p.only(exportParams)
	f, err := a.eventQuery(p, c)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	f.Limit, f.NoTotal = exportPage, true
	ctx := r.Context()
	// The first page is read before the status is written, so that a store
	// that is down gets a proper 503.
	page, _, err := a.opt.Events.FindEvents(ctx, f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	rc := http.NewResponseController(w)
	// The server's ReadTimeout/WriteTimeout would end a long export (an
	// expired read deadline cancels the request context); clear both and
	// bound each write instead.
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Now().Add(time.Minute))
	h := w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: pass pages on as they come
	w.WriteHeader(http.StatusOK)
	buf := make([]byte, 0, 64<<10)
	for {
		for i := range page {
			buf = append(buf, eventJSON(&page[i], c.private)...)
			buf = append(buf, '\n')
		}
		_ = rc.SetWriteDeadline(time.Now().Add(time.Minute))
		if _, err := w.Write(buf); err != nil {
			return // the client went away
		}
		buf = buf[:0]
		if err := rc.Flush(); err != nil {
			return
		}
		if len(page) < f.Limit {
			return
		}
		last := page[len(page)-1]
		f.After = &peba.EventKey{ReceivedTime: last.ReceivedTime, ID: last.ID}
		page, _, err = a.opt.Events.FindEvents(ctx, f)
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("Export API: export aborted", "error", err)
			}
			panic(http.ErrAbortHandler)
		}
	}
}

// encodeCursor makes the opaque cursor of an event's position: base64url of
// "<receive time in Unix microseconds>:<id>".
func encodeCursor(t time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(t.UnixMicro(), 10) + ":" + id))
}

func decodeCursor(s string) (*peba.EventKey, bool) {
	if len(s) > 1024 {
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, false
	}
	us, id, ok := strings.Cut(string(b), ":")
	if !ok || id == "" {
		return nil, false
	}
	n, err := strconv.ParseInt(us, 10, 64)
	if err != nil {
		return nil, false
	}
	return &peba.EventKey{ReceivedTime: time.UnixMicro(n).UTC(), ID: id}, true
}
