package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/internal/storerow"
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

// labelled reports whether d's keys have a label (Bucket.Label).
func labelled(d peba.Dim) bool { return d == peba.DimSrcCountry || d == peba.DimDstCountry }

// segment is a part of a window answered from one source: the rollup r
// (its buckets lie wholly inside [from, to)), or the raw events if r is
// nil. A zero bound is unbounded. A negative segment's events are
// subtracted (leadComplement). A segment with a non-zero cut is (part of)
// one of two alternatives for the window's last part (tailAlternatives),
// used only if no stored event's time is at or after cut (ifEmpty) or only
// if some is (!ifEmpty).
type segment struct {
	r        *rollup
	from, to time.Time
	neg      bool
	cut      time.Time
	ifEmpty  bool
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
		if useRollups && r.field == w.Field && r.serves(dim, w.PeerType != "") && maxGran%r.gran == 0 {
			cands = append(cands, r)
		}
	}
	slices.SortFunc(cands, func(a, b *rollup) int { return int(b.gran - a.gran) })
	return tailAlternatives(leadComplement(split(from, to, cands, nil), cands), cands, to)
}

// leadComplement replaces a raw first segment [from, x) that ends at a
// bucket boundary of the finest candidate rollup (an hour or more) and is
// longer than half a bucket by the rollup's bucket [x-gran, x) minus the
// raw events of [x-gran, from), so that the raw part of the window's start
// is at most half a bucket: the last 24 hours read at most 30 minutes of
// raw events (~7,000 on the 10M-event benchmark) instead of up to an hour.
// Keys whose sum is zero then have no events in the window; the queries
// drop them.
func leadComplement(segs []segment, cands []*rollup) []segment {
	if len(segs) == 0 || len(cands) == 0 {
		return segs
	}
	first, fine := segs[0], cands[len(cands)-1]
	if first.r != nil || first.from.IsZero() || first.to.IsZero() || fine.gran < time.Hour ||
		!first.to.Truncate(fine.gran).Equal(first.to) || first.to.Sub(first.from) <= fine.gran/2 {
		return segs
	}
	start := first.to.Add(-fine.gran)
	return append([]segment{{r: fine, from: start, to: first.to}, {from: start, to: first.from, neg: true}}, segs[1:]...)
}

// tailAlternatives replaces the segments of the last partial bucket [b, to)
// of the window (ending at to) of the widest candidate rollup (an hour or
// more) by two alternatives: that rollup's bucket [b, b+gran) if no event
// is stored at or after to, else those segments. Windows that end now (the
// current month's countries, the last 24 hours' locations) then read the
// current day (or hour) from one bucket instead of up to 23 hour buckets
// (7,200 rows of countries at 18:00 on the 10M-event benchmark) and up to
// an hour of raw events (~14,000): no event at or after to means the bucket
// holds exactly the events of [b, to). Both alternatives are in one
// statement, hence one snapshot; the condition is one index probe on
// events. Plans with a finer rollup (the totals' minutes) keep their
// segments: their raw edge is short already. A negative segment
// (leadComplement) is never among the replaced ones: the alternatives
// would count its events with the wrong sign.
func tailAlternatives(segs []segment, cands []*rollup, to time.Time) []segment {
	if len(segs) == 0 || len(cands) == 0 || cands[len(cands)-1].gran < time.Hour || to.IsZero() {
		return segs
	}
	for _, c := range cands { // widest first
		b := to.Truncate(c.gran)
		if b.Equal(to) {
			continue
		}
		for i := len(segs) - 1; i >= 0; i-- {
			sg := segs[i]
			if sg.neg || sg.from.IsZero() || sg.from.Before(b) {
				break
			}
			if !sg.from.Equal(b) {
				continue
			}
			out := append(segs[:i:i], segment{r: c, from: b, to: b.Add(c.gran), cut: to, ifEmpty: true})
			for _, sg := range segs[i:] {
				sg.cut, sg.ifEmpty = to, false
				out = append(out, sg)
			}
			return out
		}
	}
	return segs
}

// split appends the segments of [from, to) to segs (see plan); cands are
// ordered by granularity, widest first.
func split(from, to time.Time, cands []*rollup, segs []segment) []segment {
	if len(cands) == 0 {
		return append(segs, segment{from: from, to: to})
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
	segs = append(segs, segment{r: cands[0], from: a, to: b})
	if !to.Equal(b) {
		segs = split(b, to, cands[1:], segs)
	}
	return segs
}

// keyCond builds an extra condition on a segment's key columns, adding its
// parameters to a.
type keyCond func(kc keyCols, seg segment, a *args) string

// hashCond selects the rollup rows of keys with hashes hs (with the
// segment's time conditions: one range scan per key of the index on (h,
// t), migration 0005) instead of reading every row of the segment's
// buckets: the long-tail dims have ~30k rows a day on the 10M-event
// benchmark.
func hashCond(hs [][16]byte, a *args) string {
	return "h = ANY(" + a.add(hs) + "::uuid[])"
}

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
	var parts []string
	for _, seg := range plan(w, dim, maxGran, useRollups) {
		q, none := segmentQuery(w, dim, seg, col, rc, withTime, kcond, a)
		if none {
			return "", false, nil
		}
		parts = append(parts, q)
	}
	if len(parts) == 0 {
		return "", false, nil
	}
	return "(" + strings.Join(parts, " UNION ALL ") + ") src", true, nil
}

// segmentQuery returns the query of one segment of source: the events of
// seg (a part of w) counted per key of dim (columns k, l, lat, lon, c, and
// t first if withTime), over column col (of w's time field) with the raw
// key expressions rc. none is true when w names no domain.
func segmentQuery(w peba.Window, dim peba.Dim, seg segment, col string, rc keyCols, withTime bool, kcond keyCond, a *args) (q string, none bool) {
	sw := w
	sw.From, sw.To = seg.from, seg.to
	kc, tcol, table, cnt := rc, col, "events", "count(*)"
	if seg.neg {
		cnt = "-count(*)"
	}
	var conds []string
	if seg.r != nil {
		// The dim's partition itself, as in topBounded: through the
		// parent, "dim = N" stays a filter on every row, which an
		// index-only scan (the port series, migration 0006) cannot
		// evaluate.
		rd, _ := seg.r.rowDim(dim)
		kc, tcol, table, cnt = rollupCols, "t", seg.r.table+"_d"+strconv.Itoa(int(rd)), "sum(cnt)::bigint"
		if !labelled(dim) && !isLocation(dim) {
			// Stored as '' and 0 (rollupKeyOf); constants need no
			// column from the heap either.
			kc.l, kc.lat, kc.lon = c0, "0::float8", "0::float8"
		}
	}
	if dim == peba.DimNone {
		// Totals: the key columns of the peer-type rows are dropped.
		kc = keyCols{c0, c0, "0::float8", "0::float8"}
	}
	if kcond != nil {
		conds = append(conds, kcond(kc, seg, a))
	}
	wc, none := windowConds(sw, tcol, a)
	if none {
		return "", true
	}
	conds = append(conds, wc...)
	if !seg.cut.IsZero() {
		// An uncorrelated sub-select: evaluated once, and a false
		// condition skips the segment's scan.
		exists := "EXISTS (SELECT FROM events WHERE " + col + " >= " + a.add(seg.cut) + ")"
		if seg.ifEmpty {
			exists = "NOT " + exists
		}
		conds = append(conds, exists)
	}
	sel := kc.k + " AS k, " + kc.l + " AS l, " + kc.lat + " AS lat, " + kc.lon + " AS lon, " + cnt + " AS c"
	group := "1, 2, 3, 4"
	if withTime {
		// Raw rows are counted per hour, the finest rollup bucket.
		sel = "date_trunc('hour', " + tcol + ") AS t, " + sel
		group = "1, 2, 3, 4, 5"
	}
	return "SELECT " + sel + " FROM " + table + whereClause(conds) + " GROUP BY " + group, false
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
	// A generic plan: the statement is the same for every window of the
	// same shape (retrieveAlertStats counts four of them per request), and
	// planning its five-part UNION over the partitioned events for each
	// call (PostgreSQL's default for it) cost twice its execution, about
	// 0.45 ms. Its raw parts are at most two partial minutes, so a plan
	// without the bounds is as good; partitions are then pruned when the
	// plan starts. set_config(..., true) lasts for the batch's implicit
	// transaction only.
	var n int64
	b := &pgx.Batch{}
	b.Queue("SELECT set_config('plan_cache_mode', 'force_generic_plan', true)")
	b.Queue("SELECT coalesce(sum(c), 0)::bigint FROM "+src, a...).QueryRow(func(r pgx.Row) error { return r.Scan(&n) })
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
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
	if useRollups {
		if out, ok, err := s.memoTop(ctx, w, dim, limit); err != nil || ok {
			return out, err
		}
		if out, ok, err := s.topBounded(ctx, w, dim, limit); err != nil || ok {
			return out, err
		}
		if dim == peba.DimSrcIP && spansHour(w) {
			if out, ok, err := s.topStream(ctx, w, dim, limit); err != nil || ok {
				return out, err
			}
		}
	}
	var a args
	src, ok, err := source(w, dim, 24*time.Hour, false, useRollups, nil, &a)
	if err != nil || !ok {
		return nil, err
	}
	generic := dim != peba.DimSrcIP && shortEdges(w, dim)
	if isLocation(dim) {
		return s.topLocations(ctx, src, a, limit, generic)
	}
	q := `SELECT k, (array_agg(l ORDER BY c DESC, l))[1], sum(c)::bigint AS n FROM
		(SELECT k, l, sum(c) AS c FROM ` + src + ` GROUP BY k, l HAVING sum(c) > 0) g GROUP BY k ORDER BY n DESC, k`
	if !labelled(dim) {
		// No labels: one grouping (the label pass cost a third of a
		// Top of 5,000 addresses).
		q = `SELECT k, ''::text, sum(c)::bigint AS n FROM ` + src + ` GROUP BY k HAVING sum(c) > 0 ORDER BY n DESC, k`
	}
	if limit > 0 {
		q += " LIMIT " + a.add(int64(limit))
	}
	var out []peba.Bucket
	if err := s.queryPlanned(ctx, q, a, generic, func(rows pgx.Rows) (err error) {
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (peba.Bucket, error) {
			var b peba.Bucket
			err := r.Scan(&b.Key, &b.Label, &b.Count)
			b.Key, b.Label = unescText(b.Key), unescText(b.Label)
			return b, err
		})
		return err
	}); err != nil {
		return nil, fmt.Errorf("cannot query top values: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// shortEdges reports whether every raw segment of w's plan for Top of dim
// is an edge of at most an hour.
func shortEdges(w peba.Window, dim peba.Dim) bool {
	segs := plan(w, dim, 24*time.Hour, true)
	for _, sg := range segs {
		if sg.r == nil && (sg.from.IsZero() || sg.to.IsZero() || sg.to.Sub(sg.from) > time.Hour) {
			return false
		}
	}
	return len(segs) > 0
}

// queryPlanned runs q and passes its rows to scan; with a generic plan if
// generic, as count does: Top's statement is the same for every window of
// the same shape, and planning its UNION, whose raw edges and tail probes
// are on the partitioned events, for each call cost more than running it
// (created-time edges, as for the last 24 hours' target locations, cannot
// prune partitions when planned: about 30 partitions each). Only for
// plans whose raw parts are short edges (shortEdges), for which a plan
// without the bounds is as good; partitions are pruned when it starts.
func (s *Store) queryPlanned(ctx context.Context, q string, a args, generic bool, scan func(pgx.Rows) error) error {
	if !generic {
		rows, err := s.pool.Query(ctx, q, a...)
		if err != nil {
			return err
		}
		return scan(rows)
	}
	b := &pgx.Batch{}
	b.Queue("SELECT set_config('plan_cache_mode', 'force_generic_plan', true)")
	b.Queue(q, a...)
	br := s.pool.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		return errors.Join(err, br.Close())
	}
	rows, err := br.Query()
	if err != nil {
		return errors.Join(err, br.Close())
	}
	return errors.Join(scan(rows), br.Close())
}

// topLocations groups by coordinates in SQL and orders by the formatted
// key in Go.
func (s *Store) topLocations(ctx context.Context, src string, a args, limit int, generic bool) ([]peba.Bucket, error) {
	counts := map[string]int64{}
	var (
		la, lo float64
		n      int64
	)
	if err := s.queryPlanned(ctx, "SELECT lat, lon, sum(c)::bigint FROM "+src+" GROUP BY 1, 2 HAVING sum(c) > 0", a, generic, func(rows pgx.Rows) error {
		_, err := pgx.ForEachRow(rows, []any{&la, &lo, &n}, func() error {
			counts[storerow.LocKey(la, lo)] += n
			return nil
		})
		return err
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
	slices.SortFunc(out, peba.CompareBuckets)
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
		var hs [][16]byte
		if boundedDim(dim, w) {
			pt := ""
			if typed(dim) {
				pt = escText(w.PeerType)
			}
			for _, k := range ek {
				rk := rollupKey{peerType: pt, k: k}
				hs = append(hs, rk.hash())
			}
		}
		kcond = func(kc keyCols, seg segment, a *args) string {
			if hs != nil && seg.r != nil {
				return hashCond(hs, a)
			}
			return kc.k + " = ANY(" + a.add(ek) + "::text[])"
		}
	}
	if useRollups {
		if out, ok, err := s.memoSeries(ctx, w, width, dim, keys, kcond); err != nil || ok {
			return out, err
		}
	}
	var a args
	src, ok, err := source(w, dim, width, true, useRollups, kcond, &a)
	if err != nil || !ok {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, "SELECT "+bucket+" AS b, k, sum(c)::bigint FROM "+src+" GROUP BY 1, 2 HAVING sum(c) > 0 ORDER BY 1, 2", a...)
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
	var (
		lats, lons []float64
		hs         [][16]byte
	)
	for _, k := range keys {
		x, y, ok := strings.Cut(k, ",")
		la, err1 := strconv.ParseFloat(x, 64)
		lo, err2 := strconv.ParseFloat(y, 64)
		if !ok || err1 != nil || err2 != nil {
			continue // cannot match any stored location
		}
		want[k] = true
		lats, lons = append(lats, la), append(lons, lo)
		rk := rollupKey{lat: math.Float64bits(storerow.CanonFloat(la)), lon: math.Float64bits(storerow.CanonFloat(lo))}
		hs = append(hs, rk.hash())
	}
	if len(want) == 0 {
		return nil, nil
	}
	kcond := func(kc keyCols, seg segment, a *args) string {
		if seg.r != nil && boundedDim(dim, w) {
			return hashCond(hs, a)
		}
		return kc.lat + " = ANY(" + a.add(lats) + "::float8[]) AND " + kc.lon + " = ANY(" + a.add(lons) + "::float8[])"
	}
	var a args
	src, ok, err := source(w, dim, width, true, useRollups, kcond, &a)
	if err != nil || !ok {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, "SELECT "+bucket+" AS b, lat, lon, sum(c)::bigint FROM "+src+" GROUP BY 1, 2, 3 HAVING sum(c) <> 0", a...)
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
		if k := storerow.LocKey(la, lo); want[k] {
			counts[pk{start.UTC(), k}] += n
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("cannot query location series: %w", err)
	}
	maps.DeleteFunc(counts, func(_ pk, n int64) bool { return n == 0 }) // see leadComplement
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

// Latest implements peba.Stats. Ties on the time field are ordered by id,
// as FindEvents does. limit <= 0 gives no events. An IPv4-mapped src
// matches the IPv4 address, because decoders store sources unmapped.
//
// Every partition has a btree on the time field (received_time,
// create_time, and (src_ip, create_time) for a source), so the newest rows
// come from a merge of backward index scans, one per partition, which
// stops after limit rows (plus the ties on the time field, sorted by id).
func (s *Store) Latest(ctx context.Context, w peba.Window, src netip.Addr, limit int) ([]peba.Event, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	col, err := timeColumn(w.Field)
	if err != nil || limit <= 0 {
		return nil, err
	}
	var a args
	var conds []string
	if src.IsValid() {
		conds = append(conds, "src_ip = "+a.add(src.Unmap().String()))
	}
	wc, none := windowConds(w, col, &a)
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
