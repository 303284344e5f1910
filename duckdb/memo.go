package duckdb

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/internal/closedmemo"
)

// The closed-bucket memo (internal/closedmemo). A statistics answer over a
// window is the sum of closed buckets and an open tail; the closed part of
// a rolling window is the same for every request until an hour closes or a
// write reaches into a closed bucket. The store keeps what it read for the
// closed buckets (grouped rows of whole rollup buckets, the exact top of a
// long tail, the sensor groups of a day) keyed by the exact statement and
// bounds, and reads only the rest (the open tail and partial edges) from
// DuckDB, merging in Go. It is not a response cache: no answer is kept,
// the open tail is read by every request, and what is kept is exact for
// its buckets until a write changes them, whatever the time.
//
// Closed: the buckets of a time field that end at or before its mark,
// which is the start of the hour memoLag before now (received: a few
// minutes, so that a batch received just before an hour ended and applied
// just after does not count as late; created: a quarter of an hour, for
// senders that batch: a later event only costs the entries over its hour
// a new read). The mark only moves forward and only under the writer lock
// (after a commit, or by a reader that gets the lock), so every write
// either committed before a reader saw a mark or sees that mark itself.
//
// Invalidation: an append whose events lie before the mark of their field
// (a late or replayed batch, an import) and retention change closed
// buckets. Each hour of each field has a version, and retention one for
// all; the writer makes the versions of the hours it changes odd before
// its COMMIT and even again after it. A reader stamps its closed range
// with the sum of the versions (plus the retention version) before its
// query, gives up the memo if one is odd (a write is committing), and
// keys what it reads by the stamp; after its query it compares the stamp
// again and, if it changed, answers without the memo. So a memo entry is
// only ever used with a snapshot that has exactly the writes it was read
// with: a writer whose versions were bumped between the two stamps
// changes the stamp, and one that was done before the first stamp is in
// the snapshot and in the key. A late event only touches the entries
// whose range covers its hour; appends of current events touch none.
// Retention also invalidates the closedmemo (its generation), which frees
// the entries at once.

// Memo sizes: each field's memo holds at most this many bytes (as the
// entries estimate themselves). The benchmark's requests need a few MB.
const memoBytes = 24 << 20

// memoLag is how long after an hour ends it counts as closed, per field.
var memoLag = [2]time.Duration{5 * time.Minute, 15 * time.Minute}

// memoHour is one hour (start, UTC microseconds) of one field (index).
type memoHour struct {
	field int
	hour  int64
}

// memoState is the store's closed-bucket memo.
type memoState struct {
	m    [2]*closedmemo.Memo // by field index (memoField)
	off  atomic.Bool         // tests: read without the memo
	now  func() time.Time    // the clock of the marks (tests set it)
	mark [2]atomic.Int64     // UTC microseconds; 0 while nothing is closed

	vmu  sync.Mutex
	vers map[memoHour]uint64 // odd while a write into the hour commits
	all  uint64              // retention's version, odd while it commits

	// What the open write transaction changed; guarded by Store.mu.
	dirty    map[memoHour]bool
	dirtyAll bool
	bumped   bool // the versions were made odd (pre-commit)
}

func newMemoState() memoState {
	return memoState{
		m:     [2]*closedmemo.Memo{closedmemo.New(memoBytes), closedmemo.New(memoBytes)},
		vers:  map[memoHour]uint64{},
		dirty: map[memoHour]bool{},
		now:   time.Now,
	}
}

// memoField is the index of f in memoState's arrays.
func memoField(f peba.TimeField) int {
	if f == peba.Created {
		return 1
	}
	return 0
}

// memoWant is the mark field fi should have at now.
func memoWant(fi int, now time.Time) int64 {
	us := now.Add(-memoLag[fi]).UnixMicro()
	return us - floorMod(us, hourUS)
}

// advanceMemoMarks moves the marks to now; Store.mu held.
func (s *Store) advanceMemoMarks(now time.Time) {
	for fi := range s.memo.mark {
		if want := memoWant(fi, now); want > s.memo.mark[fi].Load() {
			s.memo.mark[fi].Store(want)
		}
	}
}

// memoMark returns the mark of field fi, advancing it first if it is
// behind and the writer lock is free (never waiting for a write).
func (s *Store) memoMark(fi int) int64 {
	if s.memo.off.Load() {
		return 0
	}
	m := s.memo.mark[fi].Load()
	if now := s.memo.now(); memoWant(fi, now) > m && s.mu.TryLock() {
		if !s.closed {
			s.advanceMemoMarks(now)
		}
		s.mu.Unlock()
		m = s.memo.mark[fi].Load()
	}
	return m
}

// noteMemoAppend records, in an append transaction (Store.mu held), the
// closed hours that inserted changes.
func (s *Store) noteMemoAppend(inserted []peba.Event) {
	mr, mc := s.memo.mark[0].Load(), s.memo.mark[1].Load()
	for i := range inserted {
		e := &inserted[i]
		if us := dbTime(e.ReceivedTime).UnixMicro(); us < mr {
			s.memo.dirty[memoHour{0, us - floorMod(us, hourUS)}] = true
		}
		if us := dbTime(e.CreateTime).UnixMicro(); us < mc {
			s.memo.dirty[memoHour{1, us - floorMod(us, hourUS)}] = true
		}
	}
}

// noteMemoAll records that the open write transaction changes buckets of
// any time (retention).
func (s *Store) noteMemoAll() { s.memo.dirtyAll = true }

// memoPreCommit makes the versions of what the transaction changed odd,
// right before its COMMIT (Store.mu held).
func (s *Store) memoPreCommit() {
	if len(s.memo.dirty) == 0 && !s.memo.dirtyAll {
		return
	}
	s.memo.bumpDirty()
	s.memo.bumped = true
}

// bumpDirty advances the versions of the hours written (of all, with
// dirtyAll) by one: odd while the write commits, even again after it.
func (m *memoState) bumpDirty() {
	m.vmu.Lock()
	for h := range m.dirty {
		m.vers[h]++
	}
	if m.dirtyAll {
		m.all++
	}
	m.vmu.Unlock()
}

// memoPostCommit ends a write transaction (Store.mu held): after a COMMIT
// (or a failed one) the versions made odd become even again; after a
// rollback nothing was changed. Then the marks move on.
func (s *Store) memoPostCommit() {
	if s.memo.bumped {
		s.memo.bumpDirty()
		if s.memo.dirtyAll {
			for _, m := range s.memo.m {
				m.Invalidate()
			}
		}
	}
	clear(s.memo.dirty)
	s.memo.dirtyAll, s.memo.bumped = false, false
	s.advanceMemoMarks(s.memo.now())
}

// memoStamp returns the stamp of the hours of field fi that overlap
// [from, to) (UTC microseconds), and ok false if a write into them is
// committing.
func (s *Store) memoStamp(fi int, from, to int64) (stamp uint64, ok bool) {
	s.memo.vmu.Lock()
	defer s.memo.vmu.Unlock()
	stamp = s.memo.all
	if stamp&1 != 0 {
		return 0, false
	}
	for h, v := range s.memo.vers {
		if h.field == fi && h.hour < to && h.hour+hourUS > from {
			if v&1 != 0 {
				return 0, false
			}
			stamp += v
		}
	}
	return stamp, true
}

// memoRead is one reader's use of the memo of one field over a closed
// range: begin before the query, valid after it.
type memoRead struct {
	s        *Store
	fi       int
	from, to int64
	gen      uint64
	stamp    uint64
}

// beginMemo starts a read of the closed range [from, to) of field fi; ok
// is false if the memo cannot be used now.
func (s *Store) beginMemo(fi int, from, to int64) (r memoRead, ok bool) {
	r = memoRead{s: s, fi: fi, from: from, to: to, gen: s.memo.m[fi].Generation()}
	r.stamp, ok = s.memoStamp(fi, from, to)
	return r, ok
}

// key returns the memo key of what base names, for this read's stamp.
func (r *memoRead) key(base string) string {
	return base + "#" + strconv.FormatUint(r.stamp, 10)
}

func (r *memoRead) get(key string) (any, bool) { return r.s.memo.m[r.fi].Get(key, r.gen) }

// valid reports whether what was read since begin is of the same
// snapshot as the memo entries of the stamp (see above).
func (r *memoRead) valid() bool {
	st, ok := r.s.memoStamp(r.fi, r.from, r.to)
	return ok && st == r.stamp && r.s.memo.m[r.fi].Generation() == r.gen
}

func (r *memoRead) put(key string, v any, size int) { r.s.memo.m[r.fi].Put(key, r.gen, v, size) }

// MemoStats returns the hits and misses of the closed-bucket memo of each
// time field (received, created), for tests and measurements.
func (s *Store) MemoStats() (hits, misses [2]int64) {
	for i, m := range s.memo.m {
		hits[i], misses[i] = m.Stats()
	}
	return hits, misses
}
