package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/internal/storerow"
)

// The statistics memo (internal/closedmemo): a node remembers what it read
// for the stable parts of statistics windows, so that a window that slides
// with the clock (the last 24 hours, the last two hours) reads only its
// edges from the database:
//
//   - whole hours of a rollup: Top's grouped counts of the hours (memoTop),
//     and single hours (the current created hour; a range's hours for
//     Series, memoSeries);
//   - single minutes of raw events (the edges of a window, and the current
//     hour of received-time windows): their grouped counts;
//   - the stable part of a window (its hours and minutes) sorted as Top
//     orders keys, rebuilt about once a minute;
//   - whole days of the sensor rollup (Sensors: the sets by their size,
//     the counts of past days).
//
// # Why an answer from the memo is exact, with any number of nodes
//
// A memo entry is keyed by what it covers (table, dim, domains, peer type,
// time range) and by a version of that range read in the same snapshot
// (one REPEATABLE READ transaction) as the entry's rows, and a reader uses
// an entry only under the version it reads in the snapshot of its own
// query. The version is
//
//   - the retention epoch (stats_epoch, migration 0007), which
//     DeleteEventsBefore increases in its transaction, and
//   - the number of events in the range as the rollups count them: the sum
//     of cnt of the peer-type rows (d1) of the range's hours or days, or of
//     the totals (rollup_recv_minute_d0) of its minutes; for a minute of
//     created-time events, the count of its hour.
//
// Every write of events other than retention is an append, which inserts
// events and adds each one to the rollups in the same transaction, so it
// strictly increases the count of every range it reaches into, and
// decreases none. PostgreSQL snapshots see the transactions that ended
// before they were taken, so of two snapshots one sees all that the other
// sees: between two snapshots that read the same epoch and the same count
// of a range, no retention and no append that reached into the range
// committed, and the range's rows (rollup rows and raw events alike) are
// the same in both. Clocks play no part: a late event, an import or a node
// whose clock is behind changes the count of the range it writes into, and
// the next reader reads a new version (TestMemoLateEvents,
// TestMemoTwoNodes, TestMemoRetention). Ranges are chosen to be stable
// (they end memoMargin before now), only so that their versions rarely
// change.
//
// The memo holds partial counts, never a whole answer: the edges, the open
// hour and the version query are read on every request.

// memoMigration is the migration that adds stats_epoch.
const memoMigration = 7

// DefaultMemoBytes is the default size of the statistics memo.
const DefaultMemoBytes = 64 << 20

// memoMargin: parts of a window that end at least this long before now
// are read through the memo (appends of current events do not reach them).
const memoMargin = 2 * time.Minute

// vspan asks versions for the per-bucket counts of table (a rollup
// partition with columns t and cnt) over [from, to).
type vspan struct {
	table    string
	from, to time.Time
	col      string // summed column ("" is cnt)
}

// versions reads in tx's snapshot the retention epoch and, for each span,
// the event count of each bucket with events (bucket start in UnixMicro).
func versions(ctx context.Context, tx pgx.Tx, spans []vspan) (epoch int64, sums []map[int64]int64, err error) {
	epoch, sums, _, err = versionsProbe(ctx, tx, spans, "", time.Time{})
	return epoch, sums, err
}

// versionsProbe is versions that also reports, if col is not empty,
// whether an event's col is at or after at (in the same snapshot).
func versionsProbe(ctx context.Context, tx pgx.Tx, spans []vspan, col string, at time.Time) (epoch int64, sums []map[int64]int64, exists bool, err error) {
	var a args
	parts := []string{"SELECT -1, NULL::timestamp, epoch FROM stats_epoch"}
	if col != "" {
		parts = append(parts, "SELECT -2, NULL::timestamp, (EXISTS (SELECT FROM events WHERE "+col+" >= "+a.add(at)+"))::int::bigint")
	}
	sums = make([]map[int64]int64, len(spans))
	for i, sp := range spans {
		sums[i] = map[int64]int64{}
		c := sp.col
		if c == "" {
			c = "cnt"
		}
		parts = append(parts, "SELECT "+strconv.Itoa(i)+", t, sum("+c+")::bigint FROM "+sp.table+
			" WHERE t >= "+a.add(sp.from)+" AND t < "+a.add(sp.to)+" GROUP BY t")
	}
	rows, err := tx.Query(ctx, strings.Join(parts, " UNION ALL "), a...)
	if err != nil {
		return 0, nil, false, err
	}
	var (
		i  int32
		t  *time.Time
		n  int64
		ok bool
	)
	if _, err := pgx.ForEachRow(rows, []any{&i, &t, &n}, func() error {
		switch {
		case i == -1:
			epoch, ok = n, true
		case i == -2:
			exists = n != 0
		case t != nil:
			sums[i][t.UnixMicro()] = n
		}
		return nil
	}); err != nil {
		return 0, nil, false, err
	}
	if !ok {
		return 0, nil, false, fmt.Errorf("no row in stats_epoch")
	}
	return epoch, sums, exists, nil
}

// domainKey names w's domains in memo keys ("" if none).
func domainKey(ds []peba.Domain) string {
	var c, p bool
	for _, d := range ds {
		c = c || d == peba.DomainCommunity
		p = p || d == peba.DomainPrivate
	}
	switch {
	case c && p:
		return "cp"
	case c:
		return "c"
	case p:
		return "p"
	}
	return ""
}

// memoDim reports whether memoTop answers Top of dim: the unlabelled dims
// with an hour rollup whose windows slide with the clock (retrieveIPs,
// retrieveLatLonAttacks, tops of URLs). Ports are left to topBounded: their
// windows are days and weeks of hours, too many rows to group on a miss.
func memoDim(dim peba.Dim) bool {
	switch dim {
	case peba.DimSrcIP, peba.DimSrcLocation, peba.DimDstLocation, peba.DimURL:
		return true
	}
	return false
}

// hourRollup returns the hour rollup on field that serves dim (nil if
// none).
func hourRollup(field peba.TimeField, dim peba.Dim, peerTyped bool) *rollup {
	for i := range rollups {
		r := &rollups[i]
		if r.field == field && r.gran == time.Hour && r.serves(dim, peerTyped) {
			return r
		}
	}
	return nil
}

// memoMaxRange bounds the hours of a range entry: the windows that slide
// are a day at most, and longer ones are cheaper from day rollups.
const memoMaxRange = 49 * time.Hour

// memoNow is the clock of memoPlan (tests move it).
var memoNow = time.Now

// mtSlice is a minute-aligned span of raw events, read minute by minute
// through the memo; neg ones are subtracted.
type mtSlice struct {
	from, to time.Time
	neg      bool
}

// mtPlan is how memoTop reads a window: the whole hours [rangeFrom,
// rangeTo) of rollup r (one memo entry), minute slices of raw events, and
// segments read on every request (raw edges shorter than a minute, the
// open tail).
type mtPlan struct {
	r                  *rollup
	rangeFrom, rangeTo time.Time
	slices             []mtSlice
	segs               []segment
	// hours are buckets of r after the stable part, each read through the
	// memo under its own count (the current hour of created-time windows:
	// unchanged while no event created in it arrives).
	hours []time.Time
	// altHour is the last partial hour of a created-time window ending at
	// altCut: its bucket (into hours) if no event is stored at or after
	// altCut, else its raw events (tailAlternatives, decided in the
	// query's snapshot).
	altHour, altCut time.Time
}

func ceilTo(t time.Time, d time.Duration) time.Time {
	if c := t.Truncate(d); c.Before(t) {
		return c.Add(d)
	}
	return t
}

// memoPlan splits w for memoTop at now; ok is false if the window has no
// stable part worth remembering (Top then reads it as before).
//
// The stable part is [from, lim), lim = min(end, now - memoMargin) on
// whole minutes. Its whole hours are one range entry. A start inside an
// hour is read as minutes: the minutes up to the hour (if at most half an
// hour) or the hour minus the minutes before the start, and the part of
// a minute at the start from the raw events. After the stable part:
// received-time windows read the minutes up to lim through the memo and the
// rest raw (at most memoMargin plus a minute when they end now);
// created-time windows read the whole hours from the rollup and the last
// partial hour from its bucket if no event is stored at or after the end
// (tailAlternatives), else raw.
func memoPlan(w peba.Window, dim peba.Dim, now time.Time) (p mtPlan, ok bool) {
	if w.From.IsZero() {
		return p, false
	}
	r := hourRollup(w.Field, dim, w.PeerType != "")
	if r == nil {
		return p, false
	}
	from, to := dbTime(w.From), w.To
	if !to.IsZero() {
		if to = dbTime(to); !from.Before(to) {
			return p, false
		}
	}
	end := dbTime(now)
	if !to.IsZero() && to.Before(end) {
		end = to
	}
	lim := dbTime(now).Truncate(time.Minute).Add(-memoMargin)
	if end.Before(lim) {
		lim = end
	}
	p.r = r
	h1, hs := ceilTo(from, time.Hour), lim.Truncate(time.Hour)
	var tail time.Time // start of the part after the stable one
	switch {
	case h1.Before(hs):
		p.rangeFrom, p.rangeTo, tail = h1, hs, hs
		if from.Equal(h1) {
			break
		}
		if h1.Sub(from) <= 30*time.Minute {
			cm := ceilTo(from, time.Minute)
			p.segs = append(p.segs, segment{from: from, to: cm})
			p.slices = append(p.slices, mtSlice{from: cm, to: h1})
		} else {
			h0, fm := h1.Add(-time.Hour), from.Truncate(time.Minute)
			p.rangeFrom = h0
			p.slices = append(p.slices, mtSlice{from: h0, to: fm, neg: true})
			p.segs = append(p.segs, segment{from: fm, to: from, neg: true})
		}
	case w.Field == peba.Received:
		// No whole hour: minutes only.
		cm := ceilTo(from, time.Minute)
		if !cm.Before(lim.Truncate(time.Minute)) {
			return p, false
		}
		p.segs = append(p.segs, segment{from: from, to: cm})
		tail = cm
	default:
		return p, false
	}
	if p.rangeTo.Sub(p.rangeFrom) > memoMaxRange {
		return p, false // grouped from day rows where there are any
	}
	if w.Field == peba.Received {
		ls := lim.Truncate(time.Minute)
		if tail.Before(ls) {
			p.slices = append(p.slices, mtSlice{from: tail, to: ls})
			tail = ls
		}
		rawTo := to
		if rawTo.IsZero() {
			rawTo = endOfTime // a bound for the generic plan (topStream)
		}
		if tail.Before(rawTo) {
			p.segs = append(p.segs, segment{from: tail, to: rawTo})
		}
		return p, true
	}
	// Created time: whole hours from the rollup, then the last partial hour.
	if to.IsZero() {
		p.segs = append(p.segs, segment{r: r, from: tail, to: endOfTime})
		return p, true
	}
	fh := to.Truncate(time.Hour)
	for h := tail; h.Before(fh); h = h.Add(time.Hour) {
		p.hours = append(p.hours, h)
	}
	if fh.Before(to) {
		p.altHour, p.altCut = fh, to
	}
	return p, true
}

// topRange is the memo entry of a range of whole hours: its counts per
// key, as Top orders them.
type topRange struct {
	b   []peba.Bucket // counts > 0, ordered by peba.CompareBuckets
	idx map[string]int32
}

func newTopRange(counts map[string]int64) *topRange {
	r := &topRange{b: make([]peba.Bucket, 0, len(counts)), idx: make(map[string]int32, len(counts))}
	for k, n := range counts {
		if n > 0 {
			r.b = append(r.b, peba.Bucket{Key: k, Count: n})
		}
	}
	slices.SortFunc(r.b, peba.CompareBuckets)
	for i, b := range r.b {
		r.idx[b.Key] = int32(i)
	}
	return r
}

func (r *topRange) count(k string) int64 {
	if r == nil {
		return 0
	}
	if i, ok := r.idx[k]; ok {
		return r.b[i].Count
	}
	return 0
}

func (r *topRange) size() int { return 64 + len(r.b)*96 }

// bs returns r's buckets (none if r is nil).
func (r *topRange) bs() []peba.Bucket {
	if r == nil {
		return nil
	}
	return r.b
}

// mergeTop returns the top limit (0: all) keys of base plus delta. Keys not
// in delta keep their order in base, so only the first of them can be in
// the answer: a merge of base (skipping delta's keys) with delta's keys.
func mergeTop(base *topRange, delta map[string]int64, limit int) []peba.Bucket {
	var bs []peba.Bucket
	if base != nil {
		bs = base.b
	}
	dk := make([]peba.Bucket, 0, len(delta))
	for k, d := range delta {
		if n := base.count(k) + d; n > 0 {
			dk = append(dk, peba.Bucket{Key: k, Count: n})
		}
	}
	slices.SortFunc(dk, peba.CompareBuckets)
	want := len(bs) + len(dk)
	if limit > 0 && limit < want {
		want = limit
	}
	if want == 0 {
		return nil
	}
	out := make([]peba.Bucket, 0, want)
	i, j := 0, 0
	for len(out) < want {
		for i < len(bs) {
			if _, in := delta[bs[i].Key]; !in {
				break
			}
			i++
		}
		switch {
		case i < len(bs) && (j == len(dk) || peba.CompareBuckets(bs[i], dk[j]) < 0):
			out = append(out, bs[i])
			i++
		case j < len(dk):
			out = append(out, dk[j])
			j++
		default:
			return slices.Clip(out)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// memoKey returns the answer key of a stored key: a location's formatted
// coordinates, else the unescaped text.
func memoKey(dim peba.Dim, k string, lat, lon float64) string {
	if isLocation(dim) {
		return storerow.LocKey(lat, lon)
	}
	return unescText(k)
}

type sliceMap map[string]int64

// memoTop answers Top(w, dim, limit) through the memo (see memoPlan); ok
// is false if it does not apply.
func (s *Store) memoTop(ctx context.Context, w peba.Window, dim peba.Dim, limit int) (out []peba.Bucket, ok bool, err error) {
	if s.memo == nil || !memoDim(dim) {
		return nil, false, nil
	}
	p, ok := memoPlan(w, dim, memoNow())
	if !ok {
		return nil, false, nil
	}
	dom := domainKey(w.Domains)
	if dom == "" {
		return nil, true, nil
	}
	col, err := timeColumn(w.Field)
	if err != nil {
		return nil, false, err
	}
	rc, _ := rawCols(dim)
	rd, _ := p.r.rowDim(dim)
	part := p.r.table + "_d" + strconv.Itoa(int(rd))
	pt := escText(w.PeerType)
	var (
		rng   *topRange
		delta = map[string]int64{}
	)
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// Created-time windows with generic plans, as in topBounded: their
		// raw parts are short ranges that cannot prune partitions when
		// planned, and planning them over every partition per call cost
		// more than running them. Received-time ones with custom plans:
		// pruned when planned, they plan in well under a millisecond, while
		// a generic plan's run locks and prunes every partition (two raw
		// parts over 31 partitions: 13-19 ms against 0.4 ms on 10M events).
		if w.Field == peba.Created {
			if _, err := tx.Exec(ctx, "SET LOCAL plan_cache_mode = force_generic_plan"); err != nil {
				return err
			}
		}
		// Versions: the range's hours, and the slices' minutes (received
		// time) or hours (created time).
		var spans []vspan
		hasRange := p.rangeFrom.Before(p.rangeTo)
		verTable := p.r.table + "_d1"
		last := s.lastRange(part, dom, pt)
		vFrom, vTo := p.rangeFrom, p.rangeTo
		if hasRange && last != nil {
			vFrom, vTo = minTime(vFrom, last.from), maxTime(vTo, last.to)
		}
		if hasRange {
			spans = append(spans, vspan{table: verTable, from: vFrom, to: vTo})
		}
		// One span per slice: a window's slices are its two ends (a few
		// minutes at the start, the current hour's at the end), and one
		// span over both read every minute of the day between them
		// (1,440 rows of versions per request, twice for tops of URLs).
		sliceGran := time.Minute
		sliceFirst := len(spans)
		for _, sl := range p.slices {
			if w.Field == peba.Received {
				spans = append(spans, vspan{table: "rollup_recv_minute_d0", from: sl.from, to: sl.to})
			} else {
				sliceGran = time.Hour
				spans = append(spans, vspan{table: verTable, from: sl.from.Truncate(time.Hour), to: ceilTo(sl.to, time.Hour)})
			}
		}
		sliceEnd := len(spans)
		hourSpan := -1
		if len(p.hours) > 0 || !p.altHour.IsZero() {
			hFrom, hTo := p.altHour, p.altHour.Add(time.Hour)
			if len(p.hours) > 0 {
				hFrom = p.hours[0]
				if p.altHour.IsZero() {
					hTo = p.hours[len(p.hours)-1].Add(time.Hour)
				}
			}
			hourSpan = len(spans)
			spans = append(spans, vspan{table: verTable, from: hFrom, to: hTo})
		}
		probeCol := ""
		if !p.altCut.IsZero() {
			probeCol = col
		}
		epoch, sums, after, err := versionsProbe(ctx, tx, spans, probeCol, p.altCut)
		if err != nil {
			return err
		}
		// The slices' buckets (spans of one snapshot agree where they
		// overlap).
		sliceSums := map[int64]int64{}
		for _, m := range sums[sliceFirst:sliceEnd] {
			maps.Copy(sliceSums, m)
		}
		hours, segs := p.hours, p.segs
		if !p.altHour.IsZero() {
			if after {
				segs = append(slices.Clip(segs), segment{from: p.altHour, to: p.altCut})
			} else {
				hours = append(slices.Clip(hours), p.altHour)
			}
		}
		gen := s.memo.Generation()
		var (
			rangeKey string
			v        int64
			adjust   []segment // hours to add to (or subtract from) last
		)
		if hasRange {
			v = sumRange(sums[0], p.rangeFrom, p.rangeTo)
			rangeKey = fmt.Sprintf("top|%s|%s|%s|%d|%d|%d|%d", part, dom, pt, p.rangeFrom.UnixMicro(), p.rangeTo.UnixMicro(), v, epoch)
			if x, ok := s.memo.Get(rangeKey, gen); ok {
				rng = x.(*topRange)
			} else if last != nil && last.epoch == epoch && last.version == sumRange(sums[0], last.from, last.to) {
				// The last range of these rows is unchanged: the new one
				// is it plus and minus a few hours (the window moved).
				adjust = rangeDiff(last.from, last.to, p.rangeFrom, p.rangeTo)
				if len(adjust) > 4 {
					adjust = nil
				}
			}
		}
		type miss struct {
			m   int64
			key string
			neg bool
		}
		// The whole stable part (range and minutes) as one entry: rebuilt
		// about once a minute, so that a request sorts only the keys of
		// its raw edges and open hour (retrieveIPs: ~800 instead of
		// ~8,000). Its version is the sum of its parts' versions, which
		// only grow between snapshots of one epoch.
		var (
			stableKey string
			stable    *topRange
		)
		if len(p.slices) > 0 {
			var sb strings.Builder
			vs := v
			fmt.Fprintf(&sb, "stable|%s|%s|%s|%d|%d|%d", part, dom, pt, w.Field, p.rangeFrom.UnixMicro(), p.rangeTo.UnixMicro())
			for _, sl := range p.slices {
				fmt.Fprintf(&sb, "|%d-%d-%t", sl.from.UnixMicro(), sl.to.UnixMicro(), sl.neg)
				for m := sl.from; m.Before(sl.to); m = m.Add(time.Minute) {
					vs += sliceSums[m.Truncate(sliceGran).UnixMicro()]
				}
			}
			fmt.Fprintf(&sb, "|%d|%d", vs, epoch)
			stableKey = sb.String()
			if x, ok := s.memo.Get(stableKey, gen); ok {
				stable = x.(*topRange)
			}
		}
		sliceDelta := delta
		if stable != nil {
			hasRange, rng = false, stable // nothing of the stable part to read
		} else if stableKey != "" {
			sliceDelta = map[string]int64{}
		}
		var misses []miss
		for _, sl := range p.slices {
			if stable != nil {
				break
			}
			for m := sl.from; m.Before(sl.to); m = m.Add(time.Minute) {
				v := sliceSums[m.Truncate(sliceGran).UnixMicro()]
				key := fmt.Sprintf("min|%d|%d|%s|%s|%d|%d|%d", w.Field, dim, dom, pt, m.UnixMicro(), v, epoch)
				if v == 0 {
					continue // no events in the minute (or its hour)
				}
				if x, ok := s.memo.Get(key, gen); ok {
					addSlice(sliceDelta, x.(sliceMap), sl.neg)
					continue
				}
				misses = append(misses, miss{m.UnixMicro(), key, sl.neg})
			}
		}
		var hourMisses []miss
		for _, h := range hours {
			v := sums[hourSpan][h.UnixMicro()]
			if v == 0 {
				continue // no events created in the hour
			}
			key := fmt.Sprintf("hour|%s|%s|%s|%d|%d|%d", part, dom, pt, h.UnixMicro(), v, epoch)
			if x, ok := s.memo.Get(key, gen); ok {
				addSlice(delta, x.(sliceMap), false)
				continue
			}
			hourMisses = append(hourMisses, miss{h.UnixMicro(), key, false})
		}
		// One statement for the rest: p 0 = counts to add (signed), 1 =
		// a missed minute's counts, 2 = the missed range's counts, 3 = a
		// missed hour's counts.
		var (
			a     args
			parts []string
		)
		for _, h := range hourMisses {
			sw := w
			sw.From, sw.To = time.UnixMicro(h.m).UTC(), time.UnixMicro(h.m).UTC().Add(time.Hour)
			conds, _ := windowConds(sw, "t", &a)
			parts = append(parts, "SELECT 3, t, k, lat, lon, sum(cnt)::bigint FROM "+part+whereClause(conds)+" GROUP BY 2, 3, 4, 5")
		}
		for _, seg := range segs {
			q, none := segmentQuery(w, dim, seg, col, rc, false, nil, &a)
			if none {
				return nil
			}
			parts = append(parts, "SELECT 0, NULL::timestamp, k, lat, lon, c FROM ("+q+") s")
		}
		for i := 0; i < len(misses); {
			j := i + 1
			for j < len(misses) && misses[j].m == misses[j-1].m+time.Minute.Microseconds() {
				j++
			}
			sw := w
			sw.From, sw.To = time.UnixMicro(misses[i].m).UTC(), time.UnixMicro(misses[j-1].m).UTC().Add(time.Minute)
			conds, _ := windowConds(sw, col, &a)
			parts = append(parts, "SELECT 1, date_trunc('minute', "+col+"), "+rc.k+", "+rc.lat+", "+rc.lon+", count(*) FROM events"+
				whereClause(conds)+" GROUP BY 2, 3, 4, 5")
			i = j
		}
		if hasRange && rng == nil {
			rsegs := []segment{{from: p.rangeFrom, to: p.rangeTo}}
			if adjust != nil {
				rsegs = adjust
			}
			for _, rs := range rsegs {
				sw := w
				sw.From, sw.To = rs.from, rs.to
				conds, _ := windowConds(sw, "t", &a)
				c := "sum(cnt)::bigint"
				if rs.neg {
					c = "-" + c
				}
				parts = append(parts, "SELECT 2, NULL::timestamp, k, lat, lon, "+c+" FROM "+part+whereClause(conds)+" GROUP BY 3, 4, 5")
			}
		}
		if len(parts) == 0 {
			return nil
		}
		rows, err := tx.Query(ctx, strings.Join(parts, " UNION ALL "), a...)
		if err != nil {
			return err
		}
		var (
			kind     int32
			m        *time.Time
			k        string
			lat, lon float64
			c        int64
			mins     = map[int64]sliceMap{}
			hourMaps = map[int64]sliceMap{}
			rcounts  map[string]int64
		)
		if hasRange && rng == nil {
			rcounts = map[string]int64{}
		}
		if _, err := pgx.ForEachRow(rows, []any{&kind, &m, &k, &lat, &lon, &c}, func() error {
			key := memoKey(dim, k, lat, lon)
			switch kind {
			case 0:
				delta[key] += c
			case 1:
				mm := mins[m.UnixMicro()]
				if mm == nil {
					mm = sliceMap{}
					mins[m.UnixMicro()] = mm
				}
				mm[key] += c
			case 2:
				rcounts[key] += c
			case 3:
				mm := hourMaps[m.UnixMicro()]
				if mm == nil {
					mm = sliceMap{}
					hourMaps[m.UnixMicro()] = mm
				}
				mm[key] += c
			}
			return nil
		}); err != nil {
			return err
		}
		for _, h := range hourMisses {
			mm := hourMaps[h.m]
			if mm == nil {
				mm = sliceMap{}
			}
			s.memo.Put(h.key, gen, mm, 64+len(mm)*64)
			addSlice(delta, mm, false)
		}
		for _, ms := range misses {
			mm := mins[ms.m]
			if mm == nil {
				mm = sliceMap{}
			}
			s.memo.Put(ms.key, gen, mm, 64+len(mm)*64)
			addSlice(sliceDelta, mm, ms.neg)
		}
		if rcounts != nil {
			if adjust != nil {
				for _, b := range last.r.b {
					rcounts[b.Key] += b.Count
				}
			}
			rng = newTopRange(rcounts)
			s.memo.Put(rangeKey, gen, rng, rng.size())
			s.setLastRange(part, dom, pt, &lastRange{from: p.rangeFrom, to: p.rangeTo, version: v, epoch: epoch, r: rng})
		}
		if stable == nil && stableKey != "" {
			counts := make(map[string]int64, len(sliceDelta)+len(rng.bs()))
			for _, b := range rng.bs() {
				counts[b.Key] = b.Count
			}
			for k, n := range sliceDelta {
				counts[k] += n
			}
			rng = newTopRange(counts)
			s.memo.Put(stableKey, gen, rng, rng.size())
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("cannot query top values: %w", err)
	}
	return mergeTop(rng, delta, limit), true, nil
}

// lastRange is the range entry a Store built last for one partition,
// domains and peer type: the next range of a sliding window is built from
// it by reading only the hours in which they differ, instead of every
// hour (at an hour's start, or when the window's start passes the half
// hour and memoPlan moves the range's start).
type lastRange struct {
	from, to       time.Time
	version, epoch int64
	r              *topRange
}

func (s *Store) lastRange(part, dom, pt string) *lastRange {
	s.lastMu.Lock()
	defer s.lastMu.Unlock()
	return s.last[part+"|"+dom+"|"+pt]
}

func (s *Store) setLastRange(part, dom, pt string, l *lastRange) {
	s.lastMu.Lock()
	defer s.lastMu.Unlock()
	if s.last == nil {
		s.last = map[string]*lastRange{}
	}
	if len(s.last) > 256 {
		clear(s.last) // bounded: a few kinds of windows use it
	}
	s.last[part+"|"+dom+"|"+pt] = l
}

// sumRange sums the per-hour counts (UnixMicro keys) of [from, to).
func sumRange(sums map[int64]int64, from, to time.Time) int64 {
	var v int64
	for t, n := range sums {
		if t >= from.UnixMicro() && t < to.UnixMicro() {
			v += n
		}
	}
	return v
}

// rangeDiff returns the hour spans to add to [pa, pb) (and, neg, to
// subtract from it) to make [a, b).
func rangeDiff(pa, pb, a, b time.Time) []segment {
	var out []segment
	if !pb.After(a) || !b.After(pa) {
		return nil // disjoint: read the new one whole
	}
	add := func(from, to time.Time, neg bool) {
		for h := from; h.Before(to); h = h.Add(time.Hour) {
			out = append(out, segment{from: h, to: h.Add(time.Hour), neg: neg})
		}
	}
	if a.Before(pa) {
		add(a, pa, false)
	} else {
		add(pa, a, true)
	}
	if b.After(pb) {
		add(pb, b, false)
	} else {
		add(b, pb, true)
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func addSlice(delta map[string]int64, m sliceMap, neg bool) {
	for k, n := range m {
		if neg {
			n = -n
		}
		delta[k] += n
	}
}

// memoSeries answers Series of source addresses and URLs over a window of
// memoPlan (tops of URLs: Series of the top ten of the window Top just
// read) in one statement: the versions of the plan's minutes, and the
// rollup hours (index lookups of the keys) and short raw parts as Series
// reads them; the minutes come from the entries memoTop left. If one is
// missing, ok is false and Series reads the window as before. One
// statement is one snapshot, so the versions are those of the rows read.
func (s *Store) memoSeries(ctx context.Context, w peba.Window, width time.Duration, dim peba.Dim, keys []string, kcond keyCond) (out []peba.Point, ok bool, err error) {
	if s.memo == nil || (dim != peba.DimURL && dim != peba.DimSrcIP) || w.Field != peba.Received || len(keys) == 0 {
		return nil, false, nil
	}
	p, ok := memoPlan(w, dim, memoNow())
	if !ok || len(p.slices) == 0 {
		return nil, false, nil
	}
	dom := domainKey(w.Domains)
	if dom == "" {
		return nil, false, nil
	}
	col, _ := timeColumn(w.Field)
	rc, _ := rawCols(dim)
	var a args
	parts := []string{"SELECT -1, NULL::timestamp, NULL::text, epoch FROM stats_epoch"}
	for _, sl := range p.slices { // one span per slice, as in memoTop
		parts = append(parts, "SELECT -2, t, NULL::text, sum(cnt)::bigint FROM rollup_recv_minute_d0 WHERE t >= "+
			a.add(sl.from)+" AND t < "+a.add(sl.to)+" GROUP BY t")
	}
	hasRange := p.rangeFrom.Before(p.rangeTo)
	rd, _ := p.r.rowDim(dim)
	part := p.r.table + "_d" + strconv.Itoa(int(rd))
	if hasRange {
		// The range's hours from per-hour entries (memoSeriesHours).
		parts = append(parts, "SELECT -3, t, NULL::text, sum(cnt)::bigint FROM "+p.r.table+"_d1 WHERE t >= "+
			a.add(p.rangeFrom)+" AND t < "+a.add(p.rangeTo)+" GROUP BY t")
	}
	for _, seg := range p.segs {
		q, none := segmentQuery(w, dim, seg, col, rc, true, kcond, &a)
		if none {
			return nil, false, nil
		}
		parts = append(parts, "SELECT 0, t, k, c FROM ("+q+") s")
	}
	rows, err := s.pool.Query(ctx, strings.Join(parts, " UNION ALL "), a...)
	if err != nil {
		return nil, false, fmt.Errorf("cannot query series: %w", err)
	}
	var (
		kind   int32
		t      *time.Time
		k      *string
		n      int64
		epoch  int64
		mins   = map[int64]int64{}
		hours  = map[int64]int64{}
		counts = map[pk]int64{}
	)
	if _, err := pgx.ForEachRow(rows, []any{&kind, &t, &k, &n}, func() error {
		switch kind {
		case -1:
			epoch = n
		case -2:
			mins[t.UnixMicro()] = n
		case -3:
			hours[t.UnixMicro()] = n
		default:
			counts[pk{t.Truncate(width).UnixMicro(), unescText(*k)}] += n
		}
		return nil
	}); err != nil {
		return nil, false, fmt.Errorf("cannot query series: %w", err)
	}
	want := make(map[string]bool, len(keys))
	for _, k := range keys {
		want[k] = true
	}
	pt, gen := escText(w.PeerType), s.memo.Generation()
	var missing bool
	for h := p.rangeFrom; hasRange && h.Before(p.rangeTo); h = h.Add(time.Hour) {
		v := hours[h.UnixMicro()]
		if v == 0 {
			continue
		}
		x, ok := s.memo.Get(fmt.Sprintf("hour|%s|%s|%s|%d|%d|%d", part, dom, pt, h.UnixMicro(), v, epoch), gen)
		if !ok {
			missing = true
			continue
		}
		addWanted(counts, x.(sliceMap), want, h.Truncate(width).UnixMicro(), false)
	}
	if missing {
		// Read the range's hours once (with their versions, in one
		// statement), for the next requests, in the background; this
		// one reads the window as before (the first tops of URLs after
		// a start paid both: 43-48 ms on 10M events, 22-25 now, 9-11
		// without the memo).
		s.fillSeriesHours(w, dim, p, part, dom, pt)
		return nil, false, nil
	}
	for _, sl := range p.slices {
		for m := sl.from; m.Before(sl.to); m = m.Add(time.Minute) {
			v := mins[m.UnixMicro()]
			if v == 0 {
				continue
			}
			x, ok := s.memo.Get(fmt.Sprintf("min|%d|%d|%s|%s|%d|%d|%d", w.Field, dim, dom, pt, m.UnixMicro(), v, epoch), gen)
			if !ok {
				return nil, false, nil // read the window as before
			}
			addWanted(counts, x.(sliceMap), want, m.Truncate(width).UnixMicro(), sl.neg)
		}
	}
	for pk, n := range counts {
		if n > 0 {
			out = append(out, peba.Point{Start: time.UnixMicro(pk.start).UTC(), Key: pk.key, Count: n})
		}
	}
	slices.SortFunc(out, func(a, b peba.Point) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out, true, nil
}

// pk is a point of memoSeries: a bucket's start (UnixMicro) and a key.
type pk struct {
	start int64
	key   string
}

// addWanted adds to counts, at bucket b, the counts of m (an hour's or a
// minute's entry) of the wanted keys (the set want); negated if
// neg. It looks up the keys in m if they are fewer than m's (a top ten
// against an hour's thousands of URLs: the walk over m was a third of
// tops?type=urls' CPU), else walks m.
func addWanted(counts map[pk]int64, m sliceMap, want map[string]bool, b int64, neg bool) {
	add := func(k string, c int64) {
		if neg {
			c = -c
		}
		counts[pk{b, k}] += c
	}
	if len(want) < len(m) {
		for k := range want {
			if c, ok := m[k]; ok {
				add(k, c)
			}
		}
		return
	}
	for k, c := range m {
		if want[k] {
			add(k, c)
		}
	}
}

// fillSeriesHours runs memoSeriesHours in the background (fill).
func (s *Store) fillSeriesHours(w peba.Window, dim peba.Dim, p mtPlan, part, dom, pt string) {
	s.fill(fmt.Sprintf("series|%s|%s|%s|%d|%d", part, dom, pt, p.rangeFrom.UnixMicro(), p.rangeTo.UnixMicro()), func(ctx context.Context) {
		_ = s.memoSeriesHours(ctx, w, dim, p, part, dom, pt)
	})
}

// fill runs f in the background, once at a time per key: reads that
// fill the memo for later requests and that the request itself does not
// need. A failed fill leaves the memo as it was (the next request falls
// back and tries again). Close waits for it.
func (s *Store) fill(key string, f func(context.Context)) {
	if _, busy := s.fills.LoadOrStore(key, true); busy {
		return
	}
	s.bgMu.Lock()
	if s.closed.Load() {
		s.bgMu.Unlock()
		s.fills.Delete(key)
		return
	}
	s.bg.Add(1)
	s.bgMu.Unlock()
	go func() {
		defer s.bg.Done()
		defer s.fills.Delete(key)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		f(ctx)
	}()
}

// memoSeriesHours remembers each hour of p's range of w's rows of dim by
// key, as memoTop remembers created-time hours, for memoSeries.
func (s *Store) memoSeriesHours(ctx context.Context, w peba.Window, dim peba.Dim, p mtPlan, part, dom, pt string) error {
	var a args
	sw := w
	sw.From, sw.To = p.rangeFrom, p.rangeTo
	conds, _ := windowConds(sw, "t", &a)
	q := "SELECT -1, NULL::timestamp, NULL::text, 0::float8, 0::float8, epoch FROM stats_epoch UNION ALL " +
		"SELECT -3, t, NULL::text, 0::float8, 0::float8, sum(cnt)::bigint FROM " + p.r.table + "_d1 WHERE t >= " + a.add(p.rangeFrom) +
		" AND t < " + a.add(p.rangeTo) + " GROUP BY t UNION ALL " +
		"SELECT 0, t, k, lat, lon, sum(cnt)::bigint FROM " + part + whereClause(conds) + " GROUP BY 2, 3, 4, 5"
	rows, err := s.pool.Query(ctx, q, a...)
	if err != nil {
		return fmt.Errorf("cannot query series: %w", err)
	}
	var (
		kind     int32
		t        *time.Time
		k        *string
		lat, lon float64
		n, epoch int64
		vers     = map[int64]int64{}
		maps     = map[int64]sliceMap{}
	)
	if _, err := pgx.ForEachRow(rows, []any{&kind, &t, &k, &lat, &lon, &n}, func() error {
		switch kind {
		case -1:
			epoch = n
		case -3:
			vers[t.UnixMicro()] = n
		default:
			m := maps[t.UnixMicro()]
			if m == nil {
				m = sliceMap{}
				maps[t.UnixMicro()] = m
			}
			m[memoKey(dim, *k, lat, lon)] += n
		}
		return nil
	}); err != nil {
		return fmt.Errorf("cannot query series: %w", err)
	}
	gen := s.memo.Generation()
	for h, v := range vers {
		m := maps[h]
		if m == nil {
			m = sliceMap{}
		}
		s.memo.Put(fmt.Sprintf("hour|%s|%s|%s|%d|%d|%d", part, dom, pt, h, v, epoch), gen, m, 64+len(m)*64)
	}
	return nil
}
