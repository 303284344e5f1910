package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/peba-go/peba"
)

// Top of a long-tail dim (ports, URLs) without reading the tail. On 10M
// events the day rows of ports barely shrink the events (10% of the
// generated ports are uniformly random: ~30k rows a day), so grouping them
// all cost 80-140 ms for a week or a month, while the top 10 are in rows
// with large counts.
//
// A rollup row is heavy if its count is at least heavyMin of its table's
// granularity. topHeavy groups only the heavy rows (and the raw edges, in
// full): per key, h is the sum of its heavy rows, a lower bound of its
// count. A key's rows that were left out are light, at most heavyMin-1
// each and at most one per cell (bucket, domain, and peer type for typed
// dims) in which it has no heavy row, which bounds its count from above.
// The cells are counted on the peer-type rows of the same field and
// granularity, which have one row per cell with events. A key without any
// heavy row is bounded by (heavyMin-1) x cells summed over the segments.
// If that bound is below the limit-th largest h, the top keys are among
// those whose upper bound reaches it; the light rows of those that may have
// some are read (by key), and they are sorted by their exact counts.
// Otherwise topHeavy gives up and Top groups every row, so answers are
// always exact (TestRollupsMatchRaw, TestHeavy). Series of the keys of a
// Top reads their heavy rows the same way (seriesHeavy).

// heavyMin is the smallest count of a heavy row, by rollup granularity.
// Chosen on the benchmark data: it keeps a few dozen port rows of a day's
// ~30k, and URLs with 4 events in an hour, while the bound stays far below
// the top counts of PEBA's windows (tops: 1, 7, 28 days).
var heavyMin = map[time.Duration]int64{time.Hour: 4, 24 * time.Hour: 8}

// heavyMaxRefine bounds how many keys topHeavy reads exact counts of.
const heavyMaxRefine = 1000

// heavyDim reports whether Top of d uses topHeavy: the dims with long
// tails and no labels. Source locations have no long tail to skip (on the
// benchmark data, 44% of the hour rows of a day have 4 events or more).
func heavyDim(d peba.Dim) bool {
	return d == peba.DimURL || d == peba.DimDstPort
}

// heavyKey is a candidate of topHeavy.
type heavyKey struct {
	key   string
	h     int64 // count in heavy rows and raw edges
	slack int64 // most its light rows can add
}

// topHeavy answers Top(w, dim, limit) as described above; ok is false if
// it cannot prove the answer, and the caller groups all rows.
func (s *Store) topHeavy(ctx context.Context, w peba.Window, dim peba.Dim, limit int) (out []peba.Bucket, ok bool, err error) {
	col, err := timeColumn(w.Field)
	if err != nil || limit <= 0 || !heavyDim(dim) {
		return nil, false, err
	}
	rc, _ := rawCols(dim)
	segs := plan(w, dim, 24*time.Hour, true)
	var (
		parts []string
		args  []any
		light = map[int]int64{} // heavyMin-1 of each rollup segment
	)
	for i, seg := range segs {
		sw := w
		sw.From, sw.To = seg.from, seg.to
		if seg.r == nil {
			where, wargs, none := windowWhere(sw, col)
			if none {
				return nil, true, nil
			}
			parts = append(parts, fmt.Sprintf("SELECT %d AS seg, %s AS k, count(*)::BIGINT AS c, 0::BIGINT AS nh FROM events%s GROUP BY ALL",
				i, rc.k, where))
			args = append(args, wargs...)
			continue
		}
		cells := cellsTable(seg.r)
		if cells == "" {
			return nil, false, nil
		}
		light[i] = heavyMin[seg.r.gran] - 1
		dimCond := "dim = " + strconv.Itoa(int(dim))
		where, wargs, none := windowWhere(sw, "t", dimCond, "cnt >= "+strconv.FormatInt(light[i]+1, 10))
		if none {
			return nil, true, nil
		}
		parts = append(parts, fmt.Sprintf("SELECT %d, k, sum(cnt)::BIGINT, count(*)::BIGINT FROM %s%s GROUP BY ALL", i, seg.r.table, where))
		args = append(args, wargs...)
		// The cells: peer-type rows are one per (bucket, domain, type).
		cw, cargs, _ := windowWhere(sw, "t", "dim = "+strconv.Itoa(int(peba.DimPeerType)))
		cellRows := "SELECT t, community, peer_type FROM " + cells + cw
		if !typed(dim) {
			cellRows = "SELECT DISTINCT t, community FROM " + cells + cw
		}
		parts = append(parts, fmt.Sprintf("SELECT %d, NULL, count(*)::BIGINT, -1 FROM (%s)", i, cellRows))
		args = append(args, cargs...)
	}
	if len(light) == 0 {
		return nil, false, nil // no rollup: Top's own query is as cheap
	}
	rows, err := s.q(ctx).QueryContext(ctx, strings.Join(parts, " UNION ALL "), args...)
	if err != nil {
		return nil, false, fmt.Errorf("cannot query top values: %w", err)
	}
	defer rows.Close()
	byKey := map[string]*heavyKey{}
	cells := map[int]int64{}
	heavy := map[string]map[int]int64{} // heavy rows per key and segment
	for rows.Next() {
		var (
			seg   int
			k     sql.NullString
			c, nh int64
		)
		if err := rows.Scan(&seg, &k, &c, &nh); err != nil {
			return nil, false, fmt.Errorf("cannot scan top values: %w", err)
		}
		if nh < 0 {
			cells[seg] = c
			continue
		}
		key := k.String
		hk := byKey[key]
		if hk == nil {
			hk = &heavyKey{key: key}
			byKey[key] = hk
			heavy[key] = map[int]int64{}
		}
		hk.h += c
		heavy[key][seg] += nh
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("cannot query top values: %w", err)
	}
	var bound int64 // most a key without heavy rows can have
	for seg, l := range light {
		bound += l * cells[seg]
	}
	cands := make([]*heavyKey, 0, len(byKey))
	for key, hk := range byKey {
		for seg, l := range light {
			hk.slack += l * (cells[seg] - heavy[key][seg])
		}
		cands = append(cands, hk)
	}
	slices.SortFunc(cands, func(a, b *heavyKey) int { return cmpCount(a.h, b.h, a.key, b.key) })
	if len(cands) < limit {
		if bound > 0 {
			return nil, false, nil // keys without heavy rows may be in the answer
		}
		limit = len(cands)
	}
	if limit == 0 {
		return nil, true, nil
	}
	kth := cands[limit-1].h
	if bound >= kth {
		return nil, false, nil
	}
	var top, refine []*heavyKey
	for _, hk := range cands {
		if hk.h+hk.slack >= kth {
			top = append(top, hk)
			if hk.slack > 0 {
				refine = append(refine, hk)
			}
		}
	}
	if len(refine) > heavyMaxRefine {
		return nil, false, nil
	}
	if len(refine) > 0 {
		if err := s.addLight(ctx, w, dim, segs, refine); err != nil {
			return nil, false, err
		}
	}
	slices.SortFunc(top, func(a, b *heavyKey) int { return cmpCount(a.h, b.h, a.key, b.key) })
	for _, hk := range top[:limit] {
		out = append(out, peba.Bucket{Key: hk.key, Count: hk.h})
	}
	return out, true, nil
}

// lightRows returns the query over the light rows of keys in the rollup
// segments of segs, with columns seg, b (the bucket start bucket gives of
// t, or NULL if bucket is ""), k, c; ok is false if no segment is a
// rollup.
func lightRows(w peba.Window, dim peba.Dim, segs []segment, keys []*heavyKey, bucket string) (q string, args []any, ok bool) {
	ks := make([]string, len(keys))
	for i, hk := range keys {
		ks[i] = hk.key
	}
	cond, cargs := "k IN (SELECT unnest(?::VARCHAR[]))", []any{ks}
	b := "NULL::TIMESTAMP"
	if bucket != "" {
		b = bucket
	}
	var parts []string
	for i, seg := range segs {
		if seg.r == nil {
			continue
		}
		sw := w
		sw.From, sw.To = seg.from, seg.to
		min := strconv.FormatInt(heavyMin[seg.r.gran], 10)
		where, wargs, none := windowWhere(sw, "t", "cnt < "+min, cond, "dim = "+strconv.Itoa(int(dim)))
		if none {
			continue
		}
		parts = append(parts, fmt.Sprintf("SELECT %d AS seg, %s AS b, k, sum(cnt)::BIGINT AS c FROM %s%s GROUP BY ALL", i, b, seg.r.table, where))
		args = append(append(args, cargs...), wargs...)
	}
	if len(parts) == 0 {
		return "", nil, false
	}
	return strings.Join(parts, " UNION ALL "), args, true
}

// addLight adds to the h of keys their light rows in the rollup segments
// of segs, which makes h their count in w (the raw edges are in h already).
func (s *Store) addLight(ctx context.Context, w peba.Window, dim peba.Dim, segs []segment, keys []*heavyKey) error {
	q, args, ok := lightRows(w, dim, segs, keys, "")
	if !ok {
		return nil
	}
	byKey := make(map[string]*heavyKey, len(keys))
	for _, hk := range keys {
		byKey[hk.key] = hk
	}
	rows, err := s.q(ctx).QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("cannot query top values: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			seg int
			b   sql.NullTime
			k   string
			n   int64
		)
		if err := rows.Scan(&seg, &b, &k, &n); err != nil {
			return fmt.Errorf("cannot scan top values: %w", err)
		}
		if hk := byKey[k]; hk != nil {
			hk.h += n
		}
	}
	return rows.Err()
}

// cmpCount orders buckets by count descending, then key ascending (byte
// order), as Top does.
func cmpCount(na, nb int64, ka, kb string) int {
	if na != nb {
		if na > nb {
			return -1
		}
		return 1
	}
	return strings.Compare(ka, kb)
}

// cellsTable returns the rollup table with the peer-type rows of r's field
// and granularity, or "" if there is none.
func cellsTable(r *rollup) string {
	for i := range rollups {
		c := &rollups[i]
		if c.field == r.field && c.gran == r.gran && c.has(peba.DimPeerType) {
			return c.table
		}
	}
	return ""
}

// seriesHeavy answers Series(w, width, dim, keys) of a dim without
// locations from the heavy rows of its keys (see topHeavy) and the raw
// edges: a key's rows in a segment are all heavy if it has a heavy row in
// every cell (one row per cell and key). The keys of Top are usually heavy
// everywhere; for the others the light rows are read too. ok is false if
// there is no rollup to read.
func (s *Store) seriesHeavy(ctx context.Context, w peba.Window, width time.Duration, dim peba.Dim, keys []string, bucket string) (out []peba.Point, ok bool, err error) {
	col, err := timeColumn(w.Field)
	if err != nil || isLocation(dim) || !heavyDim(dim) {
		return nil, false, err
	}
	rc, _ := rawCols(dim)
	segs := plan(w, dim, width, true)
	var (
		parts  []string
		args   []any
		rolled []int
	)
	const keyCond = " IN (SELECT unnest(?::VARCHAR[]))"
	for i, seg := range segs {
		sw := w
		sw.From, sw.To = seg.from, seg.to
		if seg.r == nil {
			where, wargs, none := windowWhere(sw, col, rc.k+keyCond)
			if none {
				return nil, true, nil
			}
			b := fmt.Sprintf(bucketExprs[width], "date_trunc('hour', "+col+")")
			parts = append(parts, fmt.Sprintf("SELECT %d AS seg, %s AS b, %s AS k, count(*)::BIGINT AS c, 0::BIGINT AS nh FROM events%s GROUP BY ALL", i, b, rc.k, where))
			args = append(append(args, keys), wargs...)
			continue
		}
		cells := cellsTable(seg.r)
		if cells == "" {
			return nil, false, nil
		}
		rolled = append(rolled, i)
		min := strconv.FormatInt(heavyMin[seg.r.gran], 10)
		where, wargs, none := windowWhere(sw, "t", "cnt >= "+min, "k"+keyCond, "dim = "+strconv.Itoa(int(dim)))
		if none {
			return nil, true, nil
		}
		parts = append(parts, fmt.Sprintf("SELECT %d, %s, k, sum(cnt)::BIGINT, count(*)::BIGINT FROM %s%s GROUP BY ALL", i, bucket, seg.r.table, where))
		args = append(append(args, keys), wargs...)
		cw, cargs, _ := windowWhere(sw, "t", "dim = "+strconv.Itoa(int(peba.DimPeerType)))
		cellRows := "SELECT t, community, peer_type FROM " + cells + cw
		if !typed(dim) {
			cellRows = "SELECT DISTINCT t, community FROM " + cells + cw
		}
		parts = append(parts, fmt.Sprintf("SELECT %d, NULL, NULL, count(*)::BIGINT, -1 FROM (%s)", i, cellRows))
		args = append(args, cargs...)
	}
	if len(rolled) == 0 {
		return nil, false, nil
	}
	rows, err := s.q(ctx).QueryContext(ctx, strings.Join(parts, " UNION ALL "), args...)
	if err != nil {
		return nil, false, fmt.Errorf("cannot query series: %w", err)
	}
	defer rows.Close()
	type pointKey struct {
		start time.Time
		key   string
	}
	points := map[pointKey]int64{}
	cells := map[int]int64{}
	heavy := map[string]map[int]int64{}
	for rows.Next() {
		var (
			seg   int
			start sql.NullTime
			k     sql.NullString
			c, nh int64
		)
		if err := rows.Scan(&seg, &start, &k, &c, &nh); err != nil {
			return nil, false, fmt.Errorf("cannot scan series: %w", err)
		}
		if nh < 0 {
			cells[seg] = c
			continue
		}
		points[pointKey{start.Time.UTC(), k.String}] += c
		if heavy[k.String] == nil {
			heavy[k.String] = map[int]int64{}
		}
		heavy[k.String][seg] += nh
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("cannot query series: %w", err)
	}
	var partial []string // keys that may have light rows
	for _, k := range keys {
		for _, seg := range rolled {
			if heavy[k][seg] < cells[seg] {
				partial = append(partial, k)
				break
			}
		}
	}
	if len(partial) > 0 {
		pk := make([]*heavyKey, len(partial))
		for i, k := range partial {
			pk[i] = &heavyKey{key: k}
		}
		if q, largs, ok := lightRows(w, dim, segs, pk, bucket); ok {
			if err := s.addLightPoints(ctx, q, largs, func(start time.Time, k string, n int64) {
				points[pointKey{start, k}] += n
			}); err != nil {
				return nil, false, err
			}
		}
	}
	for pk, n := range points {
		out = append(out, peba.Point{Start: pk.start, Key: pk.key, Count: n})
	}
	slices.SortFunc(out, func(a, b peba.Point) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out, true, nil
}

// addLightPoints runs a lightRows query with buckets and passes its rows
// to add.
func (s *Store) addLightPoints(ctx context.Context, q string, args []any, add func(start time.Time, k string, n int64)) error {
	rows, err := s.q(ctx).QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("cannot query series: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			seg int
			b   time.Time
			k   string
			n   int64
		)
		if err := rows.Scan(&seg, &b, &k, &n); err != nil {
			return fmt.Errorf("cannot scan series: %w", err)
		}
		add(b.UTC(), k, n)
	}
	return rows.Err()
}
