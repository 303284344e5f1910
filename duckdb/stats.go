package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/internal/storerow"
)

var _ peba.Stats = (*Store)(nil)

// Count, Top, Series and Sensors answer the whole buckets of a window from
// the rollup tables (rollups.go) and only its partial edges from the raw
// events (see plan); Top and Series of the long-tail dims skip the rows
// with small counts when they can prove the answer without them
// (topheavy.go). Recent Counts and the newest events come from memory
// (recent.go), Latest of one source narrows its scan with the source index
// (srcindex.go). What was read of closed buckets is kept in the
// closed-bucket memo (memo.go), so that a request reads only the open
// tail of its window. Every answer equals the raw-table one exactly,
// which TestRollupsMatchRaw, TestHeavy, TestMemoMatchesRaw and
// TestRecentCache check through the unexported variants that read the
// events only. All reads go through the pool (s.db), never the writer
// connection, so statistics never wait for an append.

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
	conds := slices.Clone(extra)
	dc, none := domainCond(w.Domains)
	if none {
		return "", nil, true
	}
	if dc != "" {
		conds = append(conds, dc)
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

// domainCond returns the condition on the community column that selects
// ds ("" for both domains), or none true if ds names no known domain.
func domainCond(ds []peba.Domain) (cond string, none bool) {
	var community, private bool
	for _, d := range ds {
		community = community || d == peba.DomainCommunity
		private = private || d == peba.DomainPrivate
	}
	switch {
	case community && private:
		return "", false
	case community:
		return "community", false
	case private:
		return "NOT community", false
	}
	return "", true
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

// labeled reports whether the Buckets of d have labels (country names).
func labeled(d peba.Dim) bool { return d == peba.DimSrcCountry || d == peba.DimDstCountry }

func isLocation(d peba.Dim) bool { return d == peba.DimSrcLocation || d == peba.DimDstLocation }

// segment is a part of a window answered from one source: the rollup r
// (its buckets lie wholly inside [from, to)), or the raw events if r is nil.
// A zero bound is unbounded. A neg segment is subtracted (see cover).
type segment struct {
	r        *rollup
	from, to time.Time
	neg      bool
}

// plan splits [w.From, w.To) into segments: the widest rollup that has dim
// on w's time field covers the whole buckets, narrower ones the whole
// buckets of the remaining edges, and the raw events the partial buckets
// left (storage-bakeoff.md "Second pass"; received and create times are
// nearly sorted, so zone maps keep the raw edge scans short). Only rollups
// whose granularity divides maxGran are used (a Series of 6h buckets cannot
// use day rows), and only rollups that keep the peer type when w has one.
// useRollups false plans the raw events only, to check
// rollup answers against. An empty window gives no segments. A partial
// bucket at an edge may be read as the whole bucket minus the rest (cover).
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
	return cover(from, to, cands, false, time.Now(), nil)
}

// cover is split, except that a partial bucket of cands[0] at an edge of
// [from, to) is read as the whole bucket (one rollup row per key) minus
// the part of it outside the window (a neg segment, covered in turn by the
// narrower rollups and raw events) when that part is shorter than the part
// inside. Windows ending now are the common case: the month so far of
// topCountriesAttacks is the day rows of the month, today's included,
// minus the hours after now, which hold no events, so zone maps skip them,
// instead of today's hour rows and the raw events of this hour. The length
// of a part is counted up to now only, as later times rarely hold events.
// Counts stay exact (every bucket's rollup rows count its events), but a
// key can now sum to 0 over the segments: readers drop those.
func cover(from, to time.Time, cands []*rollup, neg bool, now time.Time, segs []segment) []segment {
	if len(cands) == 0 {
		return append(segs, segment{nil, from, to, neg})
	}
	r, g := cands[0], cands[0].gran
	a, b := from, to // the whole buckets [a, b); zero is unbounded
	if !a.IsZero() {
		if a = a.Truncate(g); a.Before(from) {
			a = a.Add(g)
		}
	}
	if !b.IsZero() {
		b = b.Truncate(g)
	}
	if !a.IsZero() && !b.IsZero() && a.After(b) {
		// [from, to) lies inside the bucket [b, a).
		if partLen(b, from, now)+partLen(to, a, now) < partLen(from, to, now) {
			segs = append(segs, segment{r, b, a, neg})
			segs = coverPart(b, from, cands[1:], !neg, now, segs)
			return coverPart(to, a, cands[1:], !neg, now, segs)
		}
		return cover(from, to, cands[1:], neg, now, segs)
	}
	lo, hi := a, b // what r reads: the whole buckets and the edges read whole
	if !from.Equal(a) {
		if p := a.Add(-g); partLen(p, from, now) < partLen(from, a, now) {
			lo = p
			segs = cover(p, from, cands[1:], !neg, now, segs)
		} else {
			segs = cover(from, a, cands[1:], neg, now, segs)
		}
	}
	if !to.Equal(b) {
		if q := b.Add(g); partLen(to, q, now) < partLen(b, to, now) {
			hi = q
			segs = cover(to, q, cands[1:], !neg, now, segs)
		} else {
			segs = cover(b, to, cands[1:], neg, now, segs)
		}
	}
	if lo.IsZero() || hi.IsZero() || lo.Before(hi) {
		segs = append(segs, segment{r, lo, hi, neg})
	}
	return segs
}

// coverPart is cover of a part that may be empty.
func coverPart(from, to time.Time, cands []*rollup, neg bool, now time.Time, segs []segment) []segment {
	if !from.Before(to) {
		return segs
	}
	return cover(from, to, cands, neg, now, segs)
}

// partLen is the length of [from, to) before now, the cost measure of
// cover.
func partLen(from, to, now time.Time) time.Duration {
	if to.After(now) {
		to = now
	}
	if !from.Before(to) {
		return 0
	}
	return to.Sub(from)
}

// split appends the segments of [from, to) to segs (see plan); cands are
// ordered by granularity, widest first.
func split(from, to time.Time, cands []*rollup, segs []segment) []segment {
	if len(cands) == 0 {
		return append(segs, segment{nil, from, to, false})
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
	segs = append(segs, segment{cands[0], a, b, false})
	if !to.Equal(b) {
		segs = split(b, to, cands[1:], segs)
	}
	return segs
}

// source returns a query over the events of w counted per key of dim,
// with columns k, l, lat, lon, c (and t, the hour or day bucket start, if
// withTime), as the UNION ALL of the segments of plan. The counts of the
// subtracted segments are negative: a key's counts sum to its count in w,
// which can be 0 (callers drop those). keys, if not nil,
// is an extra condition on the key columns with %[1]s..%[4]s standing for
// k, l, lat, lon, and its arguments. ok is false when the window selects
// nothing.
func source(w peba.Window, dim peba.Dim, maxGran time.Duration, withTime, useRollups bool, keyCond string, keyArgs []any) (q string, args []any, ok bool, err error) {
	if _, err := timeColumn(w.Field); err != nil {
		return "", nil, false, err
	}
	if _, valid := rawCols(dim); !valid {
		return "", nil, false, peba.Errorf(peba.EINVALID, "invalid dimension %d", dim)
	}
	return segmentsSQL(w, plan(w, dim, maxGran, useRollups), dim, withTime, false, keyCond, keyArgs)
}

// segmentsSQL is source of the segments segs (w's field and dim valid).
// With rawRows the raw events are not grouped: one row per event.
func segmentsSQL(w peba.Window, segs []segment, dim peba.Dim, withTime, rawRows bool, keyCond string, keyArgs []any) (q string, args []any, ok bool, err error) {
	col, _ := timeColumn(w.Field)
	rc, _ := rawCols(dim)
	rollupDim := dim
	if dim == peba.DimNone {
		rollupDim = peba.DimPeerType
	}
	var parts []string
	for _, seg := range segs {
		sw := w
		sw.From, sw.To = seg.from, seg.to
		kc, tcol, table, cnt, group := rc, col, "events", "count(*)", " GROUP BY ALL"
		tsel := "date_trunc('hour', " + col + ")" // raw rows are counted per hour, the finest rollup bucket
		if rawRows {
			cnt, group = "1", ""
		}
		var extra []string
		if seg.r != nil {
			// Rollup rows are passed on as they are: every caller groups
			// the union anyway, and a grouping per segment as well cost
			// about a third more CPU (topCountriesAttacks).
			kc, tcol, table, cnt, group, tsel = rollupCols, "t", seg.r.table, "cnt", "", "t"
			extra = append(extra, "dim = "+strconv.Itoa(int(rollupDim)))
		}
		if seg.neg {
			cnt = "-" + cnt
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
			sel = tsel + " AS t, " + sel
		}
		parts = append(parts, "SELECT "+sel+" FROM "+table+where+group)
		args = append(args, wargs...)
	}
	if len(parts) == 0 {
		return "", nil, false, nil
	}
	return "(" + strings.Join(parts, " UNION ALL ") + ")", args, true, nil
}

// Count implements peba.Stats: the number of events in w. Windows of the
// last day without a peer type are counted in memory (recent.go).
func (s *Store) Count(ctx context.Context, w peba.Window) (int64, error) {
	if n, ok := s.countRecent(w); ok {
		return n, nil
	}
	// A failed load leaves the times empty; the table answers below.
	_ = s.loadTimes(ctx)
	if n, ok := s.countRecent(w); ok {
		return n, nil
	}
	if n, ok, err := s.countMemo(ctx, w); err != nil || ok { // memo_source.go
		return n, err
	}
	return s.count(ctx, w, true)
}

// count is Count from the tables: from the rollups and raw edges, or with
// useRollups false from the events alone.
func (s *Store) count(ctx context.Context, w peba.Window, useRollups bool) (int64, error) {
	src, args, ok, err := source(w, peba.DimNone, 24*time.Hour, false, useRollups, "", nil)
	if err != nil || !ok {
		return 0, err
	}
	var n int64
	if err := s.q(ctx).QueryRowContext(ctx, "SELECT coalesce(sum(c), 0)::BIGINT FROM "+src, args...).Scan(&n); err != nil {
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
	if useRollups && dim == peba.DimSrcIP {
		// Recent windows (retrieveIPs) from memory (recent_sources.go).
		if out, ok := s.topSourcesRecent(w, limit); ok {
			return out, nil
		}
		_ = s.loadTimes(ctx) // if it fails, the table answers below
		if out, ok := s.topSourcesRecent(w, limit); ok {
			return out, nil
		}
	}
	if useRollups && limit > 0 && heavyDim(dim) && !noMemo(ctx) {
		if out, ok, err := s.topHeavyMemo(ctx, w, dim, limit); err != nil || ok { // memo_tops.go
			return out, err
		}
	}
	if useRollups && limit > 0 && heavyDim(dim) {
		var out []peba.Bucket
		var ok bool
		err := s.readTx(ctx, func(ctx context.Context) error {
			var err error
			out, ok, err = s.topHeavy(ctx, w, dim, limit)
			return err
		})
		if err != nil || ok {
			return out, err
		}
	}
	if useRollups && !heavyDim(dim) && !noMemo(ctx) {
		if out, ok, err := s.topMemo(ctx, w, dim, limit); err != nil || ok { // memo_source.go
			return out, err
		}
	}
	src, args, ok, err := source(w, dim, 24*time.Hour, false, useRollups, "", nil)
	if err != nil || !ok {
		return nil, err
	}
	if isLocation(dim) {
		return s.topLocations(ctx, src, args, limit)
	}
	if labeled(dim) {
		return s.topLabeled(ctx, src, args, limit)
	}
	// The labels are all "".
	q := "SELECT k, '', sum(c)::BIGINT AS n FROM " + src + " GROUP BY k HAVING sum(c) <> 0 ORDER BY n DESC, k"
	if limit > 0 {
		q += " LIMIT ?"
		args = append(args, limit)
	}
	rows, err := s.q(ctx).QueryContext(ctx, q, args...)
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

// topLabeled is Top of the country dims: SQL counts each pair of code and
// name, Go picks each code's label and orders the codes. Their number is
// bounded by the GeoIP database's countries; picking the label in SQL took
// a second grouping with an ordered aggregate, a third of the statement's
// CPU time.
func (s *Store) topLabeled(ctx context.Context, src string, args []any, limit int) ([]peba.Bucket, error) {
	rows, err := s.q(ctx).QueryContext(ctx, "SELECT k, l, sum(c)::BIGINT FROM "+src+" GROUP BY k, l HAVING sum(c) <> 0", args...)
	if err != nil {
		return nil, fmt.Errorf("cannot query top values: %w", err)
	}
	defer rows.Close()
	type keyCount struct {
		peba.Bucket
		labelCount int64 // the count of the pair of Key and Label
	}
	byKey := map[string]*keyCount{}
	for rows.Next() {
		var k, l string
		var n int64
		if err := rows.Scan(&k, &l, &n); err != nil {
			return nil, fmt.Errorf("cannot scan top values: %w", err)
		}
		kc := byKey[k]
		if kc == nil {
			kc = &keyCount{Bucket: peba.Bucket{Key: k, Label: l}, labelCount: n}
			byKey[k] = kc
		} else if n > kc.labelCount || n == kc.labelCount && l < kc.Label {
			kc.Label, kc.labelCount = l, n
		}
		kc.Count += n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot query top values: %w", err)
	}
	var out []peba.Bucket // nil when empty, as Top's other paths
	for _, kc := range byKey {
		out = append(out, kc.Bucket)
	}
	slices.SortFunc(out, peba.CompareBuckets)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// topLocations groups by coordinates in SQL and orders by the formatted key
// in Go. The number of distinct coordinates is bounded by the GeoIP
// database's locations, not by the number of events.
func (s *Store) topLocations(ctx context.Context, src string, args []any, limit int) ([]peba.Bucket, error) {
	rows, err := s.q(ctx).QueryContext(ctx, "SELECT lat, lon, sum(c)::BIGINT FROM "+src+" GROUP BY ALL", args...)
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
		counts[storerow.LocKey(la, lo)] += n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot query top locations: %w", err)
	}
	var out []peba.Bucket // nil when empty, as Top's other paths
	for k, n := range counts {
		if n != 0 { // a key whose subtracted segments cancel it (source)
			out = append(out, peba.Bucket{Key: k, Count: n})
		}
	}
	slices.SortFunc(out, peba.CompareBuckets)
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
	if useRollups && heavyDim(dim) && !noMemo(ctx) {
		if out, ok, err := s.seriesHeavyMemo(ctx, w, width, dim, keys, bucket); err != nil || ok { // memo_tops.go
			return out, err
		}
	}
	if useRollups && heavyDim(dim) {
		var out []peba.Point
		var ok bool
		err := s.readTx(ctx, func(ctx context.Context) error {
			var err error
			out, ok, err = s.seriesHeavy(ctx, w, width, dim, keys)
			return err
		})
		if err != nil || ok {
			return out, err
		}
	}
	return s.seriesKeys(ctx, w, width, dim, keys, bucket, useRollups)
}

// seriesKeys is Series of the keys of a dim without location, reading
// every row of those keys; bucket is the bucket start of a time t.
func (s *Store) seriesKeys(ctx context.Context, w peba.Window, width time.Duration, dim peba.Dim, keys []string, bucket string, useRollups bool) ([]peba.Point, error) {
	var cond string
	var cargs []any
	if dim != peba.DimNone {
		cond, cargs = "%[1]s IN (SELECT unnest(?::VARCHAR[]))", []any{keys}
	}
	if useRollups && !noMemo(ctx) {
		mcond := cond
		if dim != peba.DimNone {
			mcond = keyIn("%[1]s", len(keys)) // no semi-join for a few keys
		}
		if out, ok, err := s.seriesMemo(ctx, w, width, dim, bucket, mcond, cargs, nil); err != nil || ok { // memo_source.go
			return out, err
		}
	}
	src, args, ok, err := source(w, dim, width, true, useRollups, cond, cargs)
	if err != nil || !ok {
		return nil, err
	}
	q := "SELECT " + bucket + " AS b, k, sum(c)::BIGINT FROM " + src + " GROUP BY b, k HAVING sum(c) <> 0 ORDER BY b, k"
	rows, err := s.q(ctx).QueryContext(ctx, q, args...)
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
	if useRollups && !noMemo(ctx) {
		if out, ok, err := s.seriesMemo(ctx, w, width, dim, bucket, cond, []any{lats, lons}, want); err != nil || ok { // memo_source.go
			return out, err
		}
	}
	src, args, ok, err := source(w, dim, width, true, useRollups, cond, []any{lats, lons})
	if err != nil || !ok {
		return nil, err
	}
	rows, err := s.q(ctx).QueryContext(ctx, "SELECT "+bucket+" AS b, lat, lon, sum(c)::BIGINT FROM "+src+" GROUP BY ALL", args...)
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
		if k := storerow.LocKey(la, lo); want[k] {
			counts[pk{start.UTC(), k}] += n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot query location series: %w", err)
	}
	out := make([]peba.Point, 0, len(counts))
	for k, n := range counts {
		if n != 0 { // cancelled by subtracted segments (source)
			out = append(out, peba.Point{Start: k.start, Key: k.key, Count: n})
		}
	}
	slices.SortFunc(out, cmpPoints)
	return out, nil
}

// querier is what a read needs of *sql.DB and *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type txKey struct{}

// q returns the read transaction that readTx put into ctx, or the pool.
func (s *Store) q(ctx context.Context) querier {
	if tx, ok := ctx.Value(txKey{}).(*sql.Tx); ok {
		return tx
	}
	return s.db
}

// readTx runs fn in a transaction on one pooled connection, so that the
// several queries of one answer (a top of heavy rows and the light rows of
// some keys; the candidates of Latest and their rows) read one snapshot:
// an append between them could otherwise be half seen. The transaction
// only reads and is rolled back. Inside another readTx, fn runs in that
// one.
func (s *Store) readTx(ctx context.Context, fn func(context.Context) error) error {
	if _, ok := ctx.Value(txKey{}).(*sql.Tx); ok {
		return fn(ctx)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cannot begin a read: %w", err)
	}
	defer tx.Rollback()
	return fn(context.WithValue(ctx, txKey{}, tx))
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
// Without a source, the newest events usually come from memory (recent.go).
// Otherwise it reads [hi-span, w.To) for growing spans and stops at the
// first that holds limit events: every event left out is older than all of
// those, so the answer is the one of the whole window. With a source, a
// busy one is usually answered from memory too (recent_latest.go);
// otherwise the source index (srcindex.go) says whether it has events at
// all, and which hours hold its newest ones; those are read first, newest
// first.
func (s *Store) Latest(ctx context.Context, w peba.Window, src netip.Addr, limit int) ([]peba.Event, error) {
	return s.latest(ctx, w, src, limit, true)
}

// latestStored is Latest from the events table alone.
func (s *Store) latestStored(ctx context.Context, w peba.Window, limit int) ([]peba.Event, error) {
	return s.latest(ctx, w, netip.Addr{}, limit, false)
}

// latestCand is an event found by its time (of the window's field) and ID.
type latestCand struct {
	t  time.Time
	id string
}

func cmpCand(a, b latestCand) int {
	if c := b.t.Compare(a.t); c != 0 {
		return c
	}
	return strings.Compare(a.id, b.id)
}

// wherePart is a WHERE clause over events and its arguments.
type wherePart struct {
	where string
	args  []any
}

// latest is Latest; fast false reads the events without the cache of the
// newest events (recent.go) and the source index (srcindex.go), to check
// their answers against.
func (s *Store) latest(ctx context.Context, w peba.Window, src netip.Addr, limit int, fast bool) ([]peba.Event, error) {
	return s.latestShaped(ctx, w, src, limit, fast, fullRows)
}

// LatestBrief is Latest of a source that reads only the fields
// peba.BriefLatester promises (querySingleIP prints five): a cold
// source's rows lie in several row groups, and reading costs per column
// and row group, so 8 columns cost a fraction of 40. Answers from memory
// are whole events.
func (s *Store) LatestBrief(ctx context.Context, w peba.Window, src netip.Addr, limit int) ([]peba.Event, error) {
	return s.latestShaped(ctx, w, src, limit, true, briefRows)
}

// latestShaped is latest reading rows of the given shape from the table.
func (s *Store) latestShaped(ctx context.Context, w peba.Window, src netip.Addr, limit int, fast bool, shape rowShape) ([]peba.Event, error) {
	if _, err := timeColumn(w.Field); err != nil || limit <= 0 {
		return nil, err
	}
	if fast && !src.IsValid() {
		if out, ok := s.latestRecent(w, limit); ok {
			return out, nil
		}
		if err := s.loadRecent(ctx); err != nil {
			return nil, err
		}
		if out, ok := s.latestRecent(w, limit); ok {
			return out, nil
		}
	}
	if fast && src.IsValid() {
		if err := s.loadRecent(ctx); err != nil {
			return nil, err
		}
		if out, ok, err := s.latestRecentSource(ctx, w, src, limit); err != nil || ok {
			return out, err
		}
	}
	var out []peba.Event
	err := s.readTx(ctx, func(ctx context.Context) error {
		var err error
		out, err = s.latestRead(ctx, w, src, limit, fast, shape)
		return err
	})
	return out, err
}

// latestRead is latest from the tables, in one read transaction.
func (s *Store) latestRead(ctx context.Context, w peba.Window, src netip.Addr, limit int, fast bool, shape rowShape) ([]peba.Event, error) {
	col, err := timeColumn(w.Field)
	if err != nil {
		return nil, err
	}
	var extra []string
	var srcArgs []any
	if src.IsValid() {
		// As in fetchEvents: list_contains is tested on the rows of the
		// time range only, src_ip = ? (pushed into the scan) on every row
		// of their row groups, at twice the cost.
		extra, srcArgs = []string{"list_contains(?::VARCHAR[], src_ip)"}, []any{[]string{src.Unmap().String()}}
	}
	// part returns sw's WHERE clause, or ok false if sw selects nothing.
	part := func(sw peba.Window) (wherePart, bool) {
		where, args, none := windowWhere(sw, col, extra...)
		return wherePart{where, append(slices.Clone(srcArgs), args...)}, !none
	}
	query := func(sw peba.Window) ([]latestCand, error) {
		p, ok := part(sw)
		if !ok {
			return nil, nil
		}
		return s.topCands(ctx, col, []wherePart{p}, limit)
	}
	// newer holds candidates newer than all of w, which is what is left to
	// read.
	var newer []latestCand
	hi := w.To
	if hi.IsZero() {
		hi = time.Now()
	}
	switch {
	case src.IsValid() && !fast:
		cands, err := query(w)
		if err != nil {
			return nil, err
		}
		return s.fetchRows(ctx, w.Field, cands, shape)
	case src.IsValid():
		info, ok, err := s.srcLookup(ctx, w.Domains, src)
		if err != nil || !ok {
			return nil, err
		}
		var to time.Time
		if w.Field == peba.Created {
			if w.From.IsZero() || w.From.Before(info.firstCreated) {
				w.From = info.firstCreated
			}
			to = info.lastCreated.Add(time.Microsecond)
		} else {
			to = info.lastReceived.Add(time.Microsecond)
		}
		if w.To.IsZero() || to.Before(w.To) {
			w.To = to
		}
		if !w.From.Before(w.To) {
			return nil, nil
		}
		if w.Field == peba.Created {
			out, done, err := s.latestHoursRows(ctx, w, part, info, limit, shape)
			if err != nil || done {
				return out, err
			}
			// The first hours were read: the rest go on from there.
			first := make([]latestCand, len(out))
			for i := range out {
				first[i] = latestCand{out[i].CreateTime, out[i].ID}
			}
			if newer, done, err = s.latestHours(ctx, w, part, info, limit, first); err != nil || done {
				if err != nil {
					return nil, err
				}
				return s.fetchRows(ctx, w.Field, newer, shape)
			}
			// Older events may lie in hours the index does not list,
			// which are all before the ones it lists.
			oldest := time.UnixMicro(int64(info.hours[len(info.hours)-1]) * hourUS).UTC()
			if oldest.Before(w.To) {
				w.To = oldest
			}
			if !w.From.Before(w.To) {
				return s.fetchRows(ctx, w.Field, newer, shape)
			}
		}
		hi = w.To
	}
	var older []latestCand
	for _, span := range latestSpans {
		sw := w
		if sw.From = hi.Add(-span); !w.From.IsZero() && !sw.From.After(w.From) {
			break
		}
		if older, err = query(sw); err != nil {
			return nil, err
		}
		if len(older) == limit {
			break
		}
		older = nil
	}
	if older == nil {
		if older, err = query(w); err != nil {
			return nil, err
		}
	}
	cands := append(newer, older...)
	slices.SortFunc(cands, cmpCand)
	return s.fetchRows(ctx, w.Field, cands[:min(len(cands), limit)], shape)
}

// latestHours reads the source's newest listed hours (info.hours) within
// w, newest first: limit hours at a time (each holds an event, unless
// retention removed it; the busy sources whose newest hour alone would do
// are mostly answered from memory before this). It stops as soon as it has
// limit candidates: every event of the hours left, listed or not, is
// older. done is false if it did not find limit and the list does not hold
// every hour of the source; the caller then reads the time before the
// listed hours.
//
// first, if not nil, are the events of the first limit hours, read by
// latestHoursRows: only the hours after those are read.
func (s *Store) latestHours(ctx context.Context, w peba.Window, part func(peba.Window) (wherePart, bool), info srcInfo, limit int, first []latestCand) (cands []latestCand, done bool, err error) {
	hours := latestHourList(w, info)
	start := 0
	if first != nil {
		cands, start = first, limit
	}
	for i := start; i < len(hours); i += limit {
		parts := hourParts(w, hours[i:min(len(hours), i+limit)], part)
		if len(parts) == 0 {
			continue
		}
		found, err := s.topCands(ctx, timeColumnOf(w.Field), parts, limit)
		if err != nil {
			return nil, false, err
		}
		cands = append(cands, found...)
		if len(cands) >= limit {
			slices.SortFunc(cands, cmpCand)
			return cands[:limit], true, nil
		}
	}
	slices.SortFunc(cands, cmpCand)
	return cands, info.allHours, nil
}

// latestHoursRows is the first step of latestHours with whole rows: the
// newest limit events of the source's newest limit listed hours within w,
// in one statement. done is true if they are the answer: limit events (every
// event of the other hours is older), or fewer when those hours are all of
// the source's (info.allHours); otherwise the caller reads as before. A
// source's events usually lie in different row groups: reading the rows of
// those hours with all columns, filtered on the source (list_contains: not
// pushed into the scan, which made it slower), cost about two thirds of
// reading the times and IDs first and then the rows by ID (12 vs 18 ms of
// CPU for a cold source of the 10M benchmark data, one statement less).
// What is left is mostly a cost per column and row group touched
// (docs/performance.md).
//
// If not done, out are the events of those hours (within w), fewer than
// limit, newest first.
func (s *Store) latestHoursRows(ctx context.Context, w peba.Window, part func(peba.Window) (wherePart, bool), info srcInfo, limit int, shape rowShape) (out []peba.Event, done bool, err error) {
	hours := latestHourList(w, info)
	if len(hours) == 0 {
		return nil, info.allHours, nil
	}
	all := len(hours) <= limit && info.allHours
	col := timeColumnOf(w.Field)
	var sel []string
	var args []any
	for _, p := range hourParts(w, hours[:min(len(hours), limit)], part) {
		sel = append(sel, "SELECT "+shape.cols+" FROM events"+p.where)
		args = append(args, p.args...)
	}
	if len(sel) == 0 {
		return nil, all, nil
	}
	q := "SELECT * FROM (" + strings.Join(sel, " UNION ALL ") + ") ORDER BY " + col + " DESC, id LIMIT ?"
	if out, err = s.queryEvents(ctx, shape, q, append(args, limit)...); err != nil {
		return nil, false, fmt.Errorf("cannot query latest events: %w", err)
	}
	sortLatest(out, w.Field)
	if len(out) < limit && !all {
		return out, false, nil
	}
	latestRowsServed.Add(1)
	return out, true, nil
}

// latestRowsServed counts the answers of latestHoursRows (tests).
var latestRowsServed atomic.Int64

// latestHourList returns the hours of info.hours (newest first) that
// overlap w.
func latestHourList(w peba.Window, info srcInfo) []int32 {
	var hours []int32
	for _, h := range info.hours {
		start := time.UnixMicro(int64(h) * hourUS).UTC()
		if start.Before(w.To) && start.Add(time.Hour).After(w.From) {
			hours = append(hours, h)
		}
	}
	return hours
}

// hourRuns splits hours (newest first) into runs of consecutive hours,
// each as [newest, oldest].
func hourRuns(hours []int32) [][2]int32 {
	var runs [][2]int32
	for _, h := range hours {
		if n := len(runs); n > 0 && runs[n-1][1] == h+1 {
			runs[n-1][1] = h
			continue
		}
		runs = append(runs, [2]int32{h, h})
	}
	return runs
}

func timeColumnOf(f peba.TimeField) string {
	col, _ := timeColumn(f)
	return col
}

// topCands returns the limit newest events (by col, then ID) of the union
// of parts. Only the two sort columns are read; one top-N over all 40
// columns read every column of the range.
func (s *Store) topCands(ctx context.Context, col string, parts []wherePart, limit int) ([]latestCand, error) {
	var sel []string
	var args []any
	for _, p := range parts {
		sel = append(sel, "SELECT "+col+", id FROM events"+p.where)
		args = append(args, p.args...)
	}
	q := "SELECT " + col + ", id FROM (" + strings.Join(sel, " UNION ALL ") + ") ORDER BY " + col + " DESC, id LIMIT ?"
	rows, err := s.q(ctx).QueryContext(ctx, q, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("cannot query latest events: %w", err)
	}
	defer rows.Close()
	var out []latestCand
	for rows.Next() {
		var c latestCand
		if err := rows.Scan(&c.t, &c.id); err != nil {
			return nil, fmt.Errorf("cannot query latest events: %w", err)
		}
		c.t = c.t.UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}

// fetchEvents reads the whole rows of cands (ordered as Latest orders),
// by ID within the hours of their times, so that zone maps skip the other
// row groups even when the candidates are days apart.
func (s *Store) fetchEvents(ctx context.Context, f peba.TimeField, cands []latestCand) ([]peba.Event, error) {
	return s.fetchRows(ctx, f, cands, fullRows)
}

// fetchRows is fetchEvents with rows of the given shape.
func (s *Store) fetchRows(ctx context.Context, f peba.TimeField, cands []latestCand, shape rowShape) ([]peba.Event, error) {
	if len(cands) == 0 {
		return nil, nil
	}
	col := timeColumnOf(f)
	var parts []string
	var args []any
	for i := 0; i < len(cands); {
		hour := cands[i].t.Truncate(time.Hour)
		j := i
		var ids []string
		for ; j < len(cands) && cands[j].t.Truncate(time.Hour).Equal(hour); j++ {
			ids = append(ids, cands[j].id)
		}
		// cands are newest first: [cands[j-1].t, cands[i].t].
		// list_contains, unlike id IN (...), is not pushed into the scan,
		// so it only tests the rows of the time range: a pushed-down id
		// filter decompressed the ids of the whole row group (3x the cost).
		parts = append(parts, "SELECT "+shape.cols+" FROM events WHERE "+col+" BETWEEN ? AND ? AND list_contains(?::VARCHAR[], id)")
		args = append(args, cands[j-1].t, cands[i].t, ids)
		i = j
	}
	out, err := s.queryEvents(ctx, shape, strings.Join(parts, " UNION ALL "), args...)
	if err != nil {
		return nil, fmt.Errorf("cannot query latest events: %w", err)
	}
	sortLatest(out, f)
	return out, nil
}

// queryEvents runs q, which selects shape.cols, and scans its rows (in the
// read transaction of ctx, if any).
func (s *Store) queryEvents(ctx context.Context, shape rowShape, q string, args ...any) ([]peba.Event, error) {
	rows, err := s.q(ctx).QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []peba.Event
	for rows.Next() {
		e, err := shape.scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// hourParts returns part's WHERE clauses of w cut to each run of hours
// (hour numbers, newest first, as latestHourList gives them).
func hourParts(w peba.Window, hours []int32, part func(peba.Window) (wherePart, bool)) []wherePart {
	var parts []wherePart
	for _, r := range hourRuns(hours) {
		sw := w
		from, to := time.UnixMicro(int64(r[1])*hourUS).UTC(), time.UnixMicro(int64(r[0]+1)*hourUS).UTC()
		if sw.From.Before(from) {
			sw.From = from
		}
		if to.Before(sw.To) {
			sw.To = to
		}
		if p, ok := part(sw); ok {
			parts = append(parts, p)
		}
	}
	return parts
}

// sortLatest orders events as Latest does: newest first by the time field
// f, then by ID.
func sortLatest(out []peba.Event, f peba.TimeField) {
	tf := func(e *peba.Event) time.Time {
		if f == peba.Created {
			return e.CreateTime
		}
		return e.ReceivedTime
	}
	slices.SortFunc(out, func(a, b peba.Event) int {
		if c := tf(&b).Compare(tf(&a)); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}
