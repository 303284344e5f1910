package duckdb

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/peba-go/peba"
)

var _ peba.Stats = (*Store)(nil)

// Count, Top and Series answer the whole buckets of a window from the
// rollup tables (rollups.go) and only its partial edges from the raw events
// (see plan); their answers equal the raw-table ones exactly, which
// TestRollupsMatchRaw checks through the unexported variants that take
// useRollups. Latest and Sensors read the raw events. All reads go through
// the pool (s.db), never the writer connection, so statistics never wait
// for an append.

// timeColumn returns the events column that f filters on (peba.md §3: most
// endpoints use recievedTime, a few createTime).
func timeColumn(f peba.TimeField) (string, error) {
	switch f {
	case peba.Received:
		return "received_time", nil
	case peba.Created:
		return "create_time", nil
	}
	return "", peba.Errorf(peba.EINVALID, "invalid time field %d", f)
}

// windowWhere returns the WHERE clause (with leading " WHERE ") and arguments
// selecting w's events from a table whose time column is col ("events", or a
// rollup table with col "t": both have the community and peer_type
// columns). none is true when w selects no event at all because it names no
// known domain: an empty domain set means "none", never "all", so that a
// caller that forgot the caller's entitlements shows nothing.
func windowWhere(w peba.Window, col string, extra ...string) (clause string, args []any, none bool) {
	var community, private bool
	for _, d := range w.Domains {
		community = community || d == peba.DomainCommunity
		private = private || d == peba.DomainPrivate
	}
	conds := slices.Clone(extra)
	switch {
	case community && private:
	case community:
		conds = append(conds, "community")
	case private:
		conds = append(conds, "NOT community")
	default:
		return "", nil, true
	}
	// [From, To), bound as UTC microseconds like the stored values (peba.md
	// §2.7: all times are UTC).
	if !w.From.IsZero() {
		conds, args = append(conds, col+" >= ?"), append(args, dbTime(w.From))
	}
	if !w.To.IsZero() {
		conds, args = append(conds, col+" < ?"), append(args, dbTime(w.To))
	}
	if w.PeerType != "" {
		conds, args = append(conds, "peer_type = ?"), append(args, w.PeerType)
	}
	if len(conds) == 0 {
		return "", nil, false
	}
	return " WHERE " + strings.Join(conds, " AND "), args, false
}

// keyCols are the SQL expressions of a group's key: k and l (Bucket.Key and
// Label of the text dims), lat and lon (the location dims). A dim uses
// either the text pair or the coordinates; the others are constants.
type keyCols struct{ k, l, lat, lon string }

// rollupCols are the key columns of the rollup tables.
var rollupCols = keyCols{"k", "l", "lat", "lon"}

// rawCols returns the key expressions over events for dim, the same values
// rollupKeyOf stores. Locations are formatted in Go (locKey), because
// DuckDB's DOUBLE-to-text cast is not Go's shortest 'g' form that
// peba.DimSrcLocation promises; adding 0 makes -0 one key with +0.
func rawCols(dim peba.Dim) (keyCols, bool) {
	const z = "0::DOUBLE"
	switch dim {
	case peba.DimNone:
		return keyCols{"''", "''", z, z}, true
	case peba.DimPeerType:
		return keyCols{"peer_type", "''", z, z}, true
	case peba.DimSrcIP:
		return keyCols{"src_ip", "''", z, z}, true
	case peba.DimSrcCountry:
		return keyCols{"src_country", "src_country_name", z, z}, true
	case peba.DimDstCountry:
		return keyCols{"dst_country", "dst_country_name", z, z}, true
	case peba.DimSrcLocation:
		return keyCols{"''", "''", "src_lat + 0", "src_lon + 0"}, true
	case peba.DimDstLocation:
		return keyCols{"''", "''", "dst_lat + 0", "dst_lon + 0"}, true
	case peba.DimURL:
		return keyCols{"url", "''", z, z}, true
	case peba.DimDstPort:
		// NULL is peba.NoPort, whose key is "".
		return keyCols{"coalesce(CAST(dst_port AS VARCHAR), '')", "''", z, z}, true
	}
	return keyCols{}, false
}

func isLocation(d peba.Dim) bool { return d == peba.DimSrcLocation || d == peba.DimDstLocation }

// locKey formats a location key. Adding 0 turns -0 into 0, so that both
// zeros (equal in SQL) give one key.
func locKey(lat, lon float64) string {
	return strconv.FormatFloat(lat+0, 'g', -1, 64) + "," + strconv.FormatFloat(lon+0, 'g', -1, 64)
}

// segment is a part of a window answered from one source: the rollup r
// (its buckets lie wholly inside [from, to)), or the raw events if r is nil.
// A zero bound is unbounded.
type segment struct {
	r        *rollup
	from, to time.Time
}

// plan splits [w.From, w.To) into segments: the widest rollup that has dim
// on w's time field covers the whole buckets, narrower ones the whole
// buckets of the remaining edges, and the raw events the partial buckets
// left (storage-bakeoff.md "Second pass"; received and create times are
// nearly sorted, so zone maps keep the raw edge scans short). Only rollups
// whose granularity divides maxGran are used (a Series of 6h buckets cannot
// use day rows), and only rollups that keep the peer type when w has one.
// useRollups false plans the raw events only, to check
// rollup answers against. An empty window gives no segments.
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

// source returns a query over the events of w counted per key of dim,
// with columns k, l, lat, lon, c (and t, the hour or day bucket start, if
// withTime), as the UNION ALL of the segments of plan. keys, if not nil,
// is an extra condition on the key columns with %[1]s..%[4]s standing for
// k, l, lat, lon, and its arguments. ok is false when the window selects
// nothing.
func source(w peba.Window, dim peba.Dim, maxGran time.Duration, withTime, useRollups bool, keyCond string, keyArgs []any) (q string, args []any, ok bool, err error) {
	col, err := timeColumn(w.Field)
	if err != nil {
		return "", nil, false, err
	}
	rc, valid := rawCols(dim)
	if !valid {
		return "", nil, false, peba.Errorf(peba.EINVALID, "invalid dimension %d", dim)
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
		var extra []string
		if seg.r != nil {
			kc, tcol, table, cnt = rollupCols, "t", seg.r.table, "sum(cnt)"
			extra = append(extra, "dim = "+strconv.Itoa(int(rollupDim)))
		}
		if dim == peba.DimNone {
			// Totals: the key columns of the peer-type rows are dropped.
			kc = keyCols{"''", "''", "0::DOUBLE", "0::DOUBLE"}
		}
		if keyCond != "" {
			extra = append(extra, fmt.Sprintf(keyCond, kc.k, kc.l, kc.lat, kc.lon))
		}
		where, wargs, none := windowWhere(sw, tcol, extra...)
		if none {
			return "", nil, false, nil
		}
		if keyCond != "" {
			// windowWhere puts extra first, so the key arguments come first.
			wargs = append(slices.Clone(keyArgs), wargs...)
		}
		sel := kc.k + " AS k, " + kc.l + " AS l, " + kc.lat + " AS lat, " + kc.lon + " AS lon, " + cnt + "::BIGINT AS c"
		if withTime {
			// Raw rows are counted per hour, the finest rollup bucket.
			sel = "date_trunc('hour', " + tcol + ") AS t, " + sel
		}
		parts = append(parts, "SELECT "+sel+" FROM "+table+where+" GROUP BY ALL")
		args = append(args, wargs...)
	}
	if len(parts) == 0 {
		return "", nil, false, nil
	}
	return "(" + strings.Join(parts, " UNION ALL ") + ")", args, true, nil
}

// Count implements peba.Stats: the number of events in w.
func (s *Store) Count(ctx context.Context, w peba.Window) (int64, error) {
	return s.count(ctx, w, true)
}

func (s *Store) count(ctx context.Context, w peba.Window, useRollups bool) (int64, error) {
	src, args, ok, err := source(w, peba.DimNone, 24*time.Hour, false, useRollups, "", nil)
	if err != nil || !ok {
		return 0, err
	}
	var n int64
	if err := s.db.QueryRowContext(ctx, "SELECT coalesce(sum(c), 0)::BIGINT FROM "+src, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("cannot count events: %w", err)
	}
	return n, nil
}

// Top implements peba.Stats. Keys are ordered by count descending, then by
// key ascending in byte order (so DimDstPort "2222" sorts before "445").
// For the country dims, Label is the country name that occurs most often
// with the code in w, ties broken by the smaller name (PEBA took the name
// of one top hit, §3.13; a code can carry several names across GeoIP
// database versions). DimNone is EINVALID.
func (s *Store) Top(ctx context.Context, w peba.Window, dim peba.Dim, limit int) ([]peba.Bucket, error) {
	return s.top(ctx, w, dim, limit, true)
}

func (s *Store) top(ctx context.Context, w peba.Window, dim peba.Dim, limit int, useRollups bool) ([]peba.Bucket, error) {
	if dim == peba.DimNone {
		return nil, peba.Errorf(peba.EINVALID, "invalid dimension %d", dim)
	}
	src, args, ok, err := source(w, dim, 24*time.Hour, false, useRollups, "", nil)
	if err != nil || !ok {
		return nil, err
	}
	if isLocation(dim) {
		return s.topLocations(ctx, src, args, limit)
	}
	q := "SELECT k, first(l ORDER BY c DESC, l), sum(c)::BIGINT AS n FROM (SELECT k, l, sum(c) AS c FROM " +
		src + " GROUP BY k, l) GROUP BY k ORDER BY n DESC, k"
	if limit > 0 {
		q += " LIMIT ?"
		args = append(args, limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot query top values: %w", err)
	}
	defer rows.Close()
	var out []peba.Bucket
	for rows.Next() {
		var b peba.Bucket
		if err := rows.Scan(&b.Key, &b.Label, &b.Count); err != nil {
			return nil, fmt.Errorf("cannot scan top values: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot query top values: %w", err)
	}
	return out, nil
}

// topLocations groups by coordinates in SQL and orders by the formatted key
// in Go. The number of distinct coordinates is bounded by the GeoIP
// database's locations, not by the number of events.
func (s *Store) topLocations(ctx context.Context, src string, args []any, limit int) ([]peba.Bucket, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT lat, lon, sum(c)::BIGINT FROM "+src+" GROUP BY ALL", args...)
	if err != nil {
		return nil, fmt.Errorf("cannot query top locations: %w", err)
	}
	defer rows.Close()
	counts := map[string]int64{}
	for rows.Next() {
		var la, lo float64
		var n int64
		if err := rows.Scan(&la, &lo, &n); err != nil {
			return nil, fmt.Errorf("cannot scan top locations: %w", err)
		}
		counts[locKey(la, lo)] += n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot query top locations: %w", err)
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

// bucketExprs maps the supported Series widths to the SQL bucket start of a
// time column %[1]s. All are aligned to UTC midnight, so a 6h bucket is day
// start + floor(hour/6)*6h, never an epoch-aligned interval. Applied to an
// hour or day bucket start, each gives the bucket that hour or day lies in.
var bucketExprs = map[time.Duration]string{
	time.Hour:      "date_trunc('hour', %[1]s)",
	6 * time.Hour:  "date_trunc('day', %[1]s) + to_hours((hour(%[1]s) // 6) * 6)",
	24 * time.Hour: "date_trunc('day', %[1]s)",
}

// Series implements peba.Stats. Points are ordered by Start, then Key (byte
// order). A dim other than DimNone with no keys gives no points: "only those
// keys" of an empty set. Widths other than 1h, 6h and 24h are EINVALID.
// Keys that no event has simply produce no points.
func (s *Store) Series(ctx context.Context, w peba.Window, width time.Duration, dim peba.Dim, keys []string) ([]peba.Point, error) {
	return s.series(ctx, w, width, dim, keys, true)
}

func (s *Store) series(ctx context.Context, w peba.Window, width time.Duration, dim peba.Dim, keys []string, useRollups bool) ([]peba.Point, error) {
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
	var cond string
	var cargs []any
	if dim != peba.DimNone {
		cond, cargs = "%[1]s IN (SELECT unnest(?::VARCHAR[]))", []any{keys}
	}
	src, args, ok, err := source(w, dim, width, true, useRollups, cond, cargs)
	if err != nil || !ok {
		return nil, err
	}
	q := "SELECT " + bucket + " AS b, k, sum(c)::BIGINT FROM " + src + " GROUP BY b, k ORDER BY b, k"
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot query series: %w", err)
	}
	defer rows.Close()
	var out []peba.Point
	for rows.Next() {
		var p peba.Point
		if err := rows.Scan(&p.Start, &p.Key, &p.Count); err != nil {
			return nil, fmt.Errorf("cannot scan series: %w", err)
		}
		p.Start = p.Start.UTC()
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot query series: %w", err)
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
		a, b, ok := strings.Cut(k, ",")
		la, err1 := strconv.ParseFloat(a, 64)
		lo, err2 := strconv.ParseFloat(b, 64)
		if !ok || err1 != nil || err2 != nil {
			continue // cannot match any stored location
		}
		want[k] = true
		lats, lons = append(lats, la), append(lons, lo)
	}
	if len(want) == 0 {
		return nil, nil
	}
	cond := "list_contains(?::DOUBLE[], %[3]s) AND list_contains(?::DOUBLE[], %[4]s)"
	src, args, ok, err := source(w, dim, width, true, useRollups, cond, []any{lats, lons})
	if err != nil || !ok {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, "SELECT "+bucket+" AS b, lat, lon, sum(c)::BIGINT FROM "+src+" GROUP BY ALL", args...)
	if err != nil {
		return nil, fmt.Errorf("cannot query location series: %w", err)
	}
	defer rows.Close()
	type pk struct {
		start time.Time
		key   string
	}
	counts := map[pk]int64{}
	for rows.Next() {
		var (
			start  time.Time
			la, lo float64
			n      int64
		)
		if err := rows.Scan(&start, &la, &lo, &n); err != nil {
			return nil, fmt.Errorf("cannot scan location series: %w", err)
		}
		if k := locKey(la, lo); want[k] {
			counts[pk{start.UTC(), k}] += n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot query location series: %w", err)
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
// now when unbounded), before it reads the whole window: the newest rows
// of a busy store lie in the first one, and a short range lets zone maps
// skip every other row group instead of sorting the whole table.
var latestSpans = []time.Duration{time.Hour, 8 * time.Hour, 64 * time.Hour, 512 * time.Hour}

// Latest implements peba.Stats. Ties on the time field are ordered by id, as
// FindEvents does, so results are stable. limit <= 0 gives no events (an
// unbounded "latest" would read the whole window). An IPv4-mapped src matches
// the IPv4 address, because decoders store sources unmapped (peba.Event).
//
// It reads [hi-span, w.To) for growing spans and stops at the first that
// holds limit events: every event left out is older than all of those, so
// the answer is the one of the whole window. With src it reads the whole
// window at once.
func (s *Store) Latest(ctx context.Context, w peba.Window, src netip.Addr, limit int) ([]peba.Event, error) {
	col, err := timeColumn(w.Field)
	if err != nil || limit <= 0 {
		return nil, err
	}
	var extra []string
	var srcArgs []any
	if src.IsValid() {
		extra, srcArgs = []string{"src_ip = ?"}, []any{src.Unmap().String()}
	}
	query := func(sw peba.Window) ([]peba.Event, error) {
		where, args, none := windowWhere(sw, col, extra...)
		if none {
			return nil, nil
		}
		// Two steps: the top-N over the two sort columns only, then the
		// whole rows of those IDs, found by zone maps on the time range.
		// One top-N over all 40 columns read every column of the range.
		rows, err := s.db.QueryContext(ctx, "SELECT "+col+", id FROM events"+where+" ORDER BY "+col+" DESC, id LIMIT ?",
			append(append(slices.Clone(srcArgs), args...), limit)...)
		if err != nil {
			return nil, fmt.Errorf("cannot query latest events: %w", err)
		}
		defer rows.Close()
		var ids []string
		var lo, hi time.Time
		for rows.Next() {
			var t time.Time
			var id string
			if err := rows.Scan(&t, &id); err != nil {
				return nil, fmt.Errorf("cannot query latest events: %w", err)
			}
			if len(ids) == 0 {
				hi = t
			}
			lo = t
			ids = append(ids, id)
		}
		if err := rows.Err(); err != nil || len(ids) == 0 {
			return nil, err
		}
		q := "SELECT " + eventColumns + " FROM events WHERE " + col + " BETWEEN ? AND ? AND id IN (SELECT unnest(?::VARCHAR[]))" +
			" ORDER BY " + col + " DESC, id"
		out, err := s.queryEvents(ctx, q, lo, hi, ids)
		if err != nil {
			return nil, fmt.Errorf("cannot query latest events: %w", err)
		}
		return out, nil
	}
	if src.IsValid() {
		// Few events match one source: narrow time windows would mostly
		// come back short, each costing a scan of the src_ip column.
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

// Sensors implements peba.Stats (peba.md §7.1). Events whose hostname is
// "undefined" (PEBA's default, older T-Pots) or empty are grouped by target
// address; PEBA grouped "" under hostname "" instead, which SensorGroup
// cannot express. PeerIdent and PeerType are distinct and sorted in byte
// order, and not capped at 10 as PEBA's sub-aggregations were. Groups are
// ordered by Hostname then TargetIP, so the address groups come first.
func (s *Store) Sensors(ctx context.Context, w peba.Window) ([]peba.SensorGroup, error) {
	col, err := timeColumn(w.Field)
	if err != nil {
		return nil, err
	}
	where, args, none := windowWhere(w, col)
	if none {
		return nil, nil
	}
	const old = "hostname IN ('', 'undefined')"
	q := "SELECT CASE WHEN " + old + " THEN '' ELSE hostname END AS h, " +
		"CASE WHEN " + old + " THEN dst_ip ELSE '' END AS ip, " +
		"list_distinct(list(peer_ident)), list_distinct(list(peer_type)), count(*) " +
		"FROM events" + where + " GROUP BY h, ip ORDER BY h, ip"
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot query sensors: %w", err)
	}
	defer rows.Close()
	var out []peba.SensorGroup
	for rows.Next() {
		var (
			g            peba.SensorGroup
			idents, typs []any
		)
		if err := rows.Scan(&g.Hostname, &g.TargetIP, &idents, &typs, &g.Count); err != nil {
			return nil, fmt.Errorf("cannot scan sensors: %w", err)
		}
		if g.PeerIdent, err = sortedStrings(idents); err != nil {
			return nil, err
		}
		if g.PeerType, err = sortedStrings(typs); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot query sensors: %w", err)
	}
	return out, nil
}

// sortedStrings converts a scanned VARCHAR list and sorts it in byte order
// (DuckDB's list order is unspecified).
func sortedStrings(l []any) ([]string, error) {
	out := make([]string, len(l))
	for i, v := range l {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("cannot scan sensors: list element is %T, not string", v)
		}
		out[i] = s
	}
	slices.Sort(out)
	return out, nil
}
