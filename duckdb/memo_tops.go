package duckdb

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/peba-go/peba"
)

// Top and Series of the long tails (URLs, ports) with the closed-bucket
// memo (memo.go). Their closed rollup rows are far too many to keep, so
// the memo keeps the exact answer for the closed whole buckets instead:
// the top memoTopFactor x limit keys with their counts (computed as Top
// computes it, topheavy.go), and for Series the points of the keys asked
// for. Every request adds the rest (the open tail, the partial first
// hour) read as memoSource reads it. A key outside the kept top has at
// most the smallest kept count in the closed buckets, so when the limit-th
// total of the kept keys exceeds that plus the most the rest adds to an
// unkept key, the answer is exact; otherwise Top reads as before.

// memoTopFactor is how many more keys than asked the memo keeps.
const memoTopFactor = 3

type noMemoKey struct{}

// noMemo reports whether ctx asks for reads without the memo (the memo's
// own reads of closed parts).
func noMemo(ctx context.Context) bool { return ctx.Value(noMemoKey{}) != nil }

func withoutMemo(ctx context.Context) context.Context {
	return context.WithValue(ctx, noMemoKey{}, true)
}

// closedTop is the memo's exact top of the closed whole buckets of a
// window.
type closedTop struct {
	top      []peba.Bucket
	complete bool // top holds every key with events
	// noProof is set when the kept top did not prove an answer: the next
	// requests of the same closed part read as before instead (the long
	// tail is flat, as on small data sets), until the part changes.
	noProof atomic.Bool
}

func (c *closedTop) size() int {
	n := 64 + 48*len(c.top)
	for _, b := range c.top {
		n += len(b.Key)
	}
	return n
}

// closedWindow returns the window of the closed whole buckets of w at mark
// (see memoSplit), the partial first hour and the stamp range; ok is false
// if none.
func closedWindow(w peba.Window, dim peba.Dim, maxGran time.Duration, mark int64) (cw peba.Window, lo, hi int64, ok bool) {
	closed, _, _, lo, hi := memoSplit(w, dim, maxGran, mark)
	if len(closed) == 0 {
		return cw, 0, 0, false
	}
	cw = w
	cw.From, cw.To = closed[0].from, closed[len(closed)-1].to
	return cw, lo, hi, true
}

// topHeavyMemo is Top of a long-tail dim with the memo; ok is false if it
// cannot serve or prove the answer.
func (s *Store) topHeavyMemo(ctx context.Context, w peba.Window, dim peba.Dim, limit int) ([]peba.Bucket, bool, error) {
	if limit <= 0 || !topsReadable(w, dim) {
		return nil, false, nil
	}
	if _, none := domainCond(w.Domains); none {
		return nil, false, nil
	}
	cw, lo, hi, ok := closedWindow(w, dim, 24*time.Hour, s.memoMark(0))
	if !ok {
		return nil, false, nil
	}
	r, ok := s.beginMemo(0, lo, hi)
	if !ok {
		return nil, false, nil
	}
	key := r.key(fmt.Sprintf("top|%d|%d|%s", dim, limit, windowKey(cw)))
	var ct *closedTop
	if v, hit := r.get(key); hit {
		if ct = v.(*closedTop); ct.noProof.Load() {
			return nil, false, nil
		}
	} else {
		// The closed top from the summaries (topHeavyN), for up to
		// memoTopFactor x limit keys as far as their counts prove it:
		// grouping all rows of the closed part instead would cost more
		// than the memo saves (a month of ports: 850k rows).
		ct = &closedTop{}
		var ok bool
		err := s.readTx(ctx, func(ctx context.Context) error {
			var err error
			ct.top, ct.complete, ok, err = s.topHeavyN(ctx, cw, dim, limit*memoTopFactor, limit)
			return err
		})
		if err != nil {
			return nil, false, err
		}
		if !ok {
			ct.noProof.Store(true)
		}
	}
	_, fresh, ok, err := s.memoRows(ctx, w, dim, 0, "", "", nil, false, false)
	if err != nil || !ok {
		return nil, false, err
	}
	if !r.valid() {
		return nil, false, nil
	}
	r.put(key, ct, ct.size())
	if ct.noProof.Load() {
		return nil, false, nil
	}
	delta := map[string]int64{}
	for i := range fresh {
		delta[fresh[i].k] += fresh[i].n
	}
	totals := make(map[string]int64, len(ct.top)+len(delta))
	for _, b := range ct.top {
		totals[b.Key] = b.Count + delta[b.Key]
	}
	var most int64 // the most the rest adds to a key not kept
	for k, d := range delta {
		if _, kept := totals[k]; !kept {
			if ct.complete {
				totals[k] = d
			} else {
				most = max(most, d)
			}
		}
	}
	var out []peba.Bucket
	for k, n := range totals {
		if n != 0 {
			out = append(out, peba.Bucket{Key: k, Count: n})
		}
	}
	slices.SortFunc(out, peba.CompareBuckets)
	if !ct.complete {
		var bound int64 = most
		if len(ct.top) > 0 {
			bound += ct.top[len(ct.top)-1].Count
		}
		if len(out) < limit || out[limit-1].Count <= bound {
			ct.noProof.Store(true)
			return nil, false, nil
		}
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out, true, nil
}

// windowKey formats w's filters and bounds for a memo key.
func windowKey(w peba.Window) string {
	dc, _ := domainCond(w.Domains)
	return fmt.Sprintf("%d|%s|%q|%d|%d", w.Field, dc, w.PeerType, boundUS(w.From), boundUS(w.To))
}

func boundUS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return dbTime(t).UnixMicro()
}

// closedPoints is the memo's Series of the closed whole buckets.
type closedPoints struct{ points []peba.Point }

func (c *closedPoints) size() int {
	n := 64 + 64*len(c.points)
	for _, p := range c.points {
		n += len(p.Key)
	}
	return n
}

// seriesHeavyMemo is Series of keys of a long-tail dim with the memo.
func (s *Store) seriesHeavyMemo(ctx context.Context, w peba.Window, width time.Duration, dim peba.Dim, keys []string, bucket string) ([]peba.Point, bool, error) {
	if !topsReadable(w, dim) {
		return nil, false, nil
	}
	if _, none := domainCond(w.Domains); none {
		return nil, false, nil
	}
	cw, lo, hi, ok := closedWindow(w, dim, width, s.memoMark(0))
	if !ok {
		return nil, false, nil
	}
	r, ok := s.beginMemo(0, lo, hi)
	if !ok {
		return nil, false, nil
	}
	sorted := slices.Clone(keys)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	key := r.key(fmt.Sprintf("series|%d|%s|%s|%s", dim, width, windowKey(cw), argsKey([]any{sorted})))
	var cp *closedPoints
	if v, hit := r.get(key); hit {
		cp = v.(*closedPoints)
	} else {
		pts, err := s.series(withoutMemo(ctx), cw, width, dim, sorted, true)
		if err != nil {
			return nil, false, err
		}
		cp = &closedPoints{pts}
	}
	_, fresh, ok, err := s.memoRows(ctx, w, dim, width, bucket, keyIn("%[1]s", len(sorted)), []any{sorted}, false, false)
	if err != nil || !ok {
		return nil, false, err
	}
	if !r.valid() {
		return nil, false, nil
	}
	r.put(key, cp, cp.size())
	counts := map[pointKey]int64{}
	for _, p := range cp.points {
		counts[pointKey{p.Start.UnixMicro(), p.Key}] += p.Count
	}
	for i := range fresh {
		counts[pointKey{fresh[i].t, fresh[i].k}] += fresh[i].n
	}
	return pointsOf(counts), true, nil
}
