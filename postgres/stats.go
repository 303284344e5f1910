package postgres

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/peba-go/peba"
)

// Count, Top and Series answer the whole buckets of a window from the
// rollup tables (rollups.go) and only its partial edges from the raw
// events, as the DuckDB store does (plan and split are its port); their
// answers equal the raw-table ones exactly, which TestRollupsMatchRaw
// checks through the unexported variants that take useRollups. Latest and
// Sensors read the raw events.
//
// Every key comparison and ORDER BY on text is in byte order: the columns
// are COLLATE "C", and literals are given COLLATE "C" too (the empty-key
// constant c0), so that UNION ALL of rollup rows and raw rows keeps it.

// c0 is the empty text key, of the columns' collation.
const c0 = `''::text COLLATE "C"`

// timeColumn returns the events column that f filters on (peba.md §3).
func timeColumn(f peba.TimeField) (string, error) {
	switch f {
	case peba.Received:
		return "received_time", nil
	case peba.Created:
		return "create_time", nil
	}
	return "", peba.Errorf(peba.EINVALID, "invalid time field %d", f)
}

// windowConds returns the conditions selecting w's events from a table
// whose time column is col ("events", or a rollup table with col "t": both
// have the community and peer_type columns), adding parameters to a. none
// is true when w names no domain: an empty domain set means "none", never
// "all", so that a caller that forgot the entitlements shows nothing.
func windowConds(w peba.Window, col string, a *args) (conds []string, none bool) {
	var community, private bool
	for _, d := range w.Domains {
		community = community || d == peba.DomainCommunity
		private = private || d == peba.DomainPrivate
	}
	switch {
	case community && private:
	case community:
		conds = append(conds, "community")
	case private:
		conds = append(conds, "NOT community")
	default:
		return nil, true
	}
	if !w.From.IsZero() {
		conds = append(conds, col+" >= "+a.add(dbTime(w.From)))
	}
	if !w.To.IsZero() {
		conds = append(conds, col+" < "+a.add(dbTime(w.To)))
	}
	if w.PeerType != "" {
		conds = append(conds, "peer_type = "+a.add(escText(w.PeerType)))
	}
	return conds, false
}

func whereClause(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// keyCols are the SQL expressions of a group's key: k and l (Bucket.Key
// and Label of the text dims), lat and lon (the location dims).
type keyCols struct{ k, l, lat, lon string }

var rollupCols = keyCols{"k", "l", "lat", "lon"}

// rawCols returns the key expressions over events for dim, the same values
// rollupKeyOf stores. Locations are formatted in Go (locKey); adding 0
// makes -0 one key with +0.
func rawCols(dim peba.Dim) (keyCols, bool) {
	const z = "0::float8"
	switch dim {
	case peba.DimNone:
		return keyCols{c0, c0, z, z}, true
	case peba.DimPeerType:
		return keyCols{"peer_type", c0, z, z}, true
	case peba.DimSrcIP:
		return keyCols{"src_ip", c0, z, z}, true
	case peba.DimSrcCountry:
		return keyCols{"src_country", "src_country_name", z, z}, true
	case peba.DimDstCountry:
		return keyCols{"dst_country", "dst_country_name", z, z}, true
	case peba.DimSrcLocation:
		return keyCols{c0, c0, "src_lat + 0", "src_lon + 0"}, true
	case peba.DimDstLocation:
		return keyCols{c0, c0, "dst_lat + 0", "dst_lon + 0"}, true
	case peba.DimURL:
		return keyCols{"url", c0, z, z}, true
	case peba.DimDstPort:
		// NULL is peba.NoPort, whose key is "".
		return keyCols{`coalesce(dst_port::text, '') COLLATE "C"`, c0, z, z}, true
	}
	return keyCols{}, false
}

func isLocation(d peba.Dim) bool { return d == peba.DimSrcLocation || d == peba.DimDstLocation }

// locKey formats a location key. Adding 0 turns -0 into 0.
func locKey(lat, lon float64) string {
	return strconv.FormatFloat(lat+0, 'g', -1, 64) + "," + strconv.FormatFloat(lon+0, 'g', -1, 64)
}

// segment is a part of a window answered from one source: the rollup r
// (its buckets lie wholly inside [from, to)), or the raw events if r is
// nil. A zero bound is unbounded.
type segment struct {
	r        *rollup
	from, to time.Time
}

// plan splits [w.From, w.To) into segments: the widest rollup that has dim
// on w's time field covers the whole buckets, narrower ones the whole
// buckets of the remaining edges, and the raw events the partial buckets
// left. Only rollups whose granularity divides maxGran are used, and only
// rollups that keep the peer type when w has one. useRollups false plans
// the raw events only. An empty window gives no segments.
func plan(w peba.Window, dim peba.Dim, maxGran time.Duration, useRollups bool) []segment {
	from, to := w.From, w.To
	if !from.IsZero() {
		from = dbTime(from)
	}
	if !to.IsZero() {
		to = dbTime(to)
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return nil
	}
	var cands []*rollup
	for i := range rollups {
		r := &rollups[i]
		if useRollups && r.field == w.Field && r.has(dim) && maxGran%r.gran == 0 && (w.PeerType == "" || typed(dim)) {
			cands = append(cands, r)
		}
	}
	slices.SortFunc(cands, func(a, b *rollup) int { return int(b.gran - a.gran) })
	return split(from, to, cands, nil)
}

// split appends the segments of [from, to) to segs (see plan); cands are
// ordered by granularity, widest first.
func split(from, to time.Time, cands []*rollup, segs []segment) []segment {
	if len(cands) == 0 {
		return append(segs, segment{nil, from, to})
	}
	g := cands[0].gran
	a, b := from, to // the whole buckets [a, b); zero is unbounded
	if !a.IsZero() {
		if a = a.Truncate(g); a.Before(from) {
			a = a.Add(g)
		}
	}
	if !b.IsZero() {
		b = b.Truncate(g)
	}
	if !a.IsZero() && !b.IsZero() && !a.Before(b) {
		return split(from, to, cands[1:], segs)
	}
	if !from.Equal(a) {
		segs = split(from, a, cands[1:], segs)
	}
	segs = append(segs, segment{cands[0], a, b})
	if !to.Equal(b) {
		segs = split(b, to, cands[1:], segs)
	}
	return segs
}

// keyCond builds an extra condition on a segment's key columns, adding its
// parameters to a.
type keyCond func(kc keyCols, a *args) string

// source returns a query over the events of w counted per key of dim,
// with columns k, l, lat, lon, c (and t, the hour bucket start, first, if
// withTime), as the UNION ALL of the segments of plan. ok is false when
// the window selects nothing.
func source(w peba.Window, dim peba.Dim, maxGran time.Duration, withTime, useRollups bool, kcond keyCond, a *args) (q string, ok bool, err error) {
	col, err := timeColumn(w.Field)
	if err != nil {
		return "", false, err
	}
	rc, valid := rawCols(dim)
	if !valid {
		return "", false, peba.Errorf(peba.EINVALID, "invalid dimension %d", dim)
	}
	rollupDim := dim
	if dim == peba.DimNone {
		rollupDim = peba.DimPeerType
	}
	var parts []string
	for _, seg := range plan(w, dim, maxGran, useRollups) {
		sw := w
		sw.From, sw.To = seg.from, seg.to
		kc, tcol, table, cnt := rc, col, "events", "count(*)"
		var conds []string
		if seg.r != nil {
			kc, tcol, table, cnt = rollupCols, "t", seg.r.table, "sum(cnt)::bigint"
			conds = append(conds, "dim = "+strconv.Itoa(int(rollupDim)))
		}
		if dim == peba.DimNone {
			// Totals: the key columns of the peer-type rows are dropped.
			kc = keyCols{c0, c0, "0::float8", "0::float8"}
		}
		if kcond != nil {
			conds = append(conds, kcond(kc, a))
		}
		wc, none := windowConds(sw, tcol, a)
		if none {
			return "", false, nil
		}
		conds = append(conds, wc...)
		sel := kc.k + " AS k, " + kc.l + " AS l, " + kc.lat + " AS lat, " + kc.lon + " AS lon, " + cnt + " AS c"
		group := "1, 2, 3, 4"
		if withTime {
			// Raw rows are counted per hour, the finest rollup bucket.
			sel = "date_trunc('hour', " + tcol + ") AS t, " + sel
			group = "1, 2, 3, 4, 5"
		}
		parts = append(parts, "SELECT "+sel+" FROM "+table+whereClause(conds)+" GROUP BY "+group)
	}
	if len(parts) == 0 {
		return "", false, nil
	}
	return "(" + strings.Join(parts, " UNION ALL ") + ") src", true, nil
}

// Count implements peba.Stats: the number of events in w.
func (s *Store) Count(ctx context.Context, w peba.Window) (int64, error) {
	return s.count(ctx, w, true)
}

func (s *Store) count(ctx context.Context, w peba.Window, useRollups bool) (int64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	var a args
	src, ok, err := source(w, peba.DimNone, 24*time.Hour, false, useRollups, nil, &a)
	if err != nil || !ok {
		return 0, err
	}
	var n int64
	if err := s.pool.QueryRow(ctx, "SELECT coalesce(sum(c), 0)::bigint FROM "+src, a...).Scan(&n); err != nil {
		return 0, fmt.Errorf("cannot count events: %w", err)
	}
	return n, nil
}

// Top implements peba.Stats. Keys are ordered by count descending, then by
// key ascending in byte order. For the country dims, Label is the country
// name that occurs most often with the code in w, ties broken by the
// smaller name. DimNone is EINVALID.
func (s *Store) Top(ctx context.Context, w peba.Window, dim peba.Dim, limit int) ([]peba.Bucket, error) {
	return s.top(ctx, w, dim, limit, true)
}

func (s *Store) top(ctx context.Context, w peba.Window, dim peba.Dim, limit int, useRollups bool) ([]peba.Bucket, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if dim == peba.DimNone {
		return nil, peba.Errorf(peba.EINVALID, "invalid dimension %d", dim)
	}
	var a args
	src, ok, err := source(w, dim, 24*time.Hour, false, useRollups, nil, &a)
	if err != nil || !ok {
		return nil, err
	}
	if isLocation(dim) {
		return s.topLocations(ctx, src, a, limit)
	}
	q := `SELECT k, (array_agg(l ORDER BY c DESC, l))[1], sum(c)::bigint AS n FROM
		(SELECT k, l, sum(c) AS c FROM ` + src + ` GROUP BY k, l) g GROUP BY k ORDER BY n DESC, k`
	if limit > 0 {
		q += " LIMIT " + a.add(int64(limit))
	}
	rows, err := s.pool.Query(ctx, q, a...)
	if err != nil {
		return nil, fmt.Errorf("cannot query top values: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (peba.Bucket, error) {
		var b peba.Bucket
		err := r.Scan(&b.Key, &b.Label, &b.Count)
		b.Key, b.Label = unescText(b.Key), unescText(b.Label)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("cannot query top values: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// topLocations groups by coordinates in SQL and orders by the formatted
// key in Go.
func (s *Store) topLocations(ctx context.Context, src string, a args, limit int) ([]peba.Bucket, error) {
	rows, err := s.pool.Query(ctx, "SELECT lat, lon, sum(c)::bigint FROM "+src+" GROUP BY 1, 2", a...)
	if err != nil {
		return nil, fmt.Errorf("cannot query top locations: %w", err)
	}
	counts := map[string]int64{}
	var (
		la, lo float64
		n      int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&la, &lo, &n}, func() error {
		counts[locKey(la, lo)] += n
		return nil
	}); err != nil {
		return nil, fmt.Errorf("cannot query top locations: %w", err)
	}
	if len(counts) == 0 {
		return nil, nil
	}
	out := make([]peba.Bucket, 0, len(counts))
	for k, n := range counts {
		out = append(out, peba.Bucket{Key: k, Count: n})
	}
	slices.SortFunc(out, func(a, b peba.Bucket) int {
		if a.Count != b.Count {
			if a.Count > b.Count {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Key, b.Key)
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// bucketExprs maps the supported Series widths to the SQL bucket start of
// a time column %[1]s, aligned to UTC midnight (a 6h bucket is day start +
// floor(hour/6)*6h).
var bucketExprs = map[time.Duration]string{
	time.Hour:      "date_trunc('hour', %[1]s)",
	6 * time.Hour:  "date_trunc('day', %[1]s) + make_interval(hours => (extract(hour FROM %[1]s)::int / 6) * 6)",
	24 * time.Hour: "date_trunc('day', %[1]s)",
}

// Series implements peba.Stats. Points are ordered by Start, then Key
// (byte order). A dim other than DimNone with no keys gives no points.
// Widths other than 1h, 6h and 24h are EINVALID.
func (s *Store) Series(ctx context.Context, w peba.Window, width time.Duration, dim peba.Dim, keys []string) ([]peba.Point, error) {
	return s.series(ctx, w, width, dim, keys, true)
}

func (s *Store) series(ctx context.Context, w peba.Window, width time.Duration, dim peba.Dim, keys []string, useRollups bool) ([]peba.Point, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if _, err := timeColumn(w.Field); err != nil {
		return nil, err
	}
	bexpr, ok := bucketExprs[width]
	if !ok {
		return nil, peba.Errorf(peba.EINVALID, "invalid series width %s", width)
	}
	if _, ok := rawCols(dim); !ok {
		return nil, peba.Errorf(peba.EINVALID, "invalid dimension %d", dim)
	}
	if dim != peba.DimNone && len(keys) == 0 {
		return nil, nil
	}
	bucket := fmt.Sprintf(bexpr, "t")
	if isLocation(dim) {
		return s.seriesLocations(ctx, w, width, dim, bucket, keys, useRollups)
	}
	var kcond keyCond
	if dim != peba.DimNone {
		ek := escTexts(keys)
		kcond = func(kc keyCols, a *args) string { return kc.k + " = ANY(" + a.add(ek) + "::text[])" }
	}
	var a args
	src, ok, err := source(w, dim, width, true, useRollups, kcond, &a)
	if err != nil || !ok {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, "SELECT "+bucket+" AS b, k, sum(c)::bigint FROM "+src+" GROUP BY 1, 2 ORDER BY 1, 2", a...)
	if err != nil {
		return nil, fmt.Errorf("cannot query series: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (peba.Point, error) {
		var p peba.Point
		err := r.Scan(&p.Start, &p.Key, &p.Count)
		p.Start, p.Key = p.Start.UTC(), unescText(p.Key)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("cannot query series: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// seriesLocations narrows the scan in SQL to rows whose latitude and
// longitude each occur in some key (a superset of the wanted pairs), then
// keeps the exact keys in Go, where they are formatted as Top formats them.
func (s *Store) seriesLocations(ctx context.Context, w peba.Window, width time.Duration, dim peba.Dim, bucket string, keys []string, useRollups bool) ([]peba.Point, error) {
	want := map[string]bool{}
	var lats, lons []float64
	for _, k := range keys {
		x, y, ok := strings.Cut(k, ",")
		la, err1 := strconv.ParseFloat(x, 64)
		lo, err2 := strconv.ParseFloat(y, 64)
		if !ok || err1 != nil || err2 != nil {
			continue // cannot match any stored location
		}
		want[k] = true
		lats, lons = append(lats, la), append(lons, lo)
	}
	if len(want) == 0 {
		return nil, nil
	}
	kcond := func(kc keyCols, a *args) string {
		return kc.lat + " = ANY(" + a.add(lats) + "::float8[]) AND " + kc.lon + " = ANY(" + a.add(lons) + "::float8[])"
	}
	var a args
	src, ok, err := source(w, dim, width, true, useRollups, kcond, &a)
	if err != nil || !ok {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, "SELECT "+bucket+" AS b, lat, lon, sum(c)::bigint FROM "+src+" GROUP BY 1, 2, 3", a...)
	if err != nil {
		return nil, fmt.Errorf("cannot query location series: %w", err)
	}
	type pk struct {
		start time.Time
		key   string
	}
	counts := map[pk]int64{}
	var (
		start  time.Time
		la, lo float64
		n      int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&start, &la, &lo, &n}, func() error {
		if k := locKey(la, lo); want[k] {
			counts[pk{start.UTC(), k}] += n
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("cannot query location series: %w", err)
	}
	if len(counts) == 0 {
		return nil, nil
	}
	out := make([]peba.Point, 0, len(counts))
	for k, n := range counts {
		out = append(out, peba.Point{Start: k.start, Key: k.key, Count: n})
	}
	slices.SortFunc(out, func(a, b peba.Point) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out, nil
}

// latestSpans are the look-back windows Latest tries, ending at w.To (or
// now when unbounded), before it reads the whole window: created-time
// windows have only a BRIN index, and a short range keeps the sort small.
var latestSpans = []time.Duration{time.Hour, 8 * time.Hour, 64 * time.Hour, 512 * time.Hour}

// Latest implements peba.Stats. Ties on the time field are ordered by id,
// as FindEvents does. limit <= 0 gives no events. An IPv4-mapped src
// matches the IPv4 address, because decoders store sources unmapped.
func (s *Store) Latest(ctx context.Context, w peba.Window, src netip.Addr, limit int) ([]peba.Event, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	col, err := timeColumn(w.Field)
	if err != nil || limit <= 0 {
		return nil, err
	}
	query := func(sw peba.Window) ([]peba.Event, error) {
		var a args
		var conds []string
		if src.IsValid() {
			conds = append(conds, "src_ip = "+a.add(src.Unmap().String()))
		}
		wc, none := windowConds(sw, col, &a)
		if none {
			return nil, nil
		}
		conds = append(conds, wc...)
		q := "SELECT " + eventColumns + " FROM events" + whereClause(conds) + " ORDER BY " + col + " DESC, id LIMIT " + a.add(int64(limit))
		out, err := s.queryEvents(ctx, q, a)
		if err != nil {
			return nil, fmt.Errorf("cannot query latest events: %w", err)
		}
		return out, nil
	}
	if src.IsValid() || w.Field == peba.Received {
		// The src_ip index, or the received_time index read backwards,
		// finds the newest rows directly.
		return query(w)
	}
	hi := w.To
	if hi.IsZero() {
		hi = time.Now()
	}
	for _, span := range latestSpans {
		sw := w
		if sw.From = hi.Add(-span); !w.From.IsZero() && !sw.From.After(w.From) {
			break
		}
		if out, err := query(sw); err != nil || len(out) == limit {
			return out, err
		}
	}
	return query(w)
}

// Sensors implements peba.Stats (peba.md §7.1), as the DuckDB store does:
// events whose hostname is "undefined" or empty are grouped by target
// address; PeerIdent and PeerType are distinct and sorted in byte order;
// groups are ordered by Hostname then TargetIP.
func (s *Store) Sensors(ctx context.Context, w peba.Window) ([]peba.SensorGroup, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	col, err := timeColumn(w.Field)
	if err != nil {
		return nil, err
	}
	var a args
	conds, none := windowConds(w, col, &a)
	if none {
		return nil, nil
	}
	const old = "hostname IN ('', 'undefined')"
	q := "SELECT CASE WHEN " + old + " THEN '' ELSE hostname END AS h, " +
		"CASE WHEN " + old + " THEN dst_ip ELSE '' END AS ip, " +
		"array_agg(DISTINCT peer_ident), array_agg(DISTINCT peer_type), count(*) " +
		"FROM events" + whereClause(conds) + " GROUP BY 1, 2 ORDER BY 1, 2"
	rows, err := s.pool.Query(ctx, q, a...)
	if err != nil {
		return nil, fmt.Errorf("cannot query sensors: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (peba.SensorGroup, error) {
		var g peba.SensorGroup
		if err := r.Scan(&g.Hostname, &g.TargetIP, &g.PeerIdent, &g.PeerType, &g.Count); err != nil {
			return g, err
		}
		g.Hostname, g.TargetIP = unescText(g.Hostname), unescText(g.TargetIP)
		for _, l := range [][]string{g.PeerIdent, g.PeerType} {
			for i := range l {
				l[i] = unescText(l[i])
			}
			slices.Sort(l)
		}
		return g, nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot query sensors: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}
