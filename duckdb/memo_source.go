package duckdb

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/internal/storerow"
)

// Count, Top and Series over the rollups with the closed-bucket memo
// (memo.go): the whole rollup buckets of a window that are closed are read
// once and kept as grouped rows; every request reads the rest (the open
// tail from the mark on and the partial edges) in one statement and merges
// in Go. The answers are those of source's single statement: the same
// rows, summed in another order.

// aggRow is a grouped row of a source (see source): the bucket start (UTC
// microseconds, if asked for), the key columns and the count.
type aggRow struct {
	t        int64
	k, l     string
	lat, lon float64
	n        int64
}

// closedAgg is what the memo keeps of the closed segments of one source
// read: its grouped rows and, for Top of a dim without labels, the counts
// per key and those keys in Top's order.
type closedAgg struct {
	rows   []aggRow
	byKey  map[string]int64
	sorted []peba.Bucket
	// locKeys are the formatted keys of the locations of rows (location
	// dims): formatting is most of the Go time of a Top of locations.
	locKeys map[[2]uint64]string
}

func (c *closedAgg) size() int {
	n := 64 + len(c.rows)*64 + len(c.sorted)*48 + len(c.byKey)*48 + len(c.locKeys)*48
	for i := range c.rows {
		n += len(c.rows[i].k) + len(c.rows[i].l)
	}
	for i := range c.sorted {
		n += 2 * len(c.sorted[i].Key)
	}
	return n
}

// aggKey is the key of a row for Top and Series of dim: k, or the
// formatted location.
func aggKey(dim peba.Dim, r *aggRow) string {
	if isLocation(dim) && r.k == "" {
		return storerow.LocKey(r.lat, r.lon)
	}
	return r.k
}

// prepareTop fills c's counts per key and their order.
func (c *closedAgg) prepareTop(dim peba.Dim) {
	c.byKey = map[string]int64{}
	if isLocation(dim) {
		c.locKeys = map[[2]uint64]string{}
	}
	for i := range c.rows {
		r := &c.rows[i]
		k := aggKey(dim, r)
		if c.locKeys != nil {
			c.locKeys[[2]uint64{math.Float64bits(r.lat), math.Float64bits(r.lon)}] = k
		}
		c.byKey[k] += r.n
	}
	for k, n := range c.byKey {
		if n != 0 {
			c.sorted = append(c.sorted, peba.Bucket{Key: k, Count: n})
		}
	}
	slices.SortFunc(c.sorted, peba.CompareBuckets)
}

// memoSplit splits w for the memo at mark (UTC microseconds): closed are
// whole rollup buckets that end by mark; edge, if not zero, is the partial
// first hour of w when that hour is closed (its events are kept, see
// hourEvents); rest are the segments read by every request (everything
// from mark on, as plan reads it, and a partial hour that is not closed).
// [lo, hi) spans the closed segments and the edge.
func memoSplit(w peba.Window, dim peba.Dim, maxGran time.Duration, mark int64) (closed []segment, edge segment, rest []segment, lo, hi int64) {
	from, to := w.From, w.To
	if !from.IsZero() {
		from = dbTime(from)
	}
	if !to.IsZero() {
		to = dbTime(to)
	}
	if mark == 0 || !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return nil, segment{}, nil, 0, 0
	}
	m := time.UnixMicro(mark).UTC()
	if !from.IsZero() && !from.Before(m) {
		return nil, segment{}, nil, 0, 0
	}
	var cands []*rollup
	for i := range rollups {
		r := &rollups[i]
		if r.field == w.Field && r.has(dim) && maxGran%r.gran == 0 && (w.PeerType == "" || typed(dim)) {
			cands = append(cands, r)
		}
	}
	if len(cands) == 0 {
		return nil, segment{}, nil, 0, 0
	}
	slices.SortFunc(cands, func(a, b *rollup) int { return int(b.gran - a.gran) })
	cto := to
	if cto.IsZero() || cto.After(m) {
		cto = m
	}
	start := from
	if !from.IsZero() {
		if fh := from.Truncate(time.Hour); !fh.Equal(from) {
			next := fh.Add(time.Hour)
			if next.After(cto) {
				rest = append(rest, segment{nil, from, cto, false})
				start = cto
			} else {
				edge = segment{nil, from, next, false}
				start = next
			}
		}
	}
	if start.IsZero() || start.Before(cto) {
		for _, seg := range split(start, cto, cands, nil) {
			if seg.r != nil {
				closed = append(closed, seg)
			} else {
				rest = append(rest, seg)
			}
		}
	}
	if to.IsZero() || to.After(m) {
		// The open part from the hour rows only: a day bucket read whole
		// would need its closed hours subtracted, a second table to read.
		open := cands
		for _, r := range cands {
			if r.gran == time.Hour {
				open = []*rollup{r}
			}
		}
		rest = cover(m, to, open, false, time.Now(), rest)
	}
	lo, hi = math.MaxInt64, math.MinInt64
	if !edge.from.IsZero() {
		lo, hi = edge.from.Truncate(time.Hour).UnixMicro(), edge.to.UnixMicro()
	}
	for _, seg := range closed {
		a, b := int64(math.MinInt64), seg.to.UnixMicro()
		if !seg.from.IsZero() {
			a = seg.from.UnixMicro()
		}
		lo, hi = min(lo, a), max(hi, b)
	}
	return closed, edge, rest, lo, hi
}

// hourEventsMax bounds the events of one hour that the memo reads one by
// one (hourEvents): ~80 bytes each while they are read, 12 kept. Hours
// hold far fewer at a fleet's usual rates. A saturating benchmark put 29M
// events in one hour: reading them took the server to 7 GB RSS and 30 s
// per request (docs/performance.md, session 11).
var hourEventsMax = 500_000

// hourEvents are the events of one closed hour of w's filters, for a
// partial first hour of a window: their times (UTC microseconds, sorted)
// and keys. A window that starts at any time in the hour sums those at or
// after its start.
type hourEvents struct {
	us   []int64
	key  []int32 // index in keys
	keys []aggRow
}

func (h *hourEvents) size() int {
	n := 64 + 12*len(h.us) + 64*len(h.keys)
	for i := range h.keys {
		n += len(h.keys[i].k) + len(h.keys[i].l)
	}
	return n
}

// rowsFrom returns the grouped rows of the events at or after from (UTC
// microseconds), with bucket start t.
func (h *hourEvents) rowsFrom(from, t int64) []aggRow {
	i, _ := slices.BinarySearch(h.us, from)
	counts := make([]int64, len(h.keys))
	for _, k := range h.key[i:] {
		counts[k]++
	}
	var out []aggRow
	for k, n := range counts {
		if n != 0 {
			r := h.keys[k]
			r.t, r.n = t, n
			out = append(out, r)
		}
	}
	return out
}

// hourEventsSQL returns the query of the events of the hour of seg (a
// partial hour) with w's filters, in memoSource's columns (p = 2, b = the
// time).
func hourEventsSQL(w peba.Window, seg segment, dim peba.Dim, keyCond string, keyArgs []any) (string, []any, bool) {
	col, _ := timeColumn(w.Field)
	kc, _ := rawCols(dim)
	if dim == peba.DimNone {
		kc = keyCols{"''", "''", "0::DOUBLE", "0::DOUBLE"}
	}
	sw := w
	sw.From = seg.from.Truncate(time.Hour)
	sw.To = sw.From.Add(time.Hour)
	var extra []string
	if keyCond != "" {
		extra = append(extra, fmt.Sprintf(keyCond, kc.k, kc.l, kc.lat, kc.lon))
	}
	where, args, none := windowWhere(sw, col, extra...)
	if none {
		return "", nil, false
	}
	if keyCond != "" {
		args = append(slices.Clone(keyArgs), args...)
	}
	return "SELECT 2 AS p, epoch_us(" + col + ") AS b, " + kc.k + " AS k, " + kc.l + " AS l, " + kc.lat + " AS lat, " + kc.lon + " AS lon, 1::BIGINT AS c FROM events" + where, args, true
}

// newHourEvents builds hourEvents of dim from rows of hourEventsSQL. The
// keys of location dims carry their formatted key in k, which the query
// leaves empty for them.
func newHourEvents(dim peba.Dim, rows []aggRow) *hourEvents {
	slices.SortFunc(rows, func(a, b aggRow) int { return cmpInt64(a.t, b.t) })
	h := &hourEvents{us: make([]int64, len(rows)), key: make([]int32, len(rows))}
	type kk struct {
		k, l     string
		lat, lon float64
	}
	at := map[kk]int32{}
	for i := range rows {
		r := &rows[i]
		k := kk{r.k, r.l, r.lat, r.lon}
		j, ok := at[k]
		if !ok {
			j = int32(len(h.keys))
			at[k] = j
			a := aggRow{k: r.k, l: r.l, lat: r.lat, lon: r.lon}
			if isLocation(dim) {
				a.k = storerow.LocKey(r.lat, r.lon)
			}
			h.keys = append(h.keys, a)
		}
		h.us[i], h.key[i] = r.t, j
	}
	return h
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// argsKey formats query arguments for a memo key, unambiguously.
func argsKey(args []any) string {
	var b strings.Builder
	for _, a := range args {
		switch v := a.(type) {
		case time.Time:
			b.WriteString("t" + strconv.FormatInt(v.UnixMicro(), 10))
		case string:
			b.WriteString(strconv.Quote(v))
		case []string:
			b.WriteString("[")
			for _, s := range v {
				b.WriteString(strconv.Quote(s) + ",")
			}
			b.WriteString("]")
		default:
			fmt.Fprintf(&b, "%T%v", v, v)
		}
		b.WriteString(";")
	}
	return b.String()
}

// memoSource reads the rows of dim in w as source does, grouped by key
// (and by the bucket SQL expression over t, if bucket is not ""): the
// closed segments from the memo (or read and kept), the rest from the
// database. ok is false if the memo cannot serve w (nothing closed, a
// write committing, or one committed during the read); the caller then
// reads as before.
func (s *Store) memoSource(ctx context.Context, w peba.Window, dim peba.Dim, width time.Duration, bucket string, keyCond string, keyArgs []any, forTop bool) (closed *closedAgg, fresh []aggRow, ok bool, err error) {
	return s.memoRows(ctx, w, dim, width, bucket, keyCond, keyArgs, forTop, true)
}

// memoRows is memoSource; without withClosed it leaves out the closed
// whole buckets (closed is empty), for callers that keep their own result
// of them.
func (s *Store) memoRows(ctx context.Context, w peba.Window, dim peba.Dim, width time.Duration, bucket string, keyCond string, keyArgs []any, forTop, withClosed bool) (closed *closedAgg, fresh []aggRow, ok bool, err error) {
	if _, err := timeColumn(w.Field); err != nil {
		return nil, nil, false, nil
	}
	if _, valid := rawCols(dim); !valid {
		return nil, nil, false, nil
	}
	if _, none := domainCond(w.Domains); none {
		return nil, nil, false, nil
	}
	fi := memoField(w.Field)
	maxGran := width
	if bucket == "" {
		maxGran = 24 * time.Hour
	}
	closedSegs, edge, rest, lo, hi := memoSplit(w, dim, maxGran, s.memoMark(fi))
	if len(closedSegs) == 0 && edge.from.IsZero() {
		return nil, nil, false, nil
	}
	if !withClosed {
		closedSegs = nil
	}
	r, ok := s.beginMemo(fi, lo, hi)
	if !ok {
		return nil, nil, false, nil
	}
	withTime := bucket != ""
	tcol := "0::BIGINT"
	if withTime {
		tcol = "epoch_us(" + bucket + ")"
	}
	var parts []string
	var args []any
	// The closed whole buckets, grouped.
	closed = &closedAgg{}
	var key string
	if len(closedSegs) > 0 {
		cq, cargs, cok, err := segmentsSQL(w, closedSegs, dim, withTime, false, keyCond, keyArgs)
		if err != nil || !cok {
			return nil, nil, false, err
		}
		key = r.key(fmt.Sprintf("src|%d|%s|%t|%s|%s", dim, bucket, forTop, argsKey(cargs), cq))
		if v, hit := r.get(key); hit {
			closed = v.(*closedAgg)
			key = ""
		} else {
			parts = append(parts, "SELECT 0 AS p, "+tcol+" AS b, k, l, lat, lon, sum(c)::BIGINT FROM "+cq+" GROUP BY ALL")
			args = append(args, cargs...)
		}
	}
	// The events of the partial first hour.
	var hev *hourEvents
	var hkey string
	if !edge.from.IsZero() {
		hq, hargs, hok := hourEventsSQL(w, edge, dim, keyCond, keyArgs)
		if !hok {
			return nil, nil, false, nil
		}
		hkey = r.key("hev|" + argsKey(hargs) + "|" + hq)
		if v, hit := r.get(hkey); hit {
			hev = v.(*hourEvents)
			hkey = ""
		} else {
			// An hour of more events than hourEventsMax is left to the
			// caller's statement, which groups in DuckDB.
			var n int
			err := s.q(ctx).QueryRowContext(ctx, "SELECT count(*) FROM ("+hq+" LIMIT "+strconv.Itoa(hourEventsMax+1)+")", hargs...).Scan(&n)
			if err != nil {
				return nil, nil, false, fmt.Errorf("cannot query statistics: %w", err)
			}
			if n > hourEventsMax {
				return nil, nil, false, nil
			}
			parts, args = append(parts, hq), append(args, hargs...)
		}
	}
	// The rest, one row per rollup row or event.
	if len(rest) > 0 {
		fq, fargs, fok, err := segmentsSQL(w, rest, dim, withTime, true, keyCond, keyArgs)
		if err != nil {
			return nil, nil, false, err
		}
		if fok {
			parts = append(parts, "SELECT 1 AS p, "+tcol+" AS b, k, l, lat, lon, c FROM "+fq)
			args = append(args, fargs...)
		}
	}
	var got, edgeRows []aggRow
	if len(parts) > 0 {
		rows, err := s.q(ctx).QueryContext(ctx, strings.Join(parts, " UNION ALL "), args...)
		if err != nil {
			return nil, nil, false, fmt.Errorf("cannot query statistics: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var p int
			var a aggRow
			if err := rows.Scan(&p, &a.t, &a.k, &a.l, &a.lat, &a.lon, &a.n); err != nil {
				return nil, nil, false, fmt.Errorf("cannot scan statistics: %w", err)
			}
			switch p {
			case 0:
				got = append(got, a)
			case 1:
				fresh = append(fresh, a)
			default:
				edgeRows = append(edgeRows, a)
			}
		}
		if err := rows.Err(); err != nil {
			return nil, nil, false, fmt.Errorf("cannot query statistics: %w", err)
		}
		if !r.valid() {
			return nil, nil, false, nil
		}
	}
	if key != "" {
		closed = &closedAgg{rows: got}
		if forTop {
			closed.prepareTop(dim)
		}
		r.put(key, closed, closed.size())
	}
	if !edge.from.IsZero() {
		if hkey != "" {
			hev = newHourEvents(dim, edgeRows)
			r.put(hkey, hev, hev.size())
		}
		var t int64
		if withTime {
			t = edge.from.Truncate(width).UnixMicro()
		}
		fresh = append(fresh, hev.rowsFrom(edge.from.UnixMicro(), t)...)
	}
	if forTop && closed.byKey == nil {
		closed.prepareTop(dim) // nothing closed but the edge
	}
	return closed, fresh, true, nil
}

// countMemo is count with the memo; ok false if it cannot serve w.
func (s *Store) countMemo(ctx context.Context, w peba.Window) (int64, bool, error) {
	closed, fresh, ok, err := s.memoSource(ctx, w, peba.DimNone, 0, "", "", nil, false)
	if err != nil || !ok {
		return 0, false, err
	}
	var n int64
	for _, rs := range [][]aggRow{closed.rows, fresh} {
		for i := range rs {
			n += rs[i].n
		}
	}
	return n, true, nil
}

// topMemo is top of a dim without a long tail, with the memo.
func (s *Store) topMemo(ctx context.Context, w peba.Window, dim peba.Dim, limit int) ([]peba.Bucket, bool, error) {
	closed, fresh, ok, err := s.memoSource(ctx, w, dim, 0, "", "", nil, !labeled(dim))
	if err != nil || !ok {
		return nil, false, err
	}
	if labeled(dim) {
		counts := map[[2]string]int64{}
		for _, rs := range [][]aggRow{closed.rows, fresh} {
			for i := range rs {
				counts[[2]string{rs[i].k, rs[i].l}] += rs[i].n
			}
		}
		return labelTop(counts, limit), true, nil
	}
	delta := map[string]int64{}
	if isLocation(dim) {
		// By coordinates first, then each distinct pair's key once.
		byLoc := map[[2]uint64]int64{}
		for i := range fresh {
			if fresh[i].k != "" { // formatted already (hourEvents)
				delta[fresh[i].k] += fresh[i].n
				continue
			}
			byLoc[[2]uint64{math.Float64bits(fresh[i].lat), math.Float64bits(fresh[i].lon)}] += fresh[i].n
		}
		for ll, n := range byLoc {
			k, ok := closed.locKeys[ll]
			if !ok {
				k = storerow.LocKey(math.Float64frombits(ll[0]), math.Float64frombits(ll[1]))
			}
			delta[k] += n
		}
	} else {
		for i := range fresh {
			delta[fresh[i].k] += fresh[i].n
		}
	}
	// Keys the rest does not have keep their closed counts, so only the
	// first limit of those in order can be in the answer.
	top := newTopN(limit)
	for k, d := range delta {
		top.add(peba.Bucket{Key: k, Count: closed.byKey[k] + d})
	}
	taken := 0
	for _, b := range closed.sorted {
		if limit > 0 && taken == limit {
			break
		}
		if _, ok := delta[b.Key]; !ok {
			top.add(peba.Bucket{Key: b.Key, Count: b.Count})
			taken++
		}
	}
	return top.result(), true, nil
}

// topN selects the first limit buckets (all if limit <= 0) in
// peba.CompareBuckets order, leaving out zero counts, of distinct keys
// added one at a time: the open tail of a location top has thousands of
// keys, and sorting all of them to keep 10 cost more than reading them.
type topN struct {
	limit int
	out   []peba.Bucket // sorted while limit > 0
}

func newTopN(limit int) *topN { return &topN{limit: limit} }

func (t *topN) add(b peba.Bucket) {
	if b.Count == 0 {
		return
	}
	if t.limit <= 0 {
		t.out = append(t.out, b)
		return
	}
	if len(t.out) == t.limit && peba.CompareBuckets(b, t.out[t.limit-1]) >= 0 {
		return
	}
	i, _ := slices.BinarySearchFunc(t.out, b, peba.CompareBuckets)
	if len(t.out) == t.limit {
		t.out = t.out[:t.limit-1]
	}
	t.out = slices.Insert(t.out, i, b)
}

// result returns the selected buckets in order, nil if none (as Top's
// other paths).
func (t *topN) result() []peba.Bucket {
	if t.limit <= 0 {
		slices.SortFunc(t.out, peba.CompareBuckets)
	}
	if len(t.out) == 0 {
		return nil
	}
	return t.out
}

// labelTop is Top of a country dim from the counts of its pairs of code
// and name (see topLabeled).
func labelTop(counts map[[2]string]int64, limit int) []peba.Bucket {
	type keyCount struct {
		peba.Bucket
		labelCount int64
	}
	byKey := map[string]*keyCount{}
	for kl, n := range counts {
		if n == 0 {
			continue
		}
		k, l := kl[0], kl[1]
		kc := byKey[k]
		if kc == nil {
			kc = &keyCount{Bucket: peba.Bucket{Key: k, Label: l}, labelCount: n}
			byKey[k] = kc
		} else if n > kc.labelCount || n == kc.labelCount && l < kc.Label {
			kc.Label, kc.labelCount = l, n
		}
		kc.Count += n
	}
	var out []peba.Bucket
	for _, kc := range byKey {
		if kc.Count != 0 {
			out = append(out, kc.Bucket)
		}
	}
	slices.SortFunc(out, peba.CompareBuckets)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// seriesMemo is series of a dim without a long tail, with the memo:
// bucket is the SQL bucket start over t; want, for locations, the keys
// asked for.
func (s *Store) seriesMemo(ctx context.Context, w peba.Window, width time.Duration, dim peba.Dim, bucket string, keyCond string, keyArgs []any, want map[string]bool) ([]peba.Point, bool, error) {
	closed, fresh, ok, err := s.memoSource(ctx, w, dim, width, bucket, keyCond, keyArgs, false)
	if err != nil || !ok {
		return nil, false, err
	}
	counts := map[pointKey]int64{}
	for _, rs := range [][]aggRow{closed.rows, fresh} {
		for i := range rs {
			k := aggKey(dim, &rs[i])
			if want != nil && !want[k] {
				continue
			}
			counts[pointKey{rs[i].t, k}] += rs[i].n
		}
	}
	out := pointsOf(counts)
	if len(out) == 0 && !isLocation(dim) {
		return nil, true, nil // as seriesKeys
	}
	return out, true, nil
}

// pointKey is a series point's bucket start (µs) and key.
type pointKey struct {
	t   int64
	key string
}

// pointsOf returns the points of counts that are not zero (segments
// subtracted from others can cancel), in series order; nil if none.
func pointsOf(counts map[pointKey]int64) []peba.Point {
	out := make([]peba.Point, 0, len(counts))
	for k, n := range counts {
		if n != 0 {
			out = append(out, peba.Point{Start: time.UnixMicro(k.t).UTC(), Key: k.key, Count: n})
		}
	}
	if len(out) == 0 {
		return nil
	}
	slices.SortFunc(out, cmpPoints)
	return out
}

// cmpPoints orders series points by bucket start, then key.
func cmpPoints(a, b peba.Point) int {
	if c := a.Start.Compare(b.Start); c != 0 {
		return c
	}
	return strings.Compare(a.Key, b.Key)
}
