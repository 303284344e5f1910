package pebaapi

import (
	"context"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/peba-go/peba"
)

// maxBadIPs bounds the bad-IP lists as PEBA's terms size did (peba.md §3.3).
const maxBadIPs = 1_000_000

// liveWindow is PEBA's "today and yesterday" index selection
// (getRelevantIndices(2), peba.md §2.4): events received since yesterday
// 00:00 UTC.
func liveWindow(now time.Time, ds []peba.Domain) peba.Window {
	return peba.Window{Domains: ds, Field: peba.Received, From: startOfDay(now).AddDate(0, 0, -1)}
}

// handleRetrieveIPs is POST /alert/retrieveIPs (peba.md §3.3) and, with a
// 15-minute window, /alert/retrieveIPs15m (§3.4): source addresses seen in
// the window, non-global ones dropped.
func (a *API) handleRetrieveIPs(minutes func(*API) int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, ok := a.access(w, r, true)
		if !ok {
			return
		}
		q := r.URL.Query()
		asJSON := q.Get("out") == "json"
		ds := domains(q.Get("ci"), c)
		span := minutes(a)
		key := "retrieveIPs?m=" + itoa(span) + "&json=" + strconv.FormatBool(asJSON)
		a.answer(w, r, key, ds, true, func(ctx context.Context) (response, time.Duration, error) {
			now := a.now().UTC()
			win := peba.Window{Domains: ds, Field: peba.Received, From: now.Add(-time.Duration(span) * time.Minute)}
			top, err := a.stats.Top(ctx, win, peba.DimSrcIP, maxBadIPs)
			if err != nil {
				return response{}, 0, err
			}
			list := make([]ipCount, 0, len(top))
			for _, b := range top {
				if ip, err := netip.ParseAddr(b.Key); err == nil && isGlobal(ip) {
					list = append(list, ipCount{b.Count, b.Key})
				}
			}
			if asJSON {
				return jsonResponse(list), ttlIPs, nil
			}
			return response{ctXML, ipsXML(list)}, ttlIPs, nil // ipsxml.go
		})
	}
}

// handleAlertsCyber is POST /alert/retrieveAlertsCyber (peba.md §3.5): the
// last MAXALERTS alerts with attacker addresses. DateCreated is recievedTime.
func (a *API) handleAlertsCyber(w http.ResponseWriter, r *http.Request) {
	c, ok := a.access(w, r, true)
	if !ok {
		return
	}
	ds := domains(r.URL.Query().Get("ci"), c)
	a.answer(w, r, "retrieveAlertsCyber", ds, true, func(ctx context.Context) (response, time.Duration, error) {
		evs, err := a.stats.Latest(ctx, liveWindow(a.now(), ds), netip.Addr{}, a.cfg.MaxAlerts)
		if err != nil {
			return response{}, 0, err
		}
		alerts := elem("Alerts")
		for i := range evs {
			e := &evs[i]
			alerts.kids = append(alerts.kids, elem("Alert",
				leaf("Id", e.ID),
				leaf("DateCreated", e.ReceivedTime.UTC().Format(timeLayout)),
				elem("Peer", leaf("Id", e.PeerIdent), leaf("Type", e.PeerType), leaf("Country", e.Dst.Country)),
				leaf("Request", e.URL),
				elem("Source", leaf("Address", addrText(e.SrcIP)), leaf("Country", e.Src.Country),
					leaf("Latitude", pyFloat(e.Src.Lat).String()), leaf("Longitude", pyFloat(e.Src.Lon).String())),
			))
		}
		return xmlResponse(elem("EWSSimpleAlertInfo", alerts)), ttlAlertsCyber, nil
	})
}

// handleQuerySingleIP is POST /alert/querySingleIP?ip= (peba.md §3.6): the
// last MAXALERTS alerts of one global IPv4 source, newest createTime first.
// An invalid ip gives an empty list, as in PEBA.
func (a *API) handleQuerySingleIP(w http.ResponseWriter, r *http.Request) {
	c, ok := a.access(w, r, true)
	if !ok {
		return
	}
	q := r.URL.Query()
	ip, err := netip.ParseAddr(q.Get("ip"))
	if err != nil || !ip.Is4() || !isGlobal(ip) {
		a.reply(w, xmlResponse(elem("EWSSimpleAlertInfo", elem("Alerts"))))
		return
	}
	ds := domains(q.Get("ci"), c)
	a.answer(w, r, "querySingleIP?ip="+ip.String(), ds, true, func(ctx context.Context) (response, time.Duration, error) {
		latest := a.stats.Latest
		if b, ok := a.stats.(peba.BriefLatester); ok {
			latest = b.LatestBrief // the fields printed below, fewer to read
		}
		evs, err := latest(ctx, peba.Window{Domains: ds, Field: peba.Created}, ip, a.cfg.MaxAlerts)
		if err != nil {
			return response{}, 0, err
		}
		alerts := elem("Alerts")
		for i := range evs {
			e := &evs[i]
			alerts.kids = append(alerts.kids, elem("Alert",
				leaf("Id", e.ID),
				leaf("DateCreated", e.CreateTime.UTC().Format(timeLayout)),
				elem("Peer", leaf("Type", e.PeerType), leaf("Country", e.Dst.Country)),
				leaf("Request", e.URL),
			))
		}
		return xmlResponse(elem("EWSSimpleAlertInfo", alerts)), ttlSingleIP, nil
	})
}

func addrText(ip netip.Addr) string {
	if !ip.IsValid() {
		return ""
	}
	return ip.String()
}

// countSpan is the time parameter of retrieveAlertsCount and
// retrieveAlertsCountWithType (peba.md §3.7): decimal minutes back from
// now, or "day" for since 00:00 UTC.
type countSpan struct {
	minutes int
	day     bool
}

func parseCountSpan(v string) (countSpan, bool) {
	if v == "day" {
		return countSpan{day: true}, true
	}
	n, ok := decimal(v, maxMinutes)
	return countSpan{minutes: n}, ok
}

func (s countSpan) from(now time.Time) time.Time {
	if s.day {
		return startOfDay(now)
	}
	return now.Add(-time.Duration(s.minutes) * time.Minute)
}

// String is the canonical form, for cache keys.
func (s countSpan) String() string {
	if s.day {
		return "day"
	}
	return itoa(s.minutes)
}

// handleAlertsCount is GET /alert/retrieveAlertsCount (peba.md §3.7).
// Missing time: DEFAULTRESPONSE. Invalid time: <AlertCount>0</AlertCount>
// or {"AlertCount":false}, as PEBA (B-39 kept, docs/compatibility.md).
func (a *API) handleAlertsCount(w http.ResponseWriter, r *http.Request) {
	c, ok := a.access(w, r, false)
	if !ok {
		return
	}
	q := r.URL.Query()
	tv := q.Get("time")
	if tv == "" {
		a.reply(w, a.nopeHTML())
		return
	}
	asJSON := q.Get("out") == "json"
	span, valid := parseCountSpan(tv)
	if !valid {
		if asJSON {
			a.reply(w, jsonResponse(map[string]bool{"AlertCount": false}))
		} else {
			a.reply(w, xmlResponse(elem("EWSSimpleIPInfo", leaf("AlertCount", "0"))))
		}
		return
	}
	ds := domains(q.Get("ci"), c)
	key := "retrieveAlertsCount?time=" + span.String() + "&json=" + strconv.FormatBool(asJSON)
	a.answer(w, r, key, ds, false, func(ctx context.Context) (response, time.Duration, error) {
		n, err := a.stats.Count(ctx, peba.Window{Domains: ds, Field: peba.Received, From: span.from(a.now().UTC())})
		if err != nil {
			return response{}, 0, err
		}
		if asJSON {
			return jsonResponse(map[string]int64{"AlertCount": n}), ttlAlertsCount, nil
		}
		return xmlResponse(elem("EWSSimpleIPInfo", leaf("AlertCount", strconv.FormatInt(n, 10)))), ttlAlertsCount, nil
	})
}

// handleCountWithType is GET /alert/retrieveAlertsCountWithType (peba.md
// §3.8), with every honeypot type instead of the top 10 (B-21).
func (a *API) handleCountWithType(w http.ResponseWriter, r *http.Request) {
	c, ok := a.access(w, r, false)
	if !ok {
		return
	}
	q := r.URL.Query()
	tv := q.Get("time")
	if tv == "" {
		a.reply(w, a.nopeHTML())
		return
	}
	span, valid := parseCountSpan(tv)
	if !valid {
		a.reply(w, jsonResponse(struct{}{}))
		return
	}
	ds := domains(q.Get("ci"), c)
	a.answer(w, r, "retrieveAlertsCountWithType?time="+span.String(), ds, false, func(ctx context.Context) (response, time.Duration, error) {
		win := peba.Window{Domains: ds, Field: peba.Received, From: span.from(a.now().UTC())}
		top, err := a.stats.Top(ctx, win, peba.DimPeerType, 0)
		if err != nil {
			return response{}, 0, err
		}
		per := make(map[string]int64, len(top))
		var total int64
		for _, b := range top {
			per[b.Key] = b.Count
			total += b.Count
		}
		return jsonResponse(struct {
			PerType map[string]int64 `json:"AlertCountPerType"`
			Total   int64            `json:"AlertCountTotal"`
		}{per, total}), ttlCountWithType, nil
	})
}

// liveAlerts is the size of retrieveAlertsJson (peba.md §3.9).
const liveAlerts = 35

// tickerAlert is one element of retrieveAlertsJson; fields in sorted order.
type tickerAlert struct {
	AnalyzerType  string `json:"analyzerType"`
	ClientDomain  bool   `json:"clientDomain"`
	Country       string `json:"country"`
	CountryName   string `json:"countryName"`
	DateCreated   string `json:"dateCreated"`
	DestLat       string `json:"destLat"`
	DestLng       string `json:"destLng"`
	ID            string `json:"id"`
	RequestString string `json:"requestString"`
	SourceLat     string `json:"sourceLat"`
	SourceLng     string `json:"sourceLng"`
	TargetCountry string `json:"targetCountry"`
}

// handleAlertsJSON is GET /alert/retrieveAlertsJson (peba.md §3.9), the
// live ticker: the last 35 alerts without attacker addresses.
func (a *API) handleAlertsJSON(w http.ResponseWriter, r *http.Request) {
	c, ok := a.access(w, r, false)
	if !ok {
		return
	}
	ds := domains(r.URL.Query().Get("ci"), c)
	a.answer(w, r, "retrieveAlertsJson", ds, false, func(ctx context.Context) (response, time.Duration, error) {
		evs, err := a.stats.Latest(ctx, liveWindow(a.now(), ds), netip.Addr{}, liveAlerts)
		if err != nil {
			return response{}, 0, err
		}
		list := make([]tickerAlert, 0, len(evs))
		for i := range evs {
			e := &evs[i]
			slat, slng := bonn(e.Src)
			dlat, dlng := bonn(e.Dst)
			list = append(list, tickerAlert{
				AnalyzerType: e.PeerType, ClientDomain: e.Domain == peba.DomainCommunity,
				Country: e.Src.Country, CountryName: e.Src.CountryName,
				DateCreated: e.ReceivedTime.UTC().Format(timeLayout),
				DestLat:     dlat, DestLng: dlng, ID: e.ID, RequestString: requestString(e),
				SourceLat: slat, SourceLng: slng, TargetCountry: e.Dst.Country,
			})
		}
		return jsonResponse(struct {
			Alerts []tickerAlert `json:"alerts"`
		}{list}), ttlAlertsJSON, nil
	})
}

// bonn formats a location as PEBA's ticker does: "0.0"/"0.0" (unknown)
// becomes DTAG's headquarters in Bonn (peba.md §3.9).
func bonn(g peba.Geo) (lat, lng string) {
	lat, lng = pyFloat(g.Lat).String(), pyFloat(g.Lon).String()
	if lat == "0.0" && lng == "0.0" {
		return "50.708021", "7.129191"
	}
	return lat, lng
}

// requestString applies PEBA's ticker rules (peba.md §3.9) in order, with
// B-16 fixed: for cowrie input only a leading newline is dropped instead
// of the first two characters of the escaped text. originalRequestString is
// URL-decoded a second time as PEBA does (B-15 kept: the ticker shows what
// sicherheitstacho showed). An empty username, password or login counts as
// absent (the store does not keep null apart from "").
func requestString(e *peba.Event) string {
	cowrie := strings.Contains(e.PeerType, "SSH/console(cowrie)")
	if (cowrie || strings.Contains(e.PeerType, "Passwords(heralding)")) && e.URL == "" {
		s := "Username: " + quotedOrNone(e.Username) + " | Password: " + quotedOrNone(e.Password)
		if cowrie && e.Login != "" {
			s += " | Status: " + e.Login
		}
		return htmlEscape(s)
	}
	if cowrie {
		return strings.ReplaceAll(htmlEscape(strings.TrimPrefix(e.URL, "\n")), "\n", "; ")
	}
	return htmlEscape(pyUnquote(e.URL))
}

func quotedOrNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return `"` + pyUnquote(s) + `"`
}
