package postgres

import (
	"context"
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
// statistics endpoints"); a Go map and sort do the rest in a fraction.
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
	// Keys index sums, so that a key already seen costs a map lookup of
	// the row's bytes and no allocation; the map starts at the size of two
	// hours of the 10M-event benchmark (its growth was a fifth of the Go
	// time), and the sort moves 24-byte pairs.
	type keySum struct {
		k string
		n int64
	}
	index := make(map[string]int, 8192)
	var sums []keySum
	var n int64
	for i := 0; rows.Next(); i++ {
		if i == topStreamMax {
			return nil, false, nil
		}
		k := rows.RawValues()[0]
		if err := rows.Scan(nil, &n); err != nil {
			return nil, false, fmt.Errorf("cannot query top values: %w", err)
		}
		if j, seen := index[string(k)]; seen {
			sums[j].n += n
			continue
		}
		index[string(k)] = len(sums)
		sums = append(sums, keySum{string(k), n})
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("cannot query top values: %w", err)
	}
	sums = slices.DeleteFunc(sums, func(x keySum) bool { return x.n <= 0 })
	if len(sums) == 0 {
		return nil, true, nil
	}
	slices.SortFunc(sums, func(a, b keySum) int {
		if a.n != b.n {
			if a.n > b.n {
				return -1
			}
			return 1
		}
		return strings.Compare(a.k, b.k)
	})
	if limit > 0 && len(sums) > limit {
		sums = sums[:limit]
	}
	out = make([]peba.Bucket, len(sums))
	for i, x := range sums {
		out[i] = peba.Bucket{Key: unescText(x.k), Count: x.n}
	}
	return out, true, nil
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
