package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/internal/storerow"
)

// topBounded answers Top of a long-tail dim (target ports, URLs of one
// peer type, source locations) without reading the tail. On the 10M-event
// benchmark the day rows of ports barely shrink the events (10% of the
// generated ports are uniformly random: ~30k rows a day), so grouping
// every row of 28 days cost 700-850 ms, while the top 10 keys sit in a
// few rows with large counts. It is the threshold algorithm of Fagin et
// al. over the rollup buckets, exact like every other answer:
//
//   - a list is the rows of one bucket and domain (and peer type, for
//     URLs); its N largest rows come from the index (t, community,
//     peer_type, cnt DESC) of the dim's partition (migration 0005);
//   - a key's count in a list is the sum of its rows, one per rollup shard
//     that wrote the bucket. S, the number of such shards, is read from the
//     list's peer-type rows, which every append writes next to the dim's
//     rows and which retention never deletes while the bucket has events
//     (fold keeps them with count 0). So a key that is not among a list's
//     N rows has at most S x (the N-th count) there, and at most the
//     list's total minus its N rows' counts;
//   - the raw edges of the window (leadComplement, tailAlternatives) are
//     counted exactly for every key in them.
//
// Summing the rows seen and the raw counts gives each key a lower bound,
// adding the unseen bounds an upper one; a key seen nowhere is bounded by
// the sum of the unseen bounds, T. The keys whose upper bound reaches the
// limit-th largest lower bound get their exact counts (index lookups by
// bucket and key hash), and if the limit-th exact count exceeds T no other
// key can reach the top. Otherwise N grows; past topMaxN, or for windows of
// too many buckets, topBounded gives up and Top groups every row.
// TestTopBounded and TestRollupsMatchRaw compare it with the raw answers.

const (
	// topMaxN bounds the rows read per list.
	topMaxN = 2000
	// topMaxLists bounds the lists (buckets x domains) of a window.
	topMaxLists = 2000
)

// boundedDim reports whether Top of dim may use topBounded: the long-tail
// dims with a top index (0005) whose key determines the row hash (URLs
// only with a peer type, which is part of their key).
func boundedDim(dim peba.Dim, w peba.Window) bool {
	switch dim {
	case peba.DimDstPort, peba.DimSrcLocation:
		return true
	case peba.DimURL:
		return w.PeerType != ""
	}
	return false
}

// tbKey is a key of a long-tail dim as stored (escaped k, canonical
// coordinate bits).
type tbKey struct {
	k        string
	lat, lon uint64
}

func tbKeyOf(k string, lat, lon float64) tbKey {
	return tbKey{k, math.Float64bits(storerow.CanonFloat(lat)), math.Float64bits(storerow.CanonFloat(lon))}
}

// tbList identifies a list: segment index, bucket, domain.
type tbList struct {
	seg       int
	t         int64
	community bool
}

type tbListInfo struct {
	rows   int   // rows read (at most N)
	last   int64 // smallest count read
	seen   int64 // sum of the counts read
	shards int64 // shards that wrote the bucket
	total  int64 // events of the bucket (its peer-type rows)
}

// bucketsSQL is an array expression of the bucket starts of seg (a rollup
// segment): from seg.from (or the table's first bucket of dim) to the last
// bucket before seg.to (or the table's last bucket of dim).
func bucketsSQL(seg segment, dim peba.Dim, a *args) string {
	d := strconv.Itoa(int(dim))
	lo := "(SELECT min(t) FROM " + seg.r.table + " WHERE dim = " + d + ")"
	if !seg.from.IsZero() {
		lo = a.add(seg.from) + "::timestamp"
	}
	hi := "(SELECT max(t) FROM " + seg.r.table + " WHERE dim = " + d + ")"
	if !seg.to.IsZero() {
		hi = a.add(seg.to.Add(-seg.r.gran)) + "::timestamp"
	}
	return "ARRAY(SELECT generate_series(" + lo + ", " + hi + ", interval '" + strconv.Itoa(int(seg.r.gran/time.Second)) + " seconds'))"
}

// topBounded returns Top(w, dim, limit) as described above, or ok false
// if the caller must group every row.
func (s *Store) topBounded(ctx context.Context, w peba.Window, dim peba.Dim, limit int) (out []peba.Bucket, ok bool, err error) {
	if limit <= 0 || !boundedDim(dim, w) {
		return nil, false, nil
	}
	col, err := timeColumn(w.Field)
	if err != nil {
		return nil, false, err
	}
	var comms []bool
	for _, d := range w.Domains {
		if c := d == peba.DomainCommunity; (d == peba.DomainCommunity || d == peba.DomainPrivate) && !slices.Contains(comms, c) {
			comms = append(comms, c)
		}
	}
	if len(comms) == 0 {
		return nil, true, nil
	}
	pt := ""
	if typed(dim) {
		pt = escText(w.PeerType)
	}
	segs := plan(w, dim, 24*time.Hour, true)
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// Generic plans, as in count: these statements' raw parts are
		// short edges (a created-time edge cannot prune partitions at
		// all), and planning them per call over every partition cost
		// about as much as running them (2-3 ms for the locations).
		if _, err := tx.Exec(ctx, "SET LOCAL plan_cache_mode = force_generic_plan"); err != nil {
			return err
		}
		segs, err = resolveTail(ctx, tx, segs, col)
		if err != nil {
			return err
		}
		out, ok, err = topBoundedTx(ctx, tx, w, dim, limit, segs, comms, pt)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("cannot query top values: %w", err)
	}
	return out, ok, nil
}

// resolveTail keeps, of tailAlternatives' alternatives (the bucket, or the
// segments it replaces), the one that applies in tx's snapshot.
func resolveTail(ctx context.Context, tx pgx.Tx, segs []segment, col string) ([]segment, error) {
	for i := range segs {
		if segs[i].cut.IsZero() {
			continue
		}
		var after bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT FROM events WHERE "+col+" >= $1)", segs[i].cut).Scan(&after); err != nil {
			return nil, err
		}
		return slices.DeleteFunc(segs, func(sg segment) bool { return !sg.cut.IsZero() && sg.ifEmpty == after }), nil
	}
	return segs, nil
}

func topBoundedTx(ctx context.Context, tx pgx.Tx, w peba.Window, dim peba.Dim, limit int, segs []segment, comms []bool, pt string) ([]peba.Bucket, bool, error) {
	// Raw segments: exact counts of every key in them.
	raw := map[tbKey]int64{}
	rc, _ := rawCols(dim)
	var rollupSegs []int
	for i, seg := range segs {
		if seg.r != nil {
			rollupSegs = append(rollupSegs, i)
			continue
		}
		sw := w
		sw.From, sw.To = seg.from, seg.to
		col, _ := timeColumn(w.Field)
		var a args
		conds, _ := windowConds(sw, col, &a)
		rows, err := tx.Query(ctx, "SELECT "+rc.k+", "+rc.lat+", "+rc.lon+", count(*) FROM events"+whereClause(conds)+" GROUP BY 1, 2, 3", a...)
		if err != nil {
			return nil, false, err
		}
		var (
			k        string
			lat, lon float64
			n        int64
		)
		if _, err := pgx.ForEachRow(rows, []any{&k, &lat, &lon, &n}, func() error {
			if seg.neg {
				n = -n
			}
			raw[tbKeyOf(k, lat, lon)] += n
			return nil
		}); err != nil {
			return nil, false, err
		}
	}
	if len(rollupSegs) == 0 {
		return nil, false, nil // no tail to skip: Top's own query is as cheap
	}

	// Shards and totals of every list, from the peer-type rows.
	lists := map[tbList]*tbListInfo{}
	{
		var a args
		var parts []string
		cs := a.add(comms)
		for _, i := range rollupSegs {
			seg := segs[i]
			q := "SELECT " + strconv.Itoa(i) + ", t, community, count(DISTINCT shard), sum(cnt)::bigint FROM " + seg.r.table +
				" WHERE dim = " + strconv.Itoa(int(peba.DimPeerType)) + " AND t = ANY(" + bucketsSQL(seg, dim, &a) + ") AND community = ANY(" + cs + "::boolean[])"
			if pt != "" {
				q += " AND peer_type = " + a.add(pt)
			}
			parts = append(parts, q+" GROUP BY 2, 3")
		}
		rows, err := tx.Query(ctx, strings.Join(parts, " UNION ALL "), a...)
		if err != nil {
			return nil, false, err
		}
		var (
			seg           int32
			t             time.Time
			community     bool
			shards, total int64
		)
		if _, err := pgx.ForEachRow(rows, []any{&seg, &t, &community, &shards, &total}, func() error {
			lists[tbList{int(seg), t.UnixMicro(), community}] = &tbListInfo{shards: shards, total: total}
			return nil
		}); err != nil {
			return nil, false, err
		}
	}
	if len(lists) > topMaxLists {
		return nil, false, nil
	}

	for n := 4*limit + 40; n <= topMaxN; n *= 4 {
		out, ok, err := topBoundedRound(ctx, tx, dim, limit, n, segs, rollupSegs, comms, pt, lists, raw)
		if err != nil || ok {
			return out, ok, err
		}
	}
	return nil, false, nil
}

// topBoundedRound is one try of topBoundedTx with N rows per list.
func topBoundedRound(ctx context.Context, tx pgx.Tx, dim peba.Dim, limit, n int, segs []segment, rollupSegs []int,
	comms []bool, pt string, lists map[tbList]*tbListInfo, raw map[tbKey]int64) ([]peba.Bucket, bool, error) {
	for _, l := range lists {
		l.rows, l.last, l.seen = 0, 0, 0
	}
	type cand struct {
		lb, ub int64
		rows   map[tbList]int64 // rows seen per list
	}
	cands := map[tbKey]*cand{}
	get := func(k tbKey) *cand {
		c := cands[k]
		if c == nil {
			c = &cand{lb: raw[k], rows: map[tbList]int64{}}
			cands[k] = c
		}
		return c
	}
	for k := range raw {
		get(k)
	}
	{
		var a args
		var parts []string
		cs, lim, p := a.add(comms), a.add(int64(n)), a.add(pt)
		for _, i := range rollupSegs {
			seg := segs[i]
			parts = append(parts, "SELECT "+strconv.Itoa(i)+", b.t, c.community, x.k, x.lat, x.lon, x.cnt FROM unnest("+
				bucketsSQL(seg, dim, &a)+") b(t) CROSS JOIN unnest("+cs+"::boolean[]) c(community) CROSS JOIN LATERAL "+
				// The dim's partition itself: through the parent, "dim = N"
				// stays a filter that needs the heap, and the list could
				// not be read from the index alone.
				"(SELECT k, lat, lon, cnt FROM "+seg.r.table+"_d"+strconv.Itoa(int(dim))+" r WHERE"+
				" r.t = b.t AND r.community = c.community AND r.peer_type = "+p+" ORDER BY r.cnt DESC LIMIT "+lim+") x")
		}
		rows, err := tx.Query(ctx, strings.Join(parts, " UNION ALL "), a...)
		if err != nil {
			return nil, false, err
		}
		var (
			seg       int32
			t         time.Time
			community bool
			k         string
			lat, lon  float64
			cnt       int64
		)
		if _, err := pgx.ForEachRow(rows, []any{&seg, &t, &community, &k, &lat, &lon, &cnt}, func() error {
			id := tbList{int(seg), t.UnixMicro(), community}
			l := lists[id]
			if l == nil {
				// Rows without peer-type rows: only if the invariant
				// does not hold. Give up rather than guess.
				return errNoBound
			}
			l.rows++
			l.last = cnt
			l.seen += cnt
			c := get(tbKeyOf(k, lat, lon))
			c.lb += cnt
			c.rows[id]++
			return nil
		}); err == errNoBound {
			return nil, false, nil
		} else if err != nil {
			return nil, false, err
		}
	}
	// unseen bounds a key's count in a list outside the rows read.
	unseen := func(l *tbListInfo, rowsSeen int64) int64 {
		if l.rows < n {
			return 0 // the whole list was read
		}
		return max(0, min(l.total-l.seen, (l.shards-rowsSeen)*l.last))
	}
	var tNone int64 // bound of a key seen nowhere
	for _, l := range lists {
		tNone += unseen(l, 0)
	}
	keys := make([]tbKey, 0, len(cands))
	for k, c := range cands {
		c.ub = c.lb + tNone
		for id, r := range c.rows {
			c.ub += unseen(lists[id], r) - unseen(lists[id], 0)
		}
		keys = append(keys, k)
	}
	// The candidates that may be in the top: upper bound at least the
	// limit-th largest lower bound.
	var lbK int64 = math.MinInt64
	if len(keys) >= limit {
		lbs := make([]int64, len(keys))
		for i, k := range keys {
			lbs[i] = cands[k].lb
		}
		slices.SortFunc(lbs, func(a, b int64) int { return cmp.Compare(b, a) })
		lbK = lbs[limit-1]
	}
	keys = slices.DeleteFunc(keys, func(k tbKey) bool { return cands[k].ub < lbK })
	if len(keys) > 4*topMaxN {
		return nil, false, nil
	}
	exact, err := exactCounts(ctx, tx, dim, segs, rollupSegs, comms, pt, keys)
	if err != nil {
		return nil, false, err
	}
	out := make([]peba.Bucket, 0, len(keys))
	for _, k := range keys {
		if c := exact[k] + raw[k]; c > 0 {
			b := peba.Bucket{Key: unescText(k.k), Count: c}
			if isLocation(dim) {
				b.Key = storerow.LocKey(math.Float64frombits(k.lat), math.Float64frombits(k.lon))
			}
			out = append(out, b)
		}
	}
	slices.SortFunc(out, peba.CompareBuckets)
	out = out[:min(limit, len(out))]
	// A key seen nowhere has at most tNone: it must stay below the last
	// key returned (strictly: it could otherwise tie and sort first), or,
	// with fewer than limit keys, be impossible.
	if (len(out) == limit && out[limit-1].Count > tNone) || (len(out) < limit && tNone == 0) {
		if len(out) == 0 {
			return nil, true, nil
		}
		return out, true, nil
	}
	return nil, false, nil
}

var errNoBound = errors.New("rollup rows without peer-type rows")

// exactCounts returns the counts of keys in the rollup segments, by range
// scans of the index on (h, t) of the dim's partition (migration 0005).
func exactCounts(ctx context.Context, tx pgx.Tx, dim peba.Dim, segs []segment, rollupSegs []int, comms []bool, pt string, keys []tbKey) (map[tbKey]int64, error) {
	out := map[tbKey]int64{}
	if len(keys) == 0 {
		return out, nil
	}
	byHash := make(map[[16]byte]tbKey, len(keys))
	hashes := make([][16]byte, len(keys))
	for i, k := range keys {
		rk := rollupKey{peerType: pt, k: k.k, lat: k.lat, lon: k.lon}
		hashes[i] = rk.hash()
		byHash[hashes[i]] = k
	}
	var a args
	var parts []string
	cs, hs := a.add(comms), a.add(hashes)
	for _, i := range rollupSegs {
		seg := segs[i]
		var conds []string
		if !seg.from.IsZero() {
			conds = append(conds, "t >= "+a.add(seg.from))
		}
		if !seg.to.IsZero() {
			conds = append(conds, "t < "+a.add(seg.to))
		}
		conds = append(conds, "community = ANY("+cs+"::boolean[])", "h = ANY("+hs+"::uuid[])")
		parts = append(parts, "SELECT h, sum(cnt)::bigint FROM "+seg.r.table+"_d"+strconv.Itoa(int(dim))+whereClause(conds)+" GROUP BY h")
	}
	rows, err := tx.Query(ctx, strings.Join(parts, " UNION ALL "), a...)
	if err != nil {
		return nil, err
	}
	var (
		h [16]byte
		c int64
	)
	_, err = pgx.ForEachRow(rows, []any{&h, &c}, func() error {
		out[byHash[h]] += c
		return nil
	})
	return out, err
}
