package duckdb

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/peba-go/peba"
)

// The newest events by received time, in memory, for Latest without a
// source (the live ticker retrieveAlertsJson and retrieveAlertsCyber ask
// for the 35 and MAXALERTS newest of today and yesterday, uncached every
// few seconds) and of a busy source (recent_latest.go). Reading them from
// DuckDB cost 5-7 ms on 10M events, mostly the decompression of all 40
// columns of a row group for 35 rows.
//
// The cache holds every stored event received at or after lo, so any
// window's newest events are answered from it when it has enough of them
// (or the window starts at or after lo). It is loaded on first use from
// the database, under the writer lock so that no append slips between the
// load and its installation, and updated after each append commits, under
// the same lock, so that it always equals some committed state. Retention
// empties it if it deletes events the cache holds (in the deleting
// transaction, so a rollback cannot leave it incomplete; retractRecent);
// the next use loads it again.

// recentMax is the number of events the cache keeps. Private-only windows
// see about a fifth of them on community-heavy data.
var recentMax = 2000

type recentCache struct {
	mu     sync.RWMutex
	valid  bool
	lo     time.Time    // every stored event with ReceivedTime >= lo is in events
	events []peba.Event // newest first: ReceivedTime descending, then ID ascending
}

// latestOrder is Latest's order on received time.
func latestOrder(a, b *peba.Event) int {
	if c := b.ReceivedTime.Compare(a.ReceivedTime); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

// storedForm returns e as the database returns it (scanEvent): times in UTC
// to the microsecond, empty attribute lists nil, no payload bytes.
func storedForm(e peba.Event) peba.Event {
	e.ReceivedTime, e.CreateTime = dbTime(e.ReceivedTime), dbTime(e.CreateTime)
	for _, a := range []*[]peba.Attr{&e.AdditionalData, &e.Fields, &e.Requests} {
		if len(*a) == 0 {
			*a = nil
		}
	}
	e.Payload = nil
	return e
}

// rememberRecent adds committed events to the cache. The caller holds the
// writer lock and has committed inserted.
func (s *Store) rememberRecent(inserted []peba.Event) {
	s.rememberTimes(inserted)
	c := &s.recent
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.valid || len(inserted) == 0 {
		return
	}
	add, lo := newestRecent(inserted, c.lo) // recentnewest.go
	c.lo = lo
	for len(c.events) > 0 && c.events[len(c.events)-1].ReceivedTime.Before(c.lo) {
		c.events = c.events[:len(c.events)-1]
	}
	if len(add) == 0 {
		return
	}
	c.events = append(c.events, add...)
	slices.SortFunc(c.events, func(a, b peba.Event) int { return latestOrder(&a, &b) })
	if len(c.events) > recentMax {
		// Drop the oldest; the cache then covers only what is after them.
		if t := c.events[recentMax].ReceivedTime.Add(time.Microsecond); t.After(c.lo) {
			c.lo = t
		}
		c.events = slices.Clip(c.events[:recentMax])
		for len(c.events) > 0 && c.events[len(c.events)-1].ReceivedTime.Before(c.lo) {
			c.events = c.events[:len(c.events)-1]
		}
	}
}

// retractRecent is called by retention, in the transaction that deletes
// the events received before t, with the writer lock held. The cache and
// the times stay as they are if they hold no such event (the usual case:
// retention keeps days, they cover the last hours): they still hold every
// stored event after their lo, and a rollback changes nothing. Otherwise
// they are emptied and loaded again on next use (0.3 s of CPU for the
// times on 10M events, during which appends wait).
func (s *Store) retractRecent(t time.Time) {
	t = dbTime(t)
	c := &s.recent
	c.mu.Lock()
	if n := len(c.events); n > 0 && c.events[n-1].ReceivedTime.Before(t) {
		c.valid, c.events = false, nil
	}
	c.mu.Unlock()
	us := t.UnixMicro()
	keep := true
	s.times.mu.RLock()
	for _, ev := range s.times.ev {
		keep = keep && (len(ev) == 0 || ev[0].us >= us)
	}
	s.times.mu.RUnlock()
	if !keep {
		s.forgetTimes()
	}
}

// loadRecent fills the cache if it is empty and the writer lock is free
// (a reader does not wait for an append; it reads the database instead).
func (s *Store) loadRecent(ctx context.Context) error {
	s.recent.mu.RLock()
	valid := s.recent.valid
	s.recent.mu.RUnlock()
	if valid || !s.mu.TryLock() {
		return nil
	}
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.recent.mu.RLock()
	valid = s.recent.valid
	s.recent.mu.RUnlock()
	if valid {
		return nil
	}
	all := peba.Window{Domains: []peba.Domain{peba.DomainCommunity, peba.DomainPrivate}, Field: peba.Received}
	evs, err := s.latestStored(ctx, all, recentMax)
	if err != nil {
		return err
	}
	var lo time.Time // fewer than recentMax: the cache holds every event
	if len(evs) == recentMax {
		// Events received at the same instant as the oldest one loaded may
		// have been cut off: cover only what is after it.
		lo = evs[len(evs)-1].ReceivedTime.Add(time.Microsecond)
		for len(evs) > 0 && evs[len(evs)-1].ReceivedTime.Before(lo) {
			evs = evs[:len(evs)-1]
		}
	}
	s.recent.mu.Lock()
	s.recent.valid, s.recent.lo, s.recent.events = true, lo, evs
	s.recent.mu.Unlock()
	return nil
}

// recentBounds is what the cache's answers test of w: its bounds as the
// table stores times (zero: open), and which domains it takes.
func recentBounds(w peba.Window) (from, to time.Time, community, private bool) {
	from, to = w.From, w.To
	if !from.IsZero() {
		from = dbTime(from)
	}
	if !to.IsZero() {
		to = dbTime(to)
	}
	for _, d := range w.Domains {
		community = community || d == peba.DomainCommunity
		private = private || d == peba.DomainPrivate
	}
	return from, to, community, private
}

// latestRecent answers Latest(w, no source, limit) from the cache; ok is
// false if the cache cannot tell (not loaded, or it may lack events of w).
func (s *Store) latestRecent(w peba.Window, limit int) (out []peba.Event, ok bool) {
	if w.Field != peba.Received || limit > recentMax {
		return nil, false
	}
	from, to, community, private := recentBounds(w)
	c := &s.recent
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.valid {
		return nil, false
	}
	for i := range c.events {
		e := &c.events[i]
		if e.ReceivedTime.Before(c.lo) || !from.IsZero() && e.ReceivedTime.Before(from) {
			break
		}
		if !to.IsZero() && !e.ReceivedTime.Before(to) || w.PeerType != "" && e.PeerType != w.PeerType ||
			e.Domain == peba.DomainCommunity && !community || e.Domain == peba.DomainPrivate && !private {
			continue
		}
		if out = append(out, *e); len(out) == limit {
			return out, true
		}
	}
	// Fewer than limit: the answer only if the window starts within what
	// the cache covers.
	if c.lo.IsZero() || !from.IsZero() && !from.Before(c.lo) {
		return out, true
	}
	return nil, false
}

// The received times and source addresses of the events of the last
// recentSpan, by domain, for Count of recent windows (retrieveAlertStats
// asks for four of them, retrieveAlertsCount for one, every few seconds:
// a Count that reads the rollups and the raw edges costs 1-2 ms, four of
// them miss retrieveAlertStats' 2 ms budget) and for the sources of recent
// windows (retrieveIPs, blocklists; recent_sources.go). Binary search in
// sorted times is exact at any bound. Loaded, maintained and emptied like
// the newest events above; recentTimesMax bounds the memory (16 bytes per
// event, 32 MB) when ingest is so fast that a day holds more events: then the
// times cover less than recentSpan, and older windows are read from the
// database.
var (
	recentSpan     = 25 * time.Hour
	recentTimesMax = 2_000_000
)

// recentEvent is one event of recentTimes: its received time in µs and its
// source key (srcNames).
type recentEvent struct {
	us  int64
	src uint64
}

func cmpRecentUS(e recentEvent, us int64) int {
	switch {
	case e.us < us:
		return -1
	case e.us > us:
		return 1
	}
	return 0
}

func cmpRecent(a, b recentEvent) int { return cmpRecentUS(a, b.us) }

type recentTimes struct {
	mu    sync.RWMutex
	valid bool
	lo    int64            // every stored event received at or after lo (µs) is in ev
	ev    [2][]recentEvent // sorted by time: [0] private, [1] community
	base  [2][]recentEvent // the arrays of ev from their start (makeRoom)
	names srcNames         // the source keys that are not IPv4 addresses
}

func domainIndex(d peba.Domain) int {
	if d == peba.DomainCommunity {
		return 1
	}
	return 0
}

// rememberTimes adds committed events to the times. The caller holds the
// writer lock.
func (s *Store) rememberTimes(inserted []peba.Event) {
	c := &s.times
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.valid {
		return
	}
	var add [2][]recentEvent
	for i := range inserted {
		e := &inserted[i]
		if us := dbTime(e.ReceivedTime).UnixMicro(); us >= c.lo {
			d := domainIndex(e.Domain)
			add[d] = append(add[d], recentEvent{us, c.names.key(e.SrcIP)})
		}
	}
	for d := range add {
		if len(add[d]) == 0 {
			continue
		}
		// Usually in order already (received times are stamped at ingest).
		if !slices.IsSortedFunc(add[d], cmpRecent) {
			slices.SortFunc(add[d], cmpRecent)
		}
		c.insert(d, add[d])
	}
	c.trim(time.Now())
}

// insert merges the sorted add into c.ev[d], after the times equal to its
// own. The usual batch goes at the end; one out of order (an import, or a
// batch stamped before another that was applied first) moves only the
// times after its first.
func (c *recentTimes) insert(d int, add []recentEvent) {
	c.makeRoom(d, len(add))
	t := c.ev[d]
	n, m := len(t), len(add)
	i, _ := slices.BinarySearchFunc(t, add[0].us+1, cmpRecentUS) // the first later time
	t = t[:n+m]
	// Merge t[i:n] and add from the back into t[i:n+m].
	a, b := n-1, m-1
	for w := n + m - 1; b >= 0; w-- {
		if a >= i && t[a].us > add[b].us {
			t[w], a = t[a], a-1
		} else {
			t[w], b = add[b], b-1
		}
	}
	c.ev[d] = t
}

// makeRoom makes room for m more times after c.ev[d] in its array. Trim
// drops times at the front by reslicing, so at the cap the times slide
// through their array: when they reach its end they are moved back to its
// start (a memmove of at most recentTimesMax entries, once per fifth of
// them appended), instead of going to a new array on every growth of the
// slice (an array of 40 MB, and as much garbage, every ~500,000 events at
// full ingest; docs/performance.md, session 7).
func (c *recentTimes) makeRoom(d, m int) {
	t := c.ev[d]
	if cap(t)-len(t) >= m {
		return
	}
	base := c.base[d][:cap(c.base[d])]
	if front := cap(base) - cap(t); front >= cap(base)/8 && cap(base)-len(t) >= m {
		c.ev[d] = base[:copy(base, t)]
		return
	}
	grown := make([]recentEvent, len(t), (len(t)+m)*5/4+1024)
	copy(grown, t)
	c.ev[d], c.base[d] = grown, grown
}

// trim drops the times older than recentSpan before now, and the oldest
// beyond recentTimesMax, and raises lo past what it dropped.
func (c *recentTimes) trim(now time.Time) {
	lo := max(c.lo, dbTime(now.Add(-recentSpan)).UnixMicro())
	for n := len(c.ev[0]) + len(c.ev[1]); n > recentTimesMax; n-- {
		// The oldest of both domains goes; lo moves past it, so that
		// others at the same instant do not count as covered.
		d := 0
		if len(c.ev[0]) == 0 || len(c.ev[1]) > 0 && c.ev[1][0].us < c.ev[0][0].us {
			d = 1
		}
		lo = max(lo, c.ev[d][0].us+1)
		c.ev[d] = c.ev[d][1:]
	}
	c.lo = lo
	for d := range c.ev {
		i, _ := slices.BinarySearchFunc(c.ev[d], lo, cmpRecentUS)
		// Resliced, not copied: at the bound every append drops as many
		// as it adds, and a copy of up to recentTimesMax entries per apply
		// cost 64 MB of garbage each time. makeRoom reuses the front.
		c.ev[d] = c.ev[d][i:]
	}
	c.names.compact(&c.ev)
}

// loadTimes fills the times if they are empty and the writer lock is free.
func (s *Store) loadTimes(ctx context.Context) error {
	s.times.mu.RLock()
	valid := s.times.valid
	s.times.mu.RUnlock()
	if valid || !s.mu.TryLock() {
		return nil
	}
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	c := &s.times
	c.mu.RLock()
	valid = c.valid
	c.mu.RUnlock()
	if valid {
		return nil
	}
	now := time.Now()
	lo := dbTime(now.Add(-recentSpan))
	cut, err := s.recentCut(ctx, lo.UnixMicro())
	if err != nil {
		return fmt.Errorf("cannot load recent times: %w", err)
	}
	ranges, err := s.recentRanges(ctx, cut)
	if err != nil {
		return fmt.Errorf("cannot load recent times: %w", err)
	}
	// One query per range of at most loadTimesPage events: the driver
	// materializes a whole result. One query for the whole span (a GROUP
	// BY source with lists, before) needed more than the 128MB memory
	// limit on a day of ~2.7M events from as many sources: the times were
	// never loaded, and every Count that needed them failed.
	var ev [2][]recentEvent
	var names srcNames
	for _, r := range ranges {
		q := `SELECT community, src_ip, epoch_us(received_time) FROM events WHERE received_time >= ?`
		args := []any{time.UnixMicro(r[0]).UTC()}
		if r[1] != 0 {
			q += ` AND received_time < ?`
			args = append(args, time.UnixMicro(r[1]).UTC())
		}
		if err := s.scanTimes(ctx, &ev, &names, q, args...); err != nil {
			return fmt.Errorf("cannot load recent times: %w", err)
		}
	}
	for d := range ev {
		slices.SortFunc(ev[d], cmpRecent)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.valid, c.lo, c.ev, c.base, c.names = true, cut, ev, ev, names
	c.trim(now)
	return nil
}

// loadTimesPage is how many events loadTimes reads per query, unless one
// second holds more (~10 MB in DuckDB).
var loadTimesPage = 200_000

// scanTimes appends the events of q (community, src_ip, received µs) to ev.
func (s *Store) scanTimes(ctx context.Context, ev *[2][]recentEvent, names *srcNames, q string, args ...any) error {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var community bool
		var src string
		var us int64
		if err := rows.Scan(&community, &src, &us); err != nil {
			return err
		}
		d := domainIndex(domainOf(community))
		ev[d] = append(ev[d], recentEvent{us, names.keyOfText(src)})
	}
	return rows.Err()
}

// recentRanges cuts the events received since from into ranges [start,
// end) of whole seconds holding at most loadTimesPage events each, but
// where one second holds more; the last range has end 0: no bound.
func (s *Store) recentRanges(ctx context.Context, from int64) ([][2]int64, error) {
	buckets, err := s.receivedPer(ctx, "second", from)
	if err != nil {
		return nil, err
	}
	var out [][2]int64
	start, n := from, 0
	for _, b := range buckets {
		if n > 0 && n+b.n > loadTimesPage {
			out = append(out, [2]int64{start, b.start})
			start, n = b.start, 0
		}
		n += b.n
	}
	return append(out, [2]int64{start, 0}), nil
}

// recentCut returns the time (µs) from which loadTimes reads: lo if at most
// recentTimesMax events were received since lo, else the start of the
// oldest second that, with every newer event, holds at most that many. It
// counts events per hour, then per minute and per second from the bucket
// where the cap is crossed: three small aggregates over received_time.
func (s *Store) recentCut(ctx context.Context, lo int64) (int64, error) {
	cut := lo
	for _, unit := range []string{"hour", "minute", "second"} {
		buckets, err := s.receivedPer(ctx, unit, cut)
		if err != nil {
			return 0, err
		}
		// The bucket in which the events, counted from the newest, exceed
		// the cap.
		crossed, total := -1, 0
		for i := len(buckets) - 1; i >= 0 && crossed < 0; i-- {
			if total += buckets[i].n; total > recentTimesMax {
				crossed = i
			}
		}
		if crossed < 0 {
			return cut, nil // everything since cut fits
		}
		if unit == "second" {
			return max(cut, buckets[crossed].start+1_000_000), nil
		}
		cut = max(cut, buckets[crossed].start)
	}
	return cut, nil
}

// bucketCount is the number of events received in the bucket from start
// (µs).
type bucketCount struct {
	start int64
	n     int
}

// receivedPer counts the events received since from per bucket of unit
// (a date_trunc unit), oldest first; the first bucket may start before from.
func (s *Store) receivedPer(ctx context.Context, unit string, from int64) ([]bucketCount, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT epoch_us(date_trunc('`+unit+`', received_time)) AS b, count(*)
		FROM events WHERE received_time >= ? GROUP BY b ORDER BY b`, time.UnixMicro(from).UTC())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []bucketCount
	for rows.Next() {
		var b bucketCount
		if err := rows.Scan(&b.start, &b.n); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// forgetTimes empties the times (retention). The caller holds the writer
// lock.
func (s *Store) forgetTimes() {
	s.times.mu.Lock()
	s.times.valid, s.times.ev, s.times.base, s.times.names = false, [2][]recentEvent{}, [2][]recentEvent{}, srcNames{}
	s.times.mu.Unlock()
}

// recentRange returns, per domain, the events of w (received time, no
// peer type) as sub-slices of c.ev; ok is false if the times cannot tell
// (not loaded, a peer type, or w starts before what they cover). The
// caller holds c.mu.
func (c *recentTimes) recentRange(w peba.Window) (ev [2][]recentEvent, ok bool) {
	if !c.valid || w.Field != peba.Received || w.PeerType != "" || w.From.IsZero() {
		return ev, false
	}
	from := dbTime(w.From).UnixMicro()
	if from < c.lo {
		return ev, false
	}
	for _, d := range w.Domains {
		if d != peba.DomainCommunity && d != peba.DomainPrivate {
			continue
		}
		t := c.ev[domainIndex(d)]
		i, _ := slices.BinarySearchFunc(t, from, cmpRecentUS)
		j := len(t)
		if !w.To.IsZero() {
			j, _ = slices.BinarySearchFunc(t, dbTime(w.To).UnixMicro(), cmpRecentUS)
		}
		ev[domainIndex(d)] = t[i:max(i, j)]
	}
	return ev, true
}

// countRecent answers Count(w) from the times; ok is false if they cannot
// tell.
func (s *Store) countRecent(w peba.Window) (n int64, ok bool) {
	c := &s.times
	c.mu.RLock()
	defer c.mu.RUnlock()
	ev, ok := c.recentRange(w)
	return int64(len(ev[0]) + len(ev[1])), ok
}

// warmRecent loads the ID filter, the newest events and the recent times after Open, so
// that the first requests do not pay for it (50-100 ms on 10M events). A
// failure only leaves them to be loaded on first use.
func (s *Store) warmRecent() {
	ctx := context.Background()
	// The de-duplication filter too: until it is loaded, CertainlyNew
	// knows nothing, and the live feed shows events only after they are
	// applied (with APPLYDELAY, hundreds of milliseconds after a start).
	s.idsMu.Lock()
	_ = s.ids.load(ctx, s.db)
	s.idsMu.Unlock()
	_ = s.loadRecent(ctx)
	_ = s.loadTimes(ctx)
}
