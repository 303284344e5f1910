package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"hash/maphash"
	"math"
	"time"

	"github.com/peba-go/peba"
)

// The de-duplication filter: which event IDs may already be stored, so that
// AppendEvents asks the events table only about those. The lookup query
// cost about 3 µs of CPU per appended event (binding the batch's IDs and
// hashing a row group of stored IDs), a tenth of the whole append.
//
// It holds the IDs appended since the store was opened, in two generations
// of Bloom filters, and a floor: every stored event created after the floor
// is in one of the generations. An ID created at or before the floor (an
// event that was stored before Open, a resend of an old spooled batch, an
// import) and an ID a generation may hold are looked up in the table as
// before; only IDs the filter rules out skip the query. So a false positive
// costs a lookup, never a lost duplicate, and deleting events (retention)
// needs no change: the filter may only answer "maybe" more often. The
// floor starts at the newest create time stored at Open; when the current
// generation is full, the previous one is dropped and the floor rises to
// the newest create time it held. Events are created shortly before they
// arrive, so nearly every new event is above the floor.
//
// Guarded by Store.mu; AppendEvents is the only writer of the events table.

// idGenBits is the size of one generation in bits (4 MiB), and idGenIDs how
// many IDs it takes before it is rotated: 16 bits per ID with idProbes
// probes give a false positive rate of about 0.1%.
const (
	idGenBits = 1 << 25
	idProbes  = 7
)

var idGenIDs = idGenBits / 16

type idFilter struct {
	loaded bool
	floor  int64 // µs; every stored event created after it is in cur or prev
	seed   maphash.Seed
	cur    *idGen
	prev   *idGen
}

type idGen struct {
	bits   []uint64
	n      int
	newest int64 // µs, the newest create time added
}

func newIDGen() *idGen {
	return &idGen{bits: make([]uint64, idGenBits/64), newest: math.MinInt64}
}

// load reads the newest stored create time, once.
func (f *idFilter) load(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) error {
	if f.loaded {
		return nil
	}
	var newest sql.NullTime
	if err := q.QueryRowContext(ctx, "SELECT max(create_time) FROM events").Scan(&newest); err != nil {
		return fmt.Errorf("cannot load the de-duplication filter: %w", err)
	}
	floor := int64(math.MinInt64)
	if newest.Valid {
		floor = dbTime(newest.Time).UnixMicro()
	}
	*f = newIDFilter(floor)
	return nil
}

// newIDFilter returns an empty, loaded filter with the given floor.
func newIDFilter(floor int64) idFilter {
	return idFilter{loaded: true, floor: floor, seed: maphash.MakeSeed(), cur: newIDGen()}
}

// probes returns the hash pair whose multiples select an ID's bits.
func (f *idFilter) probes(id string) (uint32, uint32) {
	h := maphash.String(f.seed, id)
	return uint32(h), uint32(h>>32) | 1
}

func (g *idGen) has(h1, h2 uint32) bool {
	for i := range uint32(idProbes) {
		b := (h1 + i*h2) & (idGenBits - 1)
		if g.bits[b/64]&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}

func (g *idGen) add(h1, h2 uint32, created int64) {
	for i := range uint32(idProbes) {
		b := (h1 + i*h2) & (idGenBits - 1)
		g.bits[b/64] |= 1 << (b % 64)
	}
	g.n++
	g.newest = max(g.newest, created)
}

// mayBeStored reports whether an event with this ID and create time may be
// in the table: false only if it certainly is not.
func (f *idFilter) mayBeStored(id string, created time.Time) bool {
	if dbTime(created).UnixMicro() <= f.floor {
		return true
	}
	h1, h2 := f.probes(id)
	return f.cur.has(h1, h2) || f.prev != nil && f.prev.has(h1, h2)
}

// add records committed events.
func (f *idFilter) add(inserted []peba.Event) {
	if !f.loaded {
		return
	}
	for i := range inserted {
		if f.cur.n >= idGenIDs {
			if f.prev != nil {
				f.floor = max(f.floor, f.prev.newest)
			}
			f.prev, f.cur = f.cur, newIDGen()
		}
		h1, h2 := f.probes(inserted[i].ID)
		f.cur.add(h1, h2, dbTime(inserted[i].CreateTime).UnixMicro())
	}
}
