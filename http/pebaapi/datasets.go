package pebaapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/peba-go/peba"
)

const day = 24 * time.Hour

// perMonthWindow is the window of datasetAlertsPerMonth and
// datasetAlertTypesPerMonth (peba.md §3.10): createTime from now-1M/d
// (days absent or empty) or now-<days>d/d, up to the end of today UTC.
// PEBA had no upper bound; events whose sensor clock lies in the future
// would stretch the gap-filled histogram without limit, so we stop at
// tomorrow 00:00 (docs/compatibility.md). days is clamped to maxDays.
func perMonthWindow(days string, now time.Time, ds []peba.Domain) (peba.Window, string, bool) {
	from := startOfDay(monthsBefore(now, 1))
	canon := "month"
	if days != "" {
		n, ok := decimal(days, maxDays)
		if !ok {
			return peba.Window{}, "", false
		}
		from, canon = startOfDay(now.AddDate(0, 0, -n)), itoa(n)
	}
	return peba.Window{Domains: ds, Field: peba.Created, From: from, To: startOfDay(now).Add(day)}, canon, true
}

// dayKeys lists the day buckets from the first to the last one that has
// events, as Elasticsearch's date_histogram returns them (zero-count days
// inside the range included, peba.md §3.10).
func dayKeys(pts []peba.Point) []time.Time {
	if len(pts) == 0 {
		return nil
	}
	lo, hi := pts[0].Start, pts[0].Start
	for _, p := range pts {
		if p.Start.Before(lo) {
			lo = p.Start
		}
		if p.Start.After(hi) {
			hi = p.Start
		}
	}
	var out []time.Time
	for t := lo; !t.After(hi); t = t.Add(day) {
		out = append(out, t)
	}
	return out
}

// handlePerMonth is GET /alert/datasetAlertsPerMonth (peba.md §3.10):
// events per createTime day.
func (a *API) handlePerMonth(w http.ResponseWriter, r *http.Request) {
	c, ok := a.access(w, r, false)
	if !ok {
		return
	}
	q := r.URL.Query()
	ds := domains(q.Get("ci"), c)
	_, canon, valid := perMonthWindow(q.Get("days"), a.now(), ds)
	if !valid {
		a.reply(w, a.nopeJSON())
		return
	}
	a.answer(w, r, "datasetAlertsPerMonth?days="+canon, ds, false, func(ctx context.Context) (response, time.Duration, error) {
		win, _, _ := perMonthWindow(q.Get("days"), a.now(), ds)
		pts, err := a.stats.Series(ctx, win, day, peba.DimNone, nil)
		if err != nil {
			return response{}, 0, err
		}
		counts := make(map[time.Time]int64, len(pts))
		for _, p := range pts {
			counts[p.Start] += p.Count
		}
		out := map[string]int64{}
		for _, d := range dayKeys(pts) {
			out[d.Format(timeLayout)] = counts[d]
		}
		return jsonResponse([]map[string]any{{"datasetAlertsPerMonth": out}}), ttlPerMonth, nil
	})
}

// handleTypesPerMonth is GET /alert/datasetAlertTypesPerMonth (peba.md
// §3.11) with B-18 (types are filled), B-19 (days without events inside the
// range are {} instead of missing) and B-21 (every type, not the top 10)
// fixed.
func (a *API) handleTypesPerMonth(w http.ResponseWriter, r *http.Request) {
	c, ok := a.access(w, r, false)
	if !ok {
		return
	}
	q := r.URL.Query()
	ds := domains(q.Get("ci"), c)
	_, canon, valid := perMonthWindow(q.Get("days"), a.now(), ds)
	if !valid {
		a.reply(w, a.nopeJSON())
		return
	}
	a.answer(w, r, "datasetAlertTypesPerMonth?days="+canon, ds, false, func(ctx context.Context) (response, time.Duration, error) {
		win, _, _ := perMonthWindow(q.Get("days"), a.now(), ds)
		types, err := a.stats.Top(ctx, win, peba.DimPeerType, 0)
		if err != nil {
			return response{}, 0, err
		}
		out := map[string]map[string]int64{}
		if len(types) > 0 {
			keys := make([]string, len(types))
			for i, b := range types {
				keys[i] = b.Key
			}
			pts, err := a.stats.Series(ctx, win, day, peba.DimPeerType, keys)
			if err != nil {
				return response{}, 0, err
			}
			for _, d := range dayKeys(pts) {
				out[d.Format(timeLayout)] = map[string]int64{}
			}
			for _, p := range pts {
				out[p.Start.Format(timeLayout)][p.Key] += p.Count
			}
		}
		return jsonResponse([]map[string]any{{"datasetAlertsPerMonth": out}}), ttlTypesPerMonth, nil
	})
}

// handleAlertStats is GET /alert/retrieveAlertStats (peba.md §3.12): events
// received in the last 24 h, hour, 5 minutes and minute (no upper bound,
// as PEBA).
func (a *API) handleAlertStats(w http.ResponseWriter, r *http.Request) {
	c, ok := a.access(w, r, false)
	if !ok {
		return
	}
	ds := domains(r.URL.Query().Get("ci"), c)
	a.answer(w, r, "retrieveAlertStats", ds, false, func(ctx context.Context) (response, time.Duration, error) {
		now := a.now().UTC()
		var n [4]int64
		for i, m := range [4]int{1440, 60, 5, 1} {
			var err error
			n[i], err = a.stats.Count(ctx, peba.Window{Domains: ds, Field: peba.Received, From: now.Add(-time.Duration(m) * time.Minute)})
			if err != nil {
				return response{}, 0, err
			}
		}
		return jsonResponse(struct {
			Day    int64 `json:"AlertsLast24Hours"`
			Five   int64 `json:"AlertsLast5Minutes"`
			Hour   int64 `json:"AlertsLastHour"`
			Minute int64 `json:"AlertsLastMinute"`
		}{n[0], n[2], n[1], n[3]}), ttlAlertStats, nil
	})
}

// topX parses topx: absent or empty -> 10 (PEBA 1.x treats an empty
// parameter as absent, peba.md §3.16), decimal -> clamped to maxTopX.
func topX(v string) (int, bool) {
	if v == "" {
		return 10, true
	}
	return decimal(v, maxTopX)
}

// countryCount is one element of topCountriesAttacks' lists.
type countryCount struct {
	Code    string `json:"code"`
	Count   int64  `json:"count"`
	Country string `json:"country"`
}

// handleTopCountries is GET /alert/topCountriesAttacks (peba.md §3.13).
// monthOffset (README spelling offset accepted, B-35) selects the current
// month so far (0) or the whole month N months ago. Fixes: id is always a
// number (B-22), dates are UTC (B-22), one empty list does not blank the
// other (B-23). topx=0 gives empty lists.
func (a *API) handleTopCountries(w http.ResponseWriter, r *http.Request) {
	c, ok := a.access(w, r, false)
	if !ok {
		return
	}
	q := r.URL.Query()
	mo := q.Get("monthOffset")
	if !q.Has("monthOffset") {
		mo = q.Get("offset")
	}
	offset := 0
	if mo != "" {
		var valid bool
		if offset, valid = decimal(mo, maxMonthOffset); !valid {
			a.reply(w, a.nopeJSON())
			return
		}
	}
	top, valid := topX(q.Get("topx"))
	if !valid {
		a.reply(w, a.nopeJSON())
		return
	}
	ds := domains(q.Get("ci"), c)
	key := "topCountriesAttacks?monthOffset=" + itoa(offset) + "&topx=" + itoa(top)
	a.answer(w, r, key, ds, false, func(ctx context.Context) (response, time.Duration, error) {
		now := a.now().UTC()
		month := startOfMonth(now).AddDate(0, -offset, 0)
		win := peba.Window{Domains: ds, Field: peba.Received, From: month, To: now}
		if offset > 0 {
			win.To = month.AddDate(0, 1, 0)
		}
		src, dst := []countryCount{}, []countryCount{}
		if top > 0 {
			for _, l := range []struct {
				dim peba.Dim
				out *[]countryCount
			}{{peba.DimSrcCountry, &src}, {peba.DimDstCountry, &dst}} {
				bs, err := a.stats.Top(ctx, win, l.dim, top)
				if err != nil {
					return response{}, 0, err
				}
				for _, b := range bs {
					*l.out = append(*l.out, countryCount{b.Key, b.Count, b.Label})
				}
			}
		}
		return jsonResponse([]struct {
			Src  []countryCount `json:"attacksPerCountry"`
			Dst  []countryCount `json:"attacksToTargetCountry"`
			Date string         `json:"date"`
			ID   int            `json:"id"`
		}{{src, dst, month.Format("2006-01"), offset}}), ttlTopCountries, nil
	})
}

// latLon is one element of retrieveLatLonAttacks.
type latLon struct {
	Count int64  `json:"count"`
	Lat   string `json:"lat"`
	Lng   string `json:"lng"`
}

// handleLatLon is GET /alert/retrieveLatLonAttacks (peba.md §3.14) with
// B-17 fixed (real data) and B-24 fixed (invalid direction, topx or offset
// give DEFAULTRESPONSE instead of 500). offset 0 is the last 24 hours by
// createTime, N the UTC day N days ago.
func (a *API) handleLatLon(w http.ResponseWriter, r *http.Request) {
	c, ok := a.access(w, r, false)
	if !ok {
		return
	}
	q := r.URL.Query()
	dim := peba.DimSrcLocation
	switch q.Get("direction") {
	case "", "src":
	case "dst":
		dim = peba.DimDstLocation
	default:
		a.reply(w, a.nopeJSON())
		return
	}
	top, valid := topX(q.Get("topx"))
	offset := 0
	if ov := q.Get("offset"); valid && ov != "" {
		offset, valid = decimal(ov, maxDays)
	}
	if !valid {
		a.reply(w, a.nopeJSON())
		return
	}
	ds := domains(q.Get("ci"), c)
	key := "retrieveLatLonAttacks?dim=" + strconv.Itoa(int(dim)) + "&topx=" + itoa(top) + "&offset=" + itoa(offset)
	a.answer(w, r, key, ds, false, func(ctx context.Context) (response, time.Duration, error) {
		now := a.now().UTC()
		win := peba.Window{Domains: ds, Field: peba.Created, From: now.Add(-day), To: now}
		since := startOfDay(now)
		if offset > 0 {
			since = since.AddDate(0, 0, -offset)
			win.From, win.To = since, since.Add(day)
		}
		list := []latLon{}
		if top > 0 {
			bs, err := a.stats.Top(ctx, win, dim, top)
			if err != nil {
				return response{}, 0, err
			}
			for _, b := range bs {
				lat, lng := splitLocation(b.Key)
				list = append(list, latLon{b.Count, lat, lng})
			}
		}
		return jsonResponse([]struct {
			List  []latLon `json:"latLonAttacks"`
			Since string   `json:"statsSince"`
		}{{list, since.Format("2006-01-02")}}), ttlLatLon, nil
	})
}

// splitLocation turns the store's "<lat>,<lon>" into PEBA's strings
// (Python str(float), peba.md §5.1 location).
func splitLocation(k string) (lat, lng string) {
	ls, rs, _ := strings.Cut(k, ",")
	return pyFloatText(ls), pyFloatText(rs)
}

func pyFloatText(s string) string {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return s
	}
	return pyFloat(f).String()
}
