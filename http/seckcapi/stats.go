package seckcapi

import (
	"cmp"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/peba-go/peba"
)

// Bounds of the statistics endpoints. Attackers choose the parameters;
// the bounds keep every query to a bounded window and answer size.
const (
	maxChannelLen    = 255 // a peer type is at most this long
	maxChannels      = 200 // peer types per answer
	attacksDays      = 30  // /stats/attacks?channel=... without date: the last 30 days
	maxAttackers     = 1000
	maxHoursAgo      = 24 * 366
	attackerSample   = 1000 // events of one attacker read for honeypots, ports, sensors
	defaultAttackers = 24   // CHN's hours_ago default of top_attackers
	defaultAttacker  = 720  // CHN's hours_ago default of attacker_stats
)

type attackDay struct {
	Channel string           `json:"channel"`
	Date    string           `json:"date"`
	Hourly  map[string]int64 `json:"hourly"`
}

// parseDate accepts SecKC's YYYYMMDD and YYYY-MM-DD (a UTC day).
func parseDate(s string) (time.Time, error) {
	for _, layout := range []string{"20060102", "2006-01-02"} {
		if len(s) == len(layout) {
			if d, err := time.Parse(layout, s); err == nil {
				return d, nil
			}
		}
	}
	return time.Time{}, peba.Errorf(peba.EINVALID, "date must be YYYYMMDD or YYYY-MM-DD")
}

// handleAttacks is GET /stats/attacks?date=&channel= (seckc.md §3.3):
// events per UTC hour of receipt, per channel and day, in Mnemosyne's
// daily_stats shape. "channel" is the PEBA peer type (hpfeeds channels map
// to peer types on ingest, e.g. cowrie.sessions -> "SSH/console(cowrie)").
// date alone: that day, every channel; channel alone: that channel over the
// last 30 days; both: one document at most. Neither is 400 (SecKC meant
// 400 and answered 500). Days are ascending; within a day the busiest
// channel comes first, so the Globe's chart (which reads element 0) shows
// it.
func (a *API) handleAttacks(w http.ResponseWriter, r *http.Request, c caller) error {
	q := r.URL.Query()
	date, channel := q.Get("date"), q.Get("channel")
	if date == "" && channel == "" {
		return peba.Errorf(peba.EINVALID, "date or channel parameter required")
	}
	if len(channel) > maxChannelLen || !utf8.ValidString(channel) {
		return peba.Errorf(peba.EINVALID, "invalid channel")
	}
	today := a.now().UTC().Truncate(24 * time.Hour)
	win := peba.Window{Domains: c.domains(), Field: peba.Received, From: today.AddDate(0, 0, 1-attacksDays), To: today.AddDate(0, 0, 1), PeerType: channel}
	if date != "" {
		d, err := parseDate(date)
		if err != nil {
			return err
		}
		win.From, win.To = d, d.AddDate(0, 0, 1)
	}
	keys := []string{channel}
	if channel == "" {
		top, err := a.opt.Stats.Top(r.Context(), win, peba.DimPeerType, maxChannels)
		if err != nil {
			return err
		}
		keys = keys[:0]
		for _, b := range top {
			keys = append(keys, b.Key)
		}
	}
	out := []attackDay{}
	if len(keys) > 0 {
		pts, err := a.opt.Stats.Series(r.Context(), win, time.Hour, peba.DimPeerType, keys)
		if err != nil {
			return err
		}
		out = attackDays(pts)
	}
	a.writeJSON(w, http.StatusOK, out)
	return nil
}

// attackDays groups hourly points into one document per (day, channel).
func attackDays(pts []peba.Point) []attackDay {
	type key struct{ day, channel string }
	idx := map[key]int{}
	var out []attackDay
	totals := map[key]int64{}
	for _, p := range pts {
		t := p.Start.UTC()
		k := key{t.Format("20060102"), p.Key}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, attackDay{Channel: p.Key, Date: k.day, Hourly: map[string]int64{}})
		}
		// Mnemosyne's keys: the hour without zero padding (seckc.md §3.3).
		out[i].Hourly[strconv.Itoa(t.Hour())] += p.Count
		totals[k] += p.Count
	}
	slices.SortFunc(out, func(x, y attackDay) int {
		return cmp.Or(cmp.Compare(x.Date, y.Date),
			cmp.Compare(totals[key{y.Date, y.Channel}], totals[key{x.Date, x.Channel}]),
			cmp.Compare(x.Channel, y.Channel))
	})
	if out == nil {
		out = []attackDay{}
	}
	return out
}

type attacker struct {
	Count    int64  `json:"count"`
	Honeypot string `json:"honeypot"`
	SourceIP string `json:"source_ip"`
}

type meta struct {
	Options map[string]string `json:"options"`
	Query   string            `json:"query"`
	Size    *int              `json:"size,omitempty"`
}

// handleAttackers is GET /stats/attackers?hours_ago=&limit= (seckc.md
// §3.4): CHN's top_attackers over the stored events, one row per (source
// address, honeypot) where honeypot is the peer type, by count descending.
// hours_ago defaults to 24 (1..8784), limit to 1000 (1..1000); anything
// else is 400 (SecKC silently used 24). meta.options echoes the given
// parameters as strings, as CHN does.
func (a *API) handleAttackers(w http.ResponseWriter, r *http.Request, c caller) error {
	hours, err := intParam(r, "hours_ago", defaultAttackers, 1, maxHoursAgo)
	if err != nil {
		return err
	}
	limit, err := intParam(r, "limit", maxAttackers, 1, maxAttackers)
	if err != nil {
		return err
	}
	now := a.now()
	win := peba.Window{Domains: c.domains(), Field: peba.Received, From: now.Add(-time.Duration(hours) * time.Hour), To: now}
	types, err := a.opt.Stats.Top(r.Context(), win, peba.DimPeerType, maxChannels)
	if err != nil {
		return err
	}
	// peba.Stats groups by one dimension: one Top per peer type gives the
	// (address, honeypot) pairs.
	rows := []attacker{}
	for _, t := range types {
		tw := win
		tw.PeerType = t.Key
		top, err := a.opt.Stats.Top(r.Context(), tw, peba.DimSrcIP, limit)
		if err != nil {
			return err
		}
		for _, b := range top {
			if b.Key != "" {
				rows = append(rows, attacker{Count: b.Count, Honeypot: t.Key, SourceIP: b.Key})
			}
		}
	}
	slices.SortFunc(rows, func(x, y attacker) int {
		return cmp.Or(cmp.Compare(y.Count, x.Count), cmp.Compare(x.SourceIP, y.SourceIP), cmp.Compare(x.Honeypot, y.Honeypot))
	})
	if len(rows) > limit {
		rows = rows[:limit]
	}
	n := len(rows)
	a.writeJSON(w, http.StatusOK, struct {
		Data []attacker `json:"data"`
		Meta meta       `json:"meta"`
	}{rows, meta{
		Options: givenOptions(r, map[string]int{"hours_ago": hours, "limit": limit}),
		Query:   "top_attackers", Size: &n,
	}})
	return nil
}

type attackerStats struct {
	Count      int64    `json:"count"`
	FirstSeen  *string  `json:"first_seen"`
	Honeypots  []string `json:"honeypots"`
	IP         string   `json:"ip"`
	LastSeen   *string  `json:"last_seen"`
	NumSensors int      `json:"num_sensors"`
	Ports      []int32  `json:"ports"`
}

// handleAttacker is GET /stats/attacker/<ip>?hours_ago= (seckc.md §3.5):
// CHN's attacker_stats over the stored events of that source address in the
// last hours_ago hours (default 720). count, first_seen and last_seen cover
// every event; honeypots (peer types), ports (target ports) and num_sensors
// (distinct sensors: hostname, else target address) are taken from the
// newest 1000 events. An unknown address is 200 with count 0, as CHN; an
// invalid one is 400 (SecKC sent it upstream unchecked).
func (a *API) handleAttacker(w http.ResponseWriter, r *http.Request, c caller) error {
	ip, err := parseIP(r.PathValue("ip"))
	if err != nil {
		return err
	}
	hours, err := intParam(r, "hours_ago", defaultAttacker, 1, maxHoursAgo)
	if err != nil {
		return err
	}
	now := a.now()
	f := peba.EventFilter{Domains: c.domains(), SrcIP: ip.String(), Since: now.Add(-time.Duration(hours) * time.Hour), Until: now, Limit: attackerSample}
	evs, total, err := a.opt.Events.FindEvents(r.Context(), f)
	if err != nil {
		return err
	}
	st := attackerStats{Count: total, Honeypots: []string{}, IP: ip.String(), Ports: []int32{}}
	if len(evs) > 0 {
		last := isoformat(evs[0].ReceivedTime)
		st.LastSeen = &last
		oldest := evs[len(evs)-1]
		if total > int64(len(evs)) {
			f.Offset, f.Limit = int(total-1), 1
			older, _, err := a.opt.Events.FindEvents(r.Context(), f)
			if err != nil {
				return err
			}
			if len(older) > 0 {
				oldest = older[0]
			}
		}
		first := isoformat(oldest.ReceivedTime)
		st.FirstSeen = &first
	}
	sensors := map[string]bool{}
	for i := range evs {
		e := &evs[i]
		if !slices.Contains(st.Honeypots, e.PeerType) && e.PeerType != "" {
			st.Honeypots = append(st.Honeypots, e.PeerType)
		}
		if e.DstPort >= 0 && !slices.Contains(st.Ports, e.DstPort) {
			st.Ports = append(st.Ports, e.DstPort)
		}
		sensors[sensorKey(e)] = true
	}
	slices.Sort(st.Honeypots)
	slices.Sort(st.Ports)
	st.NumSensors = len(sensors)
	a.writeJSON(w, http.StatusOK, struct {
		Data attackerStats `json:"data"`
		Meta meta          `json:"meta"`
	}{st, meta{Options: givenOptions(r, map[string]int{"hours_ago": hours}), Query: "attacker_stats"}})
	return nil
}

// givenOptions is CHN's meta.options: the parameters the request gave,
// as strings (validated values, never the raw text).
func givenOptions(r *http.Request, vals map[string]int) map[string]string {
	out := map[string]string{}
	for k, v := range vals {
		if r.URL.Query().Get(k) != "" {
			out[k] = strconv.Itoa(v)
		}
	}
	return out
}

// isoformat is Python's datetime.isoformat() of a naive UTC time, as CHN
// serialises first_seen/last_seen: microseconds only when non-zero.
func isoformat(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02T15:04:05")
	}
	return t.Format("2006-01-02T15:04:05.000000")
}

// sensorKey identifies the sensor of an event as peba.Stats.Sensors groups
// them: the hostname, or the target address for older T-Pots whose
// hostname is "undefined" (peba.md §7.1).
func sensorKey(e *peba.Event) string {
	if e.Hostname != "" && e.Hostname != "undefined" {
		return "h:" + e.Hostname
	}
	return "a:" + addrString(e.DstIP)
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
