package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/peba-go/peba"
)

// Summaries of the long tails (0006_tops_summary.sql). Top and Series of
// URLs and ports read, for every closed bucket, only its summary: the
// rollup rows with at least min events, and its peer-type rows (the cells
// that bound the rows left out, see topheavy.go). Reading the whole rollup
// rows of a month of ports (850k on 10M events) to find the few dozen
// heavy ones was most of /alert/tops' time.
//
// The hours before tops_state.done are closed, and so are the days that
// end by then. done advances in the append transaction to the hour of the
// newest event appended (never past the current hour): the hours it passes
// and the days that end by it are summarized then, from the rollups that
// transaction has just updated. An event appended into a closed bucket
// later (a resent or replayed batch, an import) marks the bucket stale:
// readers take its rollup rows until it is summarized again, which each
// append does for up to topsStaleBatch stale buckets, newest first, so that
// an import of old data costs each append a bounded amount. Retention
// drops the summaries of the buckets it empties and marks the one it cuts
// stale. Readers see done, the stale buckets and the summaries in their
// snapshot, so an answer is always exact (TestRollupsMatchRaw, TestHeavy,
// TestTopsSummary).

// topsSummary is one summary table: the rows of its rollup (base) with
// at least min events, and the peer-type rows of cells.
type topsSummary struct {
	r     rollup // table and granularity
	base  string // the rollup table of the URL and port rows
	cells string // the rollup table of the peer-type rows
	min   int64
}

// topsSummaries, widest first. The minimums keep the summary small while
// the bound of the rows left out ((min-1) per cell and bucket) stays far
// below the counts of the top 30 of a day, week or month of the benchmark
// data: a day of ports has ~300 rows of 4 events or more of its ~30k, an
// hour ~100 of 2 or more of its 1,500.
var topsSummaries = []topsSummary{
	{rollup{table: "tops_day", field: peba.Received, gran: 24 * time.Hour}, "rollup_tail_day", "rollup_recv_day", 4},
	{rollup{table: "tops_hour", field: peba.Received, gran: time.Hour}, "rollup_recv_hour", "rollup_recv_hour", 2},
}

// topsStaleBatch is how many stale buckets an append summarizes again.
const topsStaleBatch = 4

// topsBucket is a bucket of a summary: its start (UTC microseconds) and
// whether it is a day (else an hour).
type topsBucket struct {
	t   int64
	day bool
}

func (b topsBucket) summary() *topsSummary {
	if b.day {
		return &topsSummaries[0]
	}
	return &topsSummaries[1]
}

// dayUS is a day in microseconds.
const dayUS = 24 * hourUS

// topsHint is what the last append knew of tops_state and tops_stale. It
// lets an append whose events all lie in the current hour skip reading
// them; any other append reads them, so a hint that a rolled-back
// transaction left ahead of the table costs nothing but time.
type topsHint struct {
	valid bool
	done  int64 // tops_state.done, UTC microseconds
	stale bool  // tops_stale may have rows
}

// maintainTops keeps the summaries of the closed buckets in step with the
// rollups, in the append transaction after upsertRollups (see above). An
// append whose events all lie in the current hour costs a comparison per
// event; more is done only when an hour closes or events arrive late.
func (s *Store) maintainTops(ctx context.Context, inserted []peba.Event) error {
	if len(inserted) == 0 {
		return nil
	}
	hint := &s.tops
	if hint.valid && !hint.stale && allInHour(inserted, hint.done) {
		return nil
	}
	*hint = topsHint{}
	done, closed, stale, err := s.topsDone(ctx)
	if err != nil {
		return err
	}
	newest := int64(-1 << 63)
	var late map[topsBucket]bool
	for i := range inserted {
		h := hourOf(inserted[i].ReceivedTime)
		newest = max(newest, h)
		if closed && h < done {
			if late == nil {
				late = map[topsBucket]bool{}
			}
			late[topsBucket{h, false}] = true
			if d := h - floorMod(h, dayUS); d+dayUS <= done {
				late[topsBucket{d, true}] = true
			}
		}
	}
	if now := hourOf(time.Now()); newest > now {
		newest = now // a clock ahead must not close the current hour
	}
	if !closed || newest > done {
		if err := s.closeTops(ctx, done, closed, newest); err != nil {
			return err
		}
		done, closed = newest, true
	}
	if len(late) > 0 {
		if err := s.markTopsStale(ctx, slices.Collect(maps.Keys(late))); err != nil {
			return err
		}
		stale = true
	}
	if stale {
		if stale, err = s.summarizeStale(ctx); err != nil {
			return err
		}
	}
	*hint = topsHint{valid: closed, done: done, stale: stale}
	return nil
}

// allInHour reports whether every event was received in the hour that
// starts at hour (UTC microseconds).
func allInHour(evs []peba.Event, hour int64) bool {
	lo, hi := time.UnixMicro(hour).UTC(), time.UnixMicro(hour+hourUS).UTC()
	for i := range evs {
		if t := evs[i].ReceivedTime; t.Before(lo) || !t.Before(hi) {
			return false
		}
	}
	return true
}

// topsDone returns tops_state.done in UTC microseconds (closed is false
// while it is NULL) and whether any bucket is stale.
func (s *Store) topsDone(ctx context.Context) (done int64, closed, stale bool, err error) {
	var d sql.NullInt64
	err = s.wconn.QueryRowContext(ctx, "SELECT epoch_us(done), EXISTS (SELECT * FROM tops_stale) FROM tops_state").Scan(&d, &stale)
	if err != nil {
		return 0, false, false, fmt.Errorf("cannot read tops_state: %w", err)
	}
	return d.Int64, d.Valid, stale, nil
}

// closeTops advances done to newDone, summarizing the hours and days that
// close (all before newDone if nothing was closed yet).
func (s *Store) closeTops(ctx context.Context, done int64, closed bool, newDone int64) error {
	hours := [2]time.Time{{}, time.UnixMicro(newDone).UTC()}
	days := [2]time.Time{{}, time.UnixMicro(newDone - floorMod(newDone, dayUS)).UTC()}
	if closed {
		hours[0] = time.UnixMicro(done).UTC()
		days[0] = time.UnixMicro(done - floorMod(done, dayUS)).UTC()
	}
	for i, span := range [][2]time.Time{days, hours} {
		sum := &topsSummaries[i]
		cond := "t < ?"
		args := []any{span[1]}
		if !span[0].IsZero() {
			if !span[0].Before(span[1]) {
				continue
			}
			cond, args = "t >= ? AND t < ?", []any{span[0], span[1]}
		}
		if err := s.summarize(ctx, sum, cond, args); err != nil {
			return err
		}
		if _, err := s.wconn.ExecContext(ctx, "DELETE FROM tops_stale WHERE day = "+strconv.FormatBool(i == 0)+" AND "+cond, args...); err != nil {
			return fmt.Errorf("cannot update tops_stale: %w", err)
		}
	}
	if _, err := s.wconn.ExecContext(ctx, "UPDATE tops_state SET done = ?", hours[1]); err != nil {
		return fmt.Errorf("cannot update tops_state: %w", err)
	}
	return nil
}

// summarize replaces the summary rows of sum's buckets selected by cond (on
// t, with args) by those of the rollups.
func (s *Store) summarize(ctx context.Context, sum *topsSummary, cond string, args []any) error {
	if _, err := s.wconn.ExecContext(ctx, "DELETE FROM "+sum.r.table+" WHERE "+cond, args...); err != nil {
		return fmt.Errorf("cannot summarize %s: %w", sum.r.table, err)
	}
	rows := fmt.Sprintf("SELECT t, dim, community, peer_type, k, cnt FROM %s WHERE %s AND dim IN (%d, %d) AND cnt >= %d",
		sum.base, cond, peba.DimURL, peba.DimDstPort, sum.min)
	cellRows := fmt.Sprintf("SELECT t, dim, community, peer_type, k, cnt FROM %s WHERE %s AND dim = %d", sum.cells, cond, peba.DimPeerType)
	q := "INSERT INTO " + sum.r.table + " SELECT * FROM (" + rows + " UNION ALL " + cellRows + ") ORDER BY t"
	if _, err := s.wconn.ExecContext(ctx, q, slices.Concat(args, args)...); err != nil {
		return fmt.Errorf("cannot summarize %s: %w", sum.r.table, err)
	}
	return nil
}

// markTopsStale records closed buckets whose rollup rows changed.
func (s *Store) markTopsStale(ctx context.Context, bs []topsBucket) error {
	ts, days := make([]int64, len(bs)), make([]bool, len(bs))
	for i, b := range bs {
		ts[i], days[i] = b.t, b.day
	}
	_, err := s.wconn.ExecContext(ctx, `INSERT INTO tops_stale
		SELECT make_timestamp(us), day FROM (SELECT unnest(?::BIGINT[]) AS us, unnest(?::BOOLEAN[]) AS day)
		EXCEPT SELECT t, day FROM tops_stale`, ts, days)
	if err != nil {
		return fmt.Errorf("cannot update tops_stale: %w", err)
	}
	return nil
}

// summarizeStale summarizes again up to topsStaleBatch stale buckets, the
// newest first; more is true if there may be others.
func (s *Store) summarizeStale(ctx context.Context) (more bool, err error) {
	rows, err := s.wconn.QueryContext(ctx, "SELECT epoch_us(t), day FROM tops_stale ORDER BY t DESC, day LIMIT "+strconv.Itoa(topsStaleBatch))
	if err != nil {
		return false, fmt.Errorf("cannot read tops_stale: %w", err)
	}
	var bs []topsBucket
	for rows.Next() {
		var b topsBucket
		if err := rows.Scan(&b.t, &b.day); err != nil {
			rows.Close()
			return false, fmt.Errorf("cannot read tops_stale: %w", err)
		}
		bs = append(bs, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("cannot read tops_stale: %w", err)
	}
	for _, b := range bs {
		t := time.UnixMicro(b.t).UTC()
		if err := s.summarize(ctx, b.summary(), "t = ?", []any{t}); err != nil {
			return false, err
		}
		if _, err := s.wconn.ExecContext(ctx, "DELETE FROM tops_stale WHERE t = ? AND day = ?", t, b.day); err != nil {
			return false, fmt.Errorf("cannot update tops_stale: %w", err)
		}
	}
	return len(bs) == topsStaleBatch, nil
}

// retractTops follows retention of the events received before cut, after
// retractRollups in its transaction: the summaries of the buckets that
// start before cut go, and the closed buckets that cut splits are
// summarized again.
func (s *Store) retractTops(ctx context.Context, cut time.Time) error {
	s.tops = topsHint{}
	cut = dbTime(cut)
	for _, table := range []string{"tops_hour", "tops_day", "tops_stale"} {
		if _, err := s.wconn.ExecContext(ctx, "DELETE FROM "+table+" WHERE t < ?", cut); err != nil {
			return fmt.Errorf("cannot retract %s: %w", table, err)
		}
	}
	done, closed, _, err := s.topsDone(ctx)
	if err != nil || !closed {
		return err
	}
	us := cut.UnixMicro()
	var split []topsBucket
	if h := us - floorMod(us, hourUS); h < us && h < done {
		split = append(split, topsBucket{h, false})
	}
	if d := us - floorMod(us, dayUS); d < us && d+dayUS <= done {
		split = append(split, topsBucket{d, true})
	}
	if len(split) == 0 {
		return nil
	}
	if err := s.markTopsStale(ctx, split); err != nil {
		return err
	}
	_, err = s.summarizeStale(ctx)
	return err
}

// topsState is what a reader needs to know of the summaries, read in its
// snapshot.
type topsState struct {
	done  time.Time           // zero while nothing is closed
	stale map[topsBucket]bool // closed buckets to read from the rollups
}

// readTopsState reads tops_state and tops_stale.
func (s *Store) readTopsState(ctx context.Context) (topsState, error) {
	st := topsState{stale: map[topsBucket]bool{}}
	rows, err := s.q(ctx).QueryContext(ctx, "SELECT epoch_us(done), NULL FROM tops_state UNION ALL SELECT epoch_us(t), day FROM tops_stale")
	if err != nil {
		return st, fmt.Errorf("cannot read the tops summaries' state: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t sql.NullInt64
		var day sql.NullBool
		if err := rows.Scan(&t, &day); err != nil {
			return st, fmt.Errorf("cannot read the tops summaries' state: %w", err)
		}
		switch {
		case !day.Valid && t.Valid:
			st.done = time.UnixMicro(t.Int64).UTC()
		case day.Valid:
			st.stale[topsBucket{t.Int64, day.Bool}] = true
		}
	}
	return st, rows.Err()
}

// topsSeg is a part of a window read by topHeavy and seriesHeavy: whole
// closed buckets from a summary (sum), whole buckets from a rollup table
// in full (exact), or the raw events (neither).
type topsSeg struct {
	from, to time.Time // zero is unbounded
	sum      *topsSummary
	exact    string
	// buckets are the starts (UTC microseconds) of the buckets in [from,
	// to) that a summary segment leaves out and an exact one reads (all if
	// nil): the stale ones.
	buckets []int64
}

// bucketCond returns the condition on t that selects g's buckets, and its
// argument.
func (g topsSeg) bucketCond() (string, []any) {
	if g.buckets == nil {
		return "", nil
	}
	in := "list_contains(?::BIGINT[], epoch_us(t))"
	if len(g.buckets) > maxListContains {
		in = "epoch_us(t) IN (SELECT unnest(?::BIGINT[]))"
	}
	if g.sum != nil {
		return "NOT " + in, []any{g.buckets}
	}
	return in, []any{g.buckets}
}

// topsPlan splits w into segments: the closed part into whole days and
// hours of the summaries whose granularity divides maxGran, their stale
// buckets read from the rollups, and raw edges; the open part (from done
// on, normally the current hour) into whole hours of rollup_recv_hour and
// raw edges.
func topsPlan(w peba.Window, maxGran time.Duration, st topsState) []topsSeg {
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
	var segs []topsSeg
	done := st.done
	open := from
	if !done.IsZero() && (from.IsZero() || from.Before(done)) {
		end := done
		if !to.IsZero() && to.Before(done) {
			end = to
		}
		var cands []*rollup
		for i := range topsSummaries {
			if maxGran%topsSummaries[i].r.gran == 0 {
				cands = append(cands, &topsSummaries[i].r)
			}
		}
		for _, seg := range split(from, end, cands, nil) {
			if seg.r == nil {
				segs = append(segs, topsSeg{from: seg.from, to: seg.to})
				continue
			}
			sum := &topsSummaries[0]
			if seg.r.gran != sum.r.gran {
				sum = &topsSummaries[1]
			}
			segs = append(segs, carveStale(seg.from, seg.to, sum, st.stale)...)
		}
		open = done
	}
	if done.IsZero() || to.IsZero() || to.After(done) {
		for _, seg := range split(open, to, []*rollup{hourRollup()}, nil) {
			ts := topsSeg{from: seg.from, to: seg.to}
			if seg.r != nil {
				ts.exact = seg.r.table
			}
			segs = append(segs, ts)
		}
	}
	return segs
}

// carveStale returns the segments of the whole buckets [from, to) of sum:
// a summary segment without its stale buckets, and one that reads those
// from its rollup.
func carveStale(from, to time.Time, sum *topsSummary, stale map[topsBucket]bool) []topsSeg {
	day := sum.r.gran == 24*time.Hour
	var ts []int64
	for b := range stale {
		t := time.UnixMicro(b.t)
		if b.day == day && (from.IsZero() || !t.Before(from)) && (to.IsZero() || t.Before(to)) {
			ts = append(ts, b.t)
		}
	}
	segs := []topsSeg{{from: from, to: to, sum: sum, buckets: ts}}
	if len(ts) > 0 {
		slices.Sort(ts)
		first, last := time.UnixMicro(ts[0]).UTC(), time.UnixMicro(ts[len(ts)-1]).UTC()
		segs = append(segs, topsSeg{from: first, to: last.Add(sum.r.gran), exact: sum.base, buckets: ts})
	}
	return segs
}

// hourRollup returns rollup_recv_hour, which has the hour rows of URLs and
// ports.
func hourRollup() *rollup {
	for i := range rollups {
		if rollups[i].table == "rollup_recv_hour" {
			return &rollups[i]
		}
	}
	panic("BUG: no rollup_recv_hour")
}

// topsTables are the tables of 0006_tops_summary.sql.
var topsTables = []string{"tops_hour", "tops_day", "tops_stale", "tops_state"}
