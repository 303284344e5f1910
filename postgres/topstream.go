package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/peba-go/peba"
)

// topStreamMax bounds the rows topStream reads: about 14 hours of raw
// events of the 10M-event benchmark. Wider windows are grouped in SQL,
// which sends one row per key instead of one per event or rollup row. A
// variable for TestTopStream.
var topStreamMax = 200_000

// endOfTime bounds the rollup rows of windows that end now (see
// topStream).
var endOfTime = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// topStream answers Top of source addresses (retrieveIPs: the last two
// hours) by summing in Go the rows of the window's segments (plan): the
// rollup rows of its whole hours (migration 0006) and one row per raw
// event of its edges, ungrouped. ok is false if they are more than
// topStreamMax rows; Top then groups in SQL.
//
// Nearly every address of such a window is its own group (7,000 of
// 26,000 events in two hours on the 10M-event benchmark), and PostgreSQL
// spends a few µs per row in every node of a plan: grouping the segments,
// grouping their UNION ALL again and sorting cost the backend about twice
// the CPU of sending the rows (docs/performance.md, "PostgreSQL:
// statistics endpoints"); sorting in Go does the rest in a fraction.
// The answer is the SQL one exactly: keys are compared as stored
// (escaped), as ORDER BY k compares them, keys whose sum is not positive
// are dropped (leadComplement), and TestTopStream and TestRollupsMatchRaw
// compare the two.
func (s *Store) topStream(ctx context.Context, w peba.Window, dim peba.Dim, limit int) (out []peba.Bucket, ok bool, err error) {
	col, err := timeColumn(w.Field)
	if err != nil {
		return nil, false, err
	}
	rc, _ := rawCols(dim)
	var (
		a     args
		parts []string
	)
	for _, seg := range plan(w, dim, 24*time.Hour, true) {
		sw := w
		sw.From, sw.To = seg.from, seg.to
		sel, tcol, table := rc.k+", 1::bigint", col, "events"
		if seg.neg {
			sel = rc.k + ", -1::bigint"
		}
		if seg.r != nil {
			if sw.To.IsZero() {
				// A bound in a parameter, so that the generic plan that
				// PostgreSQL caches for the statement after a few calls
				// estimates a range of the partition (0.5%) and scans its
				// index; "t >= $n" alone is a third of it, a sequential
				// scan of every hour (0.5 s on 10M events instead of
				// 10-20 ms).
				sw.To = endOfTime
			}
			rd, _ := seg.r.rowDim(dim)
			sel, tcol, table = "k, cnt", "t", seg.r.table+"_d"+strconv.Itoa(int(rd))
		}
		conds, none := windowConds(sw, tcol, &a)
		if none {
			return nil, true, nil
		}
		if !seg.cut.IsZero() {
			// As in source: one snapshot decides between the bucket and
			// the raw tail.
			exists := "EXISTS (SELECT FROM events WHERE " + col + " >= " + a.add(seg.cut) + ")"
			if seg.ifEmpty {
				exists = "NOT " + exists
			}
			conds = append(conds, exists)
		}
		parts = append(parts, "SELECT "+sel+" FROM "+table+whereClause(conds))
	}
	if len(parts) == 0 {
		return nil, true, nil // empty window
	}
	rows, err := s.pool.Query(ctx, strings.Join(parts, " UNION ALL ")+" LIMIT "+a.add(int64(topStreamMax+1)), a...)
	if err != nil {
		return nil, false, fmt.Errorf("cannot query top values: %w", err)
	}
	defer rows.Close()
	// Each row's key is appended to one buffer (no allocation per row);
	// the rows are sorted by key, equal keys summed, and the sums ordered
	// by count (byCount). A map of the keys and a sort comparing strings
	// were most of the Go time: ~18,000 rows, ~12,000 keys, nearly all
	// counts 1 or 2.
	buf := make([]byte, 0, 256<<10)
	rs := make([]keyRow, 0, 16384)
	var n int64
	for i := 0; rows.Next(); i++ {
		if i == topStreamMax {
			return nil, false, nil
		}
		k := rows.RawValues()[0]
		if err := rows.Scan(nil, &n); err != nil {
			return nil, false, fmt.Errorf("cannot query top values: %w", err)
		}
		rs = append(rs, keyRow{pre: keyPrefix(k), n: n, off: int32(len(buf)), end: int32(len(buf) + len(k))})
		buf = append(buf, k...)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("cannot query top values: %w", err)
	}
	cmpKey := func(a, b keyRow) int {
		if a.pre != b.pre {
			if a.pre < b.pre {
				return -1
			}
			return 1
		}
		return bytes.Compare(buf[a.off:a.end], buf[b.off:b.end])
	}
	slices.SortFunc(rs, cmpKey)
	// Sum each run of equal keys into its first row, moved down in place;
	// sums that are not positive are dropped (see above).
	sums := rs[:0]
	for i := 0; i < len(rs); {
		r, j := rs[i], i+1
		for ; j < len(rs) && cmpKey(r, rs[j]) == 0; j++ {
			r.n += rs[j].n
		}
		if r.n > 0 {
			r.rank = int32(len(sums))
			sums = append(sums, r)
		}
		i = j
	}
	if len(sums) == 0 {
		return nil, true, nil
	}
	sums = byCount(sums)
	if limit > 0 && len(sums) > limit {
		sums = sums[:limit]
	}
	// The answer's keys are substrings of one string of just their bytes.
	size := 0
	for _, r := range sums {
		size += int(r.end - r.off)
	}
	keys := make([]byte, 0, size)
	for _, r := range sums {
		keys = append(keys, buf[r.off:r.end]...)
	}
	all := string(keys)
	out = make([]peba.Bucket, len(sums))
	at := 0
	for i, r := range sums {
		l := int(r.end - r.off)
		out[i] = peba.Bucket{Key: unescText(all[at : at+l]), Count: r.n}
		at += l
	}
	return out, true, nil
}

// keyRow is one row of topStream, then one key's sum.
type keyRow struct {
	pre      uint64 // keyPrefix of the key: most comparisons end there
	n        int64
	off, end int32 // the key is buf[off:end] of topStream
	rank     int32 // position in key order, after summing
}

// byCount orders sums (in key order, rank set) by count descending, equal
// counts keeping key order. Counts are mostly 1 or 2: a counting sort
// places each key in one pass instead of a sort's dozen comparisons; only
// counts far above the number of keys take the comparison sort.
func byCount(sums []keyRow) []keyRow {
	maxN := int64(0)
	for _, r := range sums {
		maxN = max(maxN, r.n)
	}
	if maxN > int64(4*len(sums)+1024) {
		slices.SortFunc(sums, func(a, b keyRow) int {
			if a.n != b.n {
				if a.n > b.n {
					return -1
				}
				return 1
			}
			return int(a.rank - b.rank)
		})
		return sums
	}
	start := make([]int, maxN+1) // start[b]: first place of count maxN-b
	for _, r := range sums {
		start[maxN-r.n+1]++
	}
	for b := 1; b < len(start); b++ {
		start[b] += start[b-1]
	}
	sorted := make([]keyRow, len(sums))
	for _, r := range sums {
		b := maxN - r.n
		sorted[start[b]] = r
		start[b]++
	}
	return sorted
}

// keyPrefix is k's first 8 bytes as a big-endian number, zero-padded:
// keys whose prefixes differ compare as their prefixes do (a shorter key
// pads with 0, which sorts before any byte of a longer one), so the sort
// compares whole strings only on equal prefixes (addresses of one /16).
func keyPrefix(k []byte) uint64 {
	var b [8]byte
	copy(b[:], k)
	return binary.BigEndian.Uint64(b[:])
}

// spansHour reports whether w lasts an hour or more (a window that ends now
// counted to the current time), for which topStream is the faster way. On
// shorter ones grouping their few thousand events in SQL measured faster
// (retrieveIPs15m on 10M events, load 4-7: 8-12 against 12-16 ms); the
// answers are the same either way.
func spansHour(w peba.Window) bool {
	end := w.To
	if end.IsZero() {
		end = time.Now()
	}
	return w.From.IsZero() || end.Sub(w.From) >= time.Hour
}
