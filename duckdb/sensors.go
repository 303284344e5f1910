package duckdb

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/peba-go/peba"
)

// maxSummaryDays bounds the whole days that Sensors reads per day
// (summaries): TpotStats and getStats ask for one day at a time; a longer
// window is aggregated from the rollup rows in one query, so that a
// caller's century does not become a list of 36,500 days.
const maxSummaryDays = 62

// sensorRollup is rollup_sensor_day as a plan candidate (only its
// granularity and field are used).
var sensorRollup = rollup{table: "rollup_sensor_day", field: peba.Received, gran: 24 * time.Hour}

// Sensors implements peba.Stats (peba.md §7.1). Events whose hostname is
// "undefined" (PEBA's default, older T-Pots) or empty are grouped by target
// address; PEBA grouped "" under hostname "" instead, which SensorGroup
// cannot express. PeerIdent and PeerType are distinct and sorted in byte
// order, and not capped at 10 as PEBA's sub-aggregations were. Groups are
// ordered by Hostname then TargetIP, so the address groups come first.
// Whole received-time days come from their summaries (sensorsum.go) or
// rollup_sensor_day, the rest of the window from the events.
func (s *Store) Sensors(ctx context.Context, w peba.Window) ([]peba.SensorGroup, error) {
	return s.sensors(ctx, w, true)
}

func (s *Store) sensors(ctx context.Context, w peba.Window, useRollups bool) ([]peba.SensorGroup, error) {
	col, err := timeColumn(w.Field)
	if err != nil {
		return nil, err
	}
	from, to := w.From, w.To
	if !from.IsZero() {
		from = dbTime(from)
	}
	if !to.IsZero() {
		to = dbTime(to)
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return nil, nil
	}
	if _, none := domainCond(w.Domains); none {
		return nil, nil
	}
	var cands []*rollup
	if useRollups && w.Field == sensorRollup.field {
		cands = []*rollup{&sensorRollup}
	}
	// The whole days of a window of any peer type are answered per day and
	// domain (summaries, sensorsum.go), if they are not too many; the rest
	// in one query over rollup and raw rows.
	var days []time.Time
	var parts []string
	var args []any
	for _, seg := range split(from, to, cands, nil) {
		sw := w
		sw.From, sw.To = seg.from, seg.to
		if seg.r != nil && w.PeerType == "" && !seg.from.IsZero() && !seg.to.IsZero() && seg.to.Sub(seg.from) <= maxSummaryDays*24*time.Hour {
			for d := seg.from; d.Before(seg.to); d = d.Add(24 * time.Hour) {
				days = append(days, d)
			}
			continue
		}
		if seg.r != nil {
			where, wargs, _ := windowWhere(sw, "t")
			parts = append(parts, "SELECT h, ip, peer_ident, peer_type, cnt AS c FROM rollup_sensor_day"+where)
			args = append(args, wargs...)
			continue
		}
		where, wargs, _ := windowWhere(sw, col)
		parts = append(parts, "SELECT "+sensorHostSQL+" AS h, "+sensorIPSQL+" AS ip, peer_ident, peer_type, count(*) AS c FROM events"+
			where+" GROUP BY ALL")
		args = append(args, wargs...)
	}
	var lists [][]peba.SensorGroup
	var fresh []daySensors
	var epoch int64
	// Closed days come from the memo (memo.go) when it has them.
	var mr memoRead
	var mkey string
	if len(days) > 0 && useRollups {
		end := days[len(days)-1].Add(24 * time.Hour).UnixMicro()
		if end <= s.memoMark(0) {
			var ok bool
			if mr, ok = s.beginMemo(0, days[0].UnixMicro(), end); ok {
				dc, _ := domainCond(w.Domains)
				mkey = mr.key(fmt.Sprintf("sensors|%q|%d|%d", dc, days[0].UnixMicro(), end))
				if v, hit := mr.get(mkey); hit {
					for _, l := range v.(*memoSensors).lists {
						lists = append(lists, slices.Clone(l)) // merged and sorted in place
					}
					days, mkey = nil, ""
				}
			}
		}
	}
	var dayLists [][]peba.SensorGroup
	var merged []peba.SensorGroup // all of the answer, when it is only summaries
	if len(days) == 0 && len(parts) == 0 {
		return mergeSensors(lists), nil
	}
	err = s.readTx(ctx, func(ctx context.Context) error {
		if len(days) > 0 {
			var ds []daySensors
			var err error
			if ds, fresh, epoch, err = s.sensorDays(ctx, days, w.Domains); err != nil {
				return err
			}
			if len(lists) == 0 && len(parts) == 0 {
				merged = s.sensorCache.merge(ds)
			}
			for _, d := range ds {
				if merged == nil {
					lists = append(lists, slices.Clone(d.groups)) // d.groups may be shared (sensorcache.go)
				}
				if mkey != "" {
					dayLists = append(dayLists, slices.Clone(d.groups))
				}
			}
		}
		if len(parts) > 0 {
			rows, err := s.aggregateSensors(ctx, "FROM ("+strings.Join(parts, " UNION ALL ")+") GROUP BY h, ip", "0::BIGINT, false", args)
			if err != nil {
				return err
			}
			var groups []peba.SensorGroup
			for _, r := range rows {
				groups = append(groups, r.g)
			}
			lists = append(lists, groups)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if mkey != "" && mr.valid() {
		v := &memoSensors{lists: dayLists}
		mr.put(mkey, v, v.size())
	}
	s.saveSensorDays(ctx, epoch, fresh)
	if merged != nil {
		return merged, nil
	}
	return mergeSensors(lists), nil
}

// sensorRow is one row of a Sensors query: a group of one received day
// (UTC microseconds) and domain, or of the whole query (day 0).
type sensorRow struct {
	day       int64
	community bool
	g         peba.SensorGroup
	keys      int64 // the rollup or raw rows aggregated into g
}

// aggregateSensors aggregates rows (h, ip, peer_ident, peer_type, c) into
// groups: from is the query's FROM clause on, by (h, ip) or by (t, community,
// h, ip), and dayCols the SQL of the day (UTC microseconds) and community
// columns. The identifiers and types of a group come as one string each,
// joined by U+0001: aggregating the 44k rows of a day of the benchmark data
// into strings cost a third of list_distinct(list(...)) and its transfer as
// Go lists. Go removes the repetitions (of several days, domains and raw
// rows) and sorts (an ORDER BY cost more). U+0001 cannot come from EWS
// (XML), but from JSON imports: a value that contains it splits into more
// items than the group has rows, and then the query is repeated with
// "<bytes>:<value>" items, which take twice as long.
func (s *Store) aggregateSensors(ctx context.Context, from, dayCols string, args []any) ([]sensorRow, error) {
	out, clean, err := s.querySensors(ctx, "SELECT "+dayCols+", h, ip, string_agg(peer_ident, chr(1)), string_agg(peer_type, chr(1)), sum(c)::BIGINT, count(*) "+from,
		args, splitItems)
	if err == nil && !clean {
		const item = "strlen(%[1]s)::VARCHAR || ':' || %[1]s"
		out, _, err = s.querySensors(ctx, "SELECT "+dayCols+", h, ip, string_agg("+fmt.Sprintf(item, "peer_ident")+", ''), string_agg("+
			fmt.Sprintf(item, "peer_type")+", ''), sum(c)::BIGINT, -count(*) "+from, args, lengthItems)
	}
	return out, err
}

// querySensors runs a Sensors query whose columns are the day and domain,
// the group, its identifiers and types as strings that parse splits, the
// count, and the number of rows aggregated, which each string must split
// into (negative: do not check); clean is false if one did not.
func (s *Store) querySensors(ctx context.Context, q string, args []any, parse func(s string, repetitive bool) ([]string, int, error)) (out []sensorRow, clean bool, err error) {
	rows, err := s.q(ctx).QueryContext(ctx, q, args...)
	if err != nil {
		return nil, false, fmt.Errorf("cannot query sensors: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			r            sensorRow
			idents, typs string
			ni, nt       int
		)
		if err := rows.Scan(&r.day, &r.community, &r.g.Hostname, &r.g.TargetIP, &idents, &typs, &r.g.Count, &r.keys); err != nil {
			return nil, false, fmt.Errorf("cannot scan sensors: %w", err)
		}
		if r.g.PeerIdent, ni, err = parse(idents, false); err != nil {
			return nil, false, err
		}
		if r.g.PeerType, nt, err = parse(typs, true); err != nil {
			return nil, false, err
		}
		if r.keys < 0 {
			r.keys = -r.keys
		} else if int64(ni) != r.keys || int64(nt) != r.keys {
			return nil, false, nil
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("cannot query sensors: %w", err)
	}
	return out, true, nil
}

// mergeSensors merges lists of groups (each with distinct sorted
// identifiers and types) into one, ordered by Hostname then TargetIP.
func mergeSensors(lists [][]peba.SensorGroup) []peba.SensorGroup {
	var out []peba.SensorGroup
	if len(lists) == 1 {
		out = lists[0]
	} else {
		type key struct{ h, ip string }
		at := map[key]int{}
		for _, l := range lists {
			for _, g := range l {
				i, ok := at[key{g.Hostname, g.TargetIP}]
				if !ok {
					at[key{g.Hostname, g.TargetIP}] = len(out)
					out = append(out, g)
					continue
				}
				m := &out[i]
				m.Count += g.Count
				m.PeerIdent = unionSorted(m.PeerIdent, g.PeerIdent)
				m.PeerType = unionSorted(m.PeerType, g.PeerType)
			}
		}
	}
	sortSensors(out)
	return out
}

// sortSensors orders groups by Hostname, then TargetIP.
func sortSensors(groups []peba.SensorGroup) {
	slices.SortFunc(groups, func(a, b peba.SensorGroup) int {
		return cmp.Or(strings.Compare(a.Hostname, b.Hostname), strings.Compare(a.TargetIP, b.TargetIP))
	})
}

// unionSorted returns the distinct values of a and b, two sorted lists of
// distinct values, sorted, in a new slice (a may be shared with a caller's
// list).
func unionSorted(a, b []string) []string {
	out := make([]string, 0, max(len(a), len(b)))
	for len(a) > 0 && len(b) > 0 {
		switch c := strings.Compare(a[0], b[0]); {
		case c < 0:
			out, a = append(out, a[0]), a[1:]
		case c > 0:
			out, b = append(out, b[0]), b[1:]
		default:
			out, a, b = append(out, a[0]), a[1:], b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// splitItems splits a string of values joined by U+0001 and returns the
// distinct values sorted in byte order, and how many there were. Values
// that repeat a lot (types: 75 items of 18 values per group on the
// benchmark data) are cheaper to drop with a map before sorting; mostly
// distinct ones (identifiers) to sort directly.
func splitItems(s string, repetitive bool) ([]string, int, error) {
	out := strings.Split(s, "\x01")
	n := len(out)
	if repetitive && n > 8 {
		seen := make(map[string]struct{}, 16)
		for _, v := range out {
			seen[v] = struct{}{}
		}
		out = out[:0]
		for v := range seen {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), n, nil
}

// lengthItems parses a string of "<bytes>:<value>" items and returns the
// distinct values sorted in byte order, and how many there were.
func lengthItems(s string, _ bool) ([]string, int, error) {
	var out []string
	for s != "" {
		n, rest, ok := strings.Cut(s, ":")
		size, err := strconv.Atoi(n)
		if !ok || err != nil || size < 0 || size > len(rest) {
			return nil, 0, fmt.Errorf("cannot scan sensors: malformed item list")
		}
		out, s = append(out, rest[:size]), rest[size:]
	}
	n := len(out)
	slices.Sort(out)
	return slices.Compact(out), n, nil
}

// memoSensors is what the memo keeps of Sensors of closed days: the
// groups of each day and domain.
type memoSensors struct{ lists [][]peba.SensorGroup }

func (m *memoSensors) size() int {
	n := 64
	for _, l := range m.lists {
		for _, g := range l {
			n += 96 + len(g.Hostname) + len(g.TargetIP)
			for _, x := range g.PeerIdent {
				n += 16 + len(x)
			}
			for _, x := range g.PeerType {
				n += 16 + len(x)
			}
		}
	}
	return n
}
