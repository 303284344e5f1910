package pebaapi

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/peba-go/peba"
)

var communityOnly = []peba.Domain{peba.DomainCommunity}

// tpotDay is one UTC day of T-Pot statistics (peba.md §7.1).
type tpotDay struct {
	alertsPerType    map[string]int64
	honeypotsPerType map[string]int64
	alerts           int64
	daemons          int64
	honeypots        int64
}

// tpotStats computes TpotStats' numbers for w: alerts per type, and the
// installations (grouped by hostname, or by target address for T-Pots
// older than 17.10, B-46) with their daemons (every peerIdent, not the top
// 10: B-21) and types.
func (a *API) tpotStats(ctx context.Context, w peba.Window) (tpotDay, error) {
	d := tpotDay{alertsPerType: map[string]int64{}, honeypotsPerType: map[string]int64{}}
	types, err := a.stats.Top(ctx, w, peba.DimPeerType, 0)
	if err != nil {
		return d, err
	}
	for _, b := range types {
		d.alertsPerType[b.Key] = b.Count
		d.alerts += b.Count
	}
	groups, err := a.stats.Sensors(ctx, w)
	if err != nil {
		return d, err
	}
	d.honeypots = int64(len(groups))
	for _, g := range groups {
		d.daemons += int64(len(g.PeerIdent))
		for _, t := range g.PeerType {
			d.honeypotsPerType[t]++
		}
	}
	return d, nil
}

// handleTpotStats is GET /alert/TpotStats?day=YYYYMMDD (peba.md §7.1):
// community T-Pot statistics of one UTC day. Without day it answers for
// today (UTC), as PEBA's README promised (PEBA answered DEFAULTRESPONSE).
// Only fully past days are cached, for 28 days (B-37).
func (a *API) handleTpotStats(w http.ResponseWriter, r *http.Request) {
	if _, ok := a.access(w, r, false); !ok {
		return
	}
	now := a.now().UTC()
	from := startOfDay(now)
	if dv := r.URL.Query().Get("day"); dv != "" {
		t, err := time.Parse("20060102", dv)
		if _, digits := decimal(dv, 1<<30); err != nil || !digits || len(dv) != 8 || t.Year() < 1 {
			a.reply(w, a.nopeHTML())
			return
		}
		from = t
	}
	to := from.Add(day)
	ttl := time.Duration(0)
	if !to.After(now) {
		ttl = ttlTpotStatsPast
	}
	a.answer(w, r, "TpotStats?day="+from.Format("20060102"), communityOnly, false, func(ctx context.Context) (response, time.Duration, error) {
		d, err := a.tpotStats(ctx, peba.Window{Domains: communityOnly, Field: peba.Received, From: from, To: to})
		if err != nil {
			return response{}, 0, err
		}
		type community struct {
			AlertsPerType    map[string]int64 `json:"numberAlertsPerType"`
			HoneypotsPerType map[string]int64 `json:"numberHoneypotsPerType"`
			Alerts           int64            `json:"totalNumberAlerts"`
			Daemons          int64            `json:"totalNumberDaemons"`
			Honeypots        int64            `json:"totalNumberHoneypots"`
		}
		return jsonResponse(struct {
			From      string    `json:"UTCtimeFrom"`
			To        string    `json:"UTCtimeTo"`
			Community community `json:"communityHoneypots"`
		}{from.Format(timeLayout), to.Add(-time.Second).Format(timeLayout),
			community{d.alertsPerType, d.honeypotsPerType, d.alerts, d.daemons, d.honeypots}}), ttl, nil
	})
}

// statsTypes is getStats' whitelist of honeypot types (peba.md §7.2).
var statsTypes = []string{
	"E-Mail(mailoney)", "Industrial(conpot)", "Network(cisco-asa)", "Network(Dionaea)", "Network(glutton)",
	"Network(honeytrap)", "Network(suricata)", "Passwords(heralding)", "RDP(rdpy)", "SSH/console(cowrie)",
	"Service(ES)", "Service(emobility)", "Service(Medicine)", "VNC(vnclowpot)", "Webpage", "Unclassified",
}

// maxStatsDays bounds getStats: each day costs two store queries.
const maxStatsDays = 31

// handleGetStats is GET /alert/getStats (peba.md §7.2). PEBA read daily
// documents that an unpublished job wrote; we compute them from our own
// events per UTC day (docs/compatibility.md): comm_totalRatio = alerts /
// installations, comm_ratio_<type> = alerts of the type / installations
// running it. Days d with gte <= d < lt (B-38: lt is exclusive), at most
// the last 31 of them, in the domains of ci (B-20). "value" is accepted
// for "values" (B-35).
func (a *API) handleGetStats(w http.ResponseWriter, r *http.Request) {
	c, ok := a.access(w, r, false)
	if !ok {
		return
	}
	q := r.URL.Query()
	vals := q.Get("values")
	if !q.Has("values") {
		vals = q.Get("value")
	}
	var types []string
	for _, t := range strings.Split(pyUnquotePlus(vals), ",") {
		if slices.Contains(statsTypes, t) && !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	slices.Sort(types)
	now := a.now().UTC()
	gte, lt := now.Add(-day), now
	if t, err := time.Parse(timeLayout, pyUnquotePlus(q.Get("gte"))); err == nil {
		gte = t
	}
	if t, err := time.Parse(timeLayout, pyUnquotePlus(q.Get("lt"))); err == nil {
		lt = t
	}
	first := startOfDay(gte)
	if first.Before(gte) {
		first = first.Add(day)
	}
	last := lt // exclusive bound on a day's start
	if now.Before(last) {
		last = now
	}
	if n := int(last.Sub(first) / day); n > maxStatsDays {
		first = first.AddDate(0, 0, n-maxStatsDays)
	}
	ds := domains(q.Get("ci"), c)
	key := "getStats?values=" + strings.Join(types, ",") + "&from=" + first.Format(timeLayout) + "&to=" + last.Format(timeLayout)
	a.answer(w, r, key, ds, false, func(ctx context.Context) (response, time.Duration, error) {
		out := map[string]map[string]any{}
		for d := first; d.Before(last); d = d.Add(day) {
			st, err := a.tpotStats(ctx, peba.Window{Domains: ds, Field: peba.Received, From: d, To: d.Add(day)})
			if err != nil {
				return response{}, 0, err
			}
			if st.honeypots == 0 {
				continue
			}
			e := map[string]any{
				"UTCtimeFrom":     d.Format(timeLayout),
				"UTCtimeTo":       d.Add(day - time.Second).Format(timeLayout),
				"comm_totalRatio": pyFloat(float64(st.alerts) / float64(st.honeypots)),
			}
			for _, t := range types {
				if hp := st.honeypotsPerType[t]; hp > 0 {
					e["comm_ratio_"+t] = pyFloat(float64(st.alertsPerType[t]) / float64(hp))
				}
			}
			out[d.Format(timeLayout)] = e
		}
		if len(out) == 0 {
			return a.nopeHTML(), 0, nil
		}
		return jsonResponse(out), ttlGetStats, nil
	})
}

// topsSpan is one of /alert/tops' day choices (peba.md §7.3).
type topsSpan struct {
	width time.Duration
	from  func(now time.Time) time.Time
	// lastBound is the histogram's extended_bounds.max: buckets run at least
	// up to its bucket.
	lastBound func(now time.Time) time.Time
}

var topsSpans = map[string]topsSpan{
	"1": {time.Hour,
		func(now time.Time) time.Time { return now.Add(-day).Truncate(time.Second) },
		func(now time.Time) time.Time { return now }},
	"7": {6 * time.Hour,
		func(now time.Time) time.Time { return startOfDay(now).AddDate(0, 0, -6) },
		startOfDay},
	"28": {day,
		func(now time.Time) time.Time { return startOfDay(now).AddDate(0, 0, -27) },
		startOfDay},
}

// maxTops is PEBA's largest topx for /alert/tops.
const maxTops = 30

// handleTops is GET /alert/tops (peba.md §7.3): the top URLs (Webpage) or
// destination ports with a timeline each, keyed by URL or port (jsonify's
// sorted order, kept). Fixes: the domains of ci are respected (B-20); a
// missing topx means 10 (B-31). topx must be 1..30 (PEBA's topx=0 failed
// in Elasticsearch and answered DEFAULTRESPONSE).
func (a *API) handleTops(w http.ResponseWriter, r *http.Request) {
	c, ok := a.access(w, r, false)
	if !ok {
		return
	}
	q := r.URL.Query()
	top, valid := topX(q.Get("topx"))
	if !valid || top < 1 || top > maxTops {
		a.reply(w, a.nopeHTML())
		return
	}
	var dim peba.Dim
	peerType := ""
	switch q.Get("type") {
	case "urls":
		dim, peerType = peba.DimURL, "Webpage"
	case "destports":
		dim = peba.DimDstPort
	default:
		a.reply(w, a.nopeHTML())
		return
	}
	days := q.Get("days")
	if days == "" {
		days = "1"
	}
	span, valid := topsSpans[days]
	if !valid {
		a.reply(w, a.nopeHTML())
		return
	}
	ds := domains(q.Get("ci"), c)
	key := "tops?type=" + q.Get("type") + "&days=" + days + "&topx=" + itoa(top)
	a.answer(w, r, key, ds, false, func(ctx context.Context) (response, time.Duration, error) {
		now := a.now().UTC()
		win := peba.Window{Domains: ds, Field: peba.Received, From: span.from(now), PeerType: peerType}
		bs, err := a.stats.Top(ctx, win, dim, top)
		if err != nil {
			return response{}, 0, err
		}
		if len(bs) == 0 {
			return a.nopeHTML(), 0, nil
		}
		keys := make([]string, len(bs))
		for i, b := range bs {
			keys[i] = b.Key
		}
		pts, err := a.stats.Series(ctx, win, span.width, dim, keys)
		if err != nil {
			return response{}, 0, err
		}
		first := win.From.Truncate(span.width)
		bound := span.lastBound(now).Truncate(span.width)
		out := make(map[string]map[string]int64, len(bs))
		last := make(map[string]time.Time, len(bs))
		for _, b := range bs {
			out[b.Key] = map[string]int64{"total": b.Count}
			last[b.Key] = bound
		}
		for _, p := range pts {
			m, ok := out[p.Key]
			if !ok {
				continue
			}
			m[p.Start.Format(timeLayout)] += p.Count
			if p.Start.After(last[p.Key]) {
				last[p.Key] = p.Start
			}
		}
		// min_doc_count 0 with extended_bounds: every bucket from the
		// window's start to the later of the bound and the key's last data.
		for k, m := range out {
			for t := first; !t.After(last[k]); t = t.Add(span.width) {
				if _, ok := m[t.Format(timeLayout)]; !ok {
					m[t.Format(timeLayout)] = 0
				}
			}
		}
		return jsonResponse(out), ttlTops, nil
	})
}
