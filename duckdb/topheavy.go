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
// events the rollup rows of ports barely shrink the events (10% of the
// generated ports are uniformly random: ~30k rows a day), so grouping them
// all cost 80-140 ms for a week or a month, while the top 10 are in rows
// with large counts.
//
// The closed buckets of a window are read from their summaries
// (tops_summary.go): the rollup rows with at least min events (heavy), and
// one peer-type row per cell (bucket, domain, and peer type for typed
// dims). topHeavy groups the heavy rows and, in full, the rest of the
// window (raw edges, the open hour, stale buckets): per key, h is a lower
// bound of its count. A key's rows that were left out are light, at most
// min-1 each and at most one per cell in which it has no heavy row, which
// bounds its count from above; a key without any heavy row is bounded by
// (min-1) x cells summed over the summary segments. If that bound is below
// the limit-th largest h, the top keys are among those whose upper bound
// reaches it; their light rows are read from the rollups, in the buckets
// where they can have some (keyCounts), and they are sorted by their exact
// counts. Otherwise topHeavy gives up and Top groups every row, so answers
// are always exact (TestRollupsMatchRaw, TestHeavy). Series of the keys of
// a Top reads their heavy rows and light rows the same way (seriesHeavy).

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
	h     int64 // count in heavy rows and in the segments read in full
	full  int64 // the part of h from the segments read in full
	slack int64 // most its light rows can add
}

// topsReadable reports whether the summaries can answer w for dim: they
// count received times, and keep peer types only for typed dims.
func topsReadable(w peba.Window, dim peba.Dim) bool {
	return heavyDim(dim) && w.Field == peba.Received && (w.PeerType == "" || typed(dim))
}

// topHeavy answers Top(w, dim, limit) as described above; ok is false if
// it cannot prove the answer, and the caller groups all rows.
func (s *Store) topHeavy(ctx context.Context, w peba.Window, dim peba.Dim, limit int) (out []peba.Bucket, ok bool, err error) {
	out, _, ok, err = s.topHeavyN(ctx, w, dim, limit, limit)
	return out, ok, err
}

// topHeavyN is topHeavy for as many keys up to limit as the summaries
// prove, but at least least (the memo keeps a top longer than asked,
// memo_tops.go); all is true if out holds every key with events.
func (s *Store) topHeavyN(ctx context.Context, w peba.Window, dim peba.Dim, limit, least int) (out []peba.Bucket, all, ok bool, err error) {
	if limit <= 0 || !topsReadable(w, dim) {
		return nil, false, false, nil
	}
	if _, none := domainCond(w.Domains); none {
		return nil, true, true, nil
	}
	st, err := s.readTopsState(ctx)
	if err != nil {
		return nil, false, false, err
	}
	segs := topsPlan(w, 24*time.Hour, st)
	if !slices.ContainsFunc(segs, func(g topsSeg) bool { return g.sum != nil }) {
		return nil, false, false, nil // nothing closed: Top's own query is as cheap
	}
	q, args := topsQuery(w, dim, segs, nil, false)
	rows, err := s.q(ctx).QueryContext(ctx, q, args...)
	if err != nil {
		return nil, false, false, fmt.Errorf("cannot query top values: %w", err)
	}
	defer rows.Close()
	byKey := map[string]*heavyKey{}
	cells := map[int]int64{}
	heavy := map[string]map[int]int64{} // heavy rows per key and segment
	for rows.Next() {
		var (
			seg   int
			b     sql.NullTime
			k     sql.NullString
			c, nh int64
		)
		if err := rows.Scan(&seg, &b, &k, &c, &nh); err != nil {
			return nil, false, false, fmt.Errorf("cannot scan top values: %w", err)
		}
		if nh < 0 {
			cells[seg] += c
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
		if segs[seg].sum == nil {
			hk.full += c
		}
		heavy[key][seg] += nh
	}
	if err := rows.Err(); err != nil {
		return nil, false, false, fmt.Errorf("cannot query top values: %w", err)
	}
	var bound int64 // most a key without heavy rows can have
	for i, g := range segs {
		if g.sum != nil {
			bound += (g.sum.min - 1) * cells[i]
		}
	}
	cands := make([]*heavyKey, 0, len(byKey))
	for key, hk := range byKey {
		for i, g := range segs {
			if g.sum != nil {
				hk.slack += (g.sum.min - 1) * (cells[i] - heavy[key][i])
			}
		}
		cands = append(cands, hk)
	}
	slices.SortFunc(cands, func(a, b *heavyKey) int { return cmpCount(a.h, b.h, a.key, b.key) })
	// Only keys whose lower bound exceeds what a key without heavy rows
	// can have are provably above all those.
	proven := len(cands)
	if bound > 0 {
		proven, _ = slices.BinarySearchFunc(cands, bound, func(hk *heavyKey, b int64) int { return cmpInt64(b, hk.h) })
	}
	if len(cands) < limit && bound == 0 {
		limit, all = len(cands), true
	} else if proven < limit {
		if proven < least {
			return nil, false, false, nil // keys without heavy rows may be in the answer
		}
		limit = proven
	}
	if limit == 0 {
		return nil, true, true, nil
	}
	kth := cands[limit-1].h
	if bound >= kth {
		return nil, false, false, nil
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
		return nil, false, false, nil
	}
	if len(refine) > 0 {
		var summarized []topsSeg
		for _, g := range segs {
			if g.sum != nil {
				summarized = append(summarized, g)
			}
		}
		keys := make([]string, len(refine))
		for i, hk := range refine {
			keys[i] = hk.key
		}
		counts, err := s.keyCounts(ctx, w, dim, summarized, keys)
		if err != nil {
			return nil, false, false, err
		}
		for _, hk := range refine {
			hk.h = hk.full
		}
		byKey := make(map[string]*heavyKey, len(refine))
		for _, hk := range refine {
			byKey[hk.key] = hk
		}
		for bk, n := range counts {
			byKey[bk.key].h += n
		}
	}
	slices.SortFunc(top, func(a, b *heavyKey) int { return cmpCount(a.h, b.h, a.key, b.key) })
	for _, hk := range top[:limit] {
		out = append(out, peba.Bucket{Key: hk.key, Count: hk.h})
	}
	return out, all, true, nil
}

// topsQuery returns the query over segs of the rows of dim in w, with
// columns seg (index in segs), b (the bucket start if perBucket: a rollup
// bucket, the hour of a raw event; else NULL), k, c (count) and nh (the
// number of heavy rows in a summary segment, 0 elsewhere), and one row per
// segment (or bucket) of a summary with k NULL, c its cells and nh -1.
// keys, if not nil, restricts the rows to those keys.
func topsQuery(w peba.Window, dim peba.Dim, segs []topsSeg, keys []string, perBucket bool) (string, []any) {
	col, _ := timeColumn(w.Field)
	rc, _ := rawCols(dim)
	var parts []string
	var args []any
	dimCond := "dim = " + strconv.Itoa(int(dim))
	for i, g := range segs {
		sw := w
		sw.From, sw.To = g.from, g.to
		b, rawB := "NULL::TIMESTAMP", "NULL::TIMESTAMP"
		if perBucket {
			b, rawB = "t", "date_trunc('hour', "+col+")"
		}
		var kc []string
		var kargs []any
		if keys != nil {
			kc, kargs = []string{keyIn("k", len(keys))}, []any{keys}
		}
		bc, bargs := g.bucketCond()
		if bc != "" {
			kc, kargs = append(kc, bc), append(kargs, bargs...)
		}
		switch {
		case g.sum == nil && g.exact == "":
			var rkc []string
			if keys != nil {
				rkc = []string{keyIn(rc.k, len(keys))}
			}
			where, wargs, _ := windowWhere(sw, col, rkc...)
			parts = append(parts, fmt.Sprintf("SELECT %d AS seg, %s AS b, %s AS k, count(*)::BIGINT AS c, 0::BIGINT AS nh FROM events%s GROUP BY ALL",
				i, rawB, rc.k, where))
			args = append(append(args, kargs...), wargs...)
		case g.sum == nil:
			where, wargs, _ := windowWhere(sw, "t", append(kc, dimCond)...)
			parts = append(parts, fmt.Sprintf("SELECT %d, %s, k, sum(cnt)::BIGINT, 0 FROM %s%s GROUP BY ALL", i, b, g.exact, where))
			args = append(append(args, kargs...), wargs...)
		default:
			where, wargs, _ := windowWhere(sw, "t", append(kc, dimCond)...)
			parts = append(parts, fmt.Sprintf("SELECT %d, %s, k, sum(cnt)::BIGINT, count(*)::BIGINT FROM %s%s GROUP BY ALL", i, b, g.sum.r.table, where))
			args = append(append(args, kargs...), wargs...)
			// The cells: peer-type rows are one per (bucket, domain, type).
			cc, cargs := []string{"dim = " + strconv.Itoa(int(peba.DimPeerType))}, bargs
			if bc != "" {
				cc = append(cc, bc)
			}
			cw, wargs, _ := windowWhere(sw, "t", cc...)
			cargs = append(slices.Clone(cargs), wargs...)
			cellRows := "SELECT t, community, peer_type FROM " + g.sum.r.table + cw
			if !typed(dim) {
				cellRows = "SELECT DISTINCT t, community FROM " + g.sum.r.table + cw
			}
			cb := "NULL::TIMESTAMP"
			if perBucket {
				cb = "t"
			}
			parts = append(parts, fmt.Sprintf("SELECT %d, %s, NULL, count(*)::BIGINT, -1 FROM (%s) GROUP BY ALL", i, cb, cellRows))
			args = append(args, cargs...)
		}
	}
	return strings.Join(parts, " UNION ALL "), args
}

// maxListContains is the longest list compared with list_contains in the
// filter of a scan (linear in the list for every row); longer lists are
// joined. A semi-join's planning and pipelines cost about as much as a
// small summary query (measured).
const maxListContains = 64

// keyIn returns the condition that the key expression k is one of n keys
// given as a VARCHAR[] argument.
func keyIn(k string, n int) string {
	if n <= maxListContains {
		return "list_contains(?::VARCHAR[], " + k + ")"
	}
	return k + " IN (SELECT unnest(?::VARCHAR[]))"
}

// bucketKey is a count of keyCounts: a bucket start and a key.
type bucketKey struct {
	start time.Time
	key   string
}

// keyCounts returns the counts of keys in segs per bucket (a rollup
// bucket, or the hour of a raw event): in summary segments the heavy rows
// plus the light rows of the buckets in which a key has fewer heavy rows
// than there are cells, elsewhere all rows.
func (s *Store) keyCounts(ctx context.Context, w peba.Window, dim peba.Dim, segs []topsSeg, keys []string) (map[bucketKey]int64, error) {
	q, args := topsQuery(w, dim, segs, keys, true)
	rows, err := s.q(ctx).QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot query counts of keys: %w", err)
	}
	defer rows.Close()
	type segBucket struct {
		seg int
		t   time.Time
	}
	counts := map[bucketKey]int64{}
	cells := map[segBucket]int64{}
	heavy := map[segBucket]map[string]int64{}
	for rows.Next() {
		var (
			seg   int
			b     time.Time
			k     sql.NullString
			c, nh int64
		)
		if err := rows.Scan(&seg, &b, &k, &c, &nh); err != nil {
			return nil, fmt.Errorf("cannot scan counts of keys: %w", err)
		}
		sb := segBucket{seg, b.UTC()}
		if nh < 0 {
			cells[sb] = c
			continue
		}
		counts[bucketKey{sb.t, k.String}] += c
		if nh > 0 {
			if heavy[sb] == nil {
				heavy[sb] = map[string]int64{}
			}
			heavy[sb][k.String] += nh
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot query counts of keys: %w", err)
	}
	rows.Close()
	// The buckets, per summary, in which some key may have light rows.
	missing := map[*topsSummary][]time.Time{}
	var lightKeys []string
	for sb, n := range cells {
		for _, k := range keys {
			if heavy[sb][k] < n {
				sum := segs[sb.seg].sum
				missing[sum] = append(missing[sum], sb.t)
				if !slices.Contains(lightKeys, k) {
					lightKeys = append(lightKeys, k)
				}
			}
		}
	}
	if len(missing) == 0 {
		return counts, nil
	}
	// Light rows are below min: reading them for a key and bucket that has
	// only heavy rows adds nothing. The range of the buckets lets zone maps
	// skip the row groups outside it.
	var parts []string
	args = nil
	for sum, ts := range missing {
		slices.SortFunc(ts, time.Time.Compare)
		ts = slices.Compact(ts)
		us := make([]int64, len(ts))
		for i, t := range ts {
			us[i] = t.UnixMicro()
		}
		sw := w
		sw.From, sw.To = ts[0], ts[len(ts)-1].Add(sum.r.gran)
		conds, cargs := []string{keyIn("k", len(lightKeys))}, []any{lightKeys}
		if len(us) <= maxListContains {
			// Only narrows the range: the other buckets have no light rows
			// of these keys.
			conds, cargs = append(conds, "list_contains(?::BIGINT[], epoch_us(t))"), append(cargs, us)
		}
		where, wargs, _ := windowWhere(sw, "t", append(conds, "dim = "+strconv.Itoa(int(dim)), "cnt < "+strconv.FormatInt(sum.min, 10))...)
		parts = append(parts, "SELECT t, k, sum(cnt)::BIGINT FROM "+sum.base+where+" GROUP BY ALL")
		args = append(append(args, cargs...), wargs...)
	}
	rows, err = s.q(ctx).QueryContext(ctx, strings.Join(parts, " UNION ALL "), args...)
	if err != nil {
		return nil, fmt.Errorf("cannot query counts of keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			b time.Time
			k string
			n int64
		)
		if err := rows.Scan(&b, &k, &n); err != nil {
			return nil, fmt.Errorf("cannot scan counts of keys: %w", err)
		}
		counts[bucketKey{b.UTC(), k}] += n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot query counts of keys: %w", err)
	}
	return counts, nil
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

// seriesHeavy answers Series(w, width, dim, keys) of a long-tail dim from
// the summaries, as keyCounts reads them. ok is false if there is no
// summary to read.
func (s *Store) seriesHeavy(ctx context.Context, w peba.Window, width time.Duration, dim peba.Dim, keys []string) (out []peba.Point, ok bool, err error) {
	if !topsReadable(w, dim) {
		return nil, false, nil
	}
	if _, none := domainCond(w.Domains); none {
		return nil, true, nil
	}
	st, err := s.readTopsState(ctx)
	if err != nil {
		return nil, false, err
	}
	segs := topsPlan(w, width, st)
	if !slices.ContainsFunc(segs, func(g topsSeg) bool { return g.sum != nil }) {
		return nil, false, nil
	}
	counts, err := s.keyCounts(ctx, w, dim, segs, keys)
	if err != nil {
		return nil, false, err
	}
	points := map[bucketKey]int64{}
	for bk, n := range counts {
		points[bucketKey{bk.start.Truncate(width), bk.key}] += n
	}
	for bk, n := range points {
		out = append(out, peba.Point{Start: bk.start, Key: bk.key, Count: n})
	}
	slices.SortFunc(out, cmpPoints)
	return out, true, nil
}
