package duckdb

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/peba-go/peba"
)

// TestIDFilterRulesOutNewIDs checks the filter's answers: "maybe" for every
// added ID and for every ID created at or before the floor, "no" for nearly
// every other ID, and a floor that covers a dropped generation.
func TestIDFilterRulesOutNewIDs(t *testing.T) {
	defer func(n int) { idGenIDs = n }(idGenIDs)
	idGenIDs = 1000
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newIDFilter(base.UnixMicro())
	var added []peba.Event
	for i := range 2500 { // rotates twice
		added = append(added, peba.Event{ID: fmt.Sprintf("added-%d", i), CreateTime: base.Add(time.Duration(i+1) * time.Second)})
	}
	f.add(added)
	if f.prev == nil || f.cur.n != 500 {
		t.Fatalf("generations: prev %v, cur %d IDs; want two rotations", f.prev != nil, f.cur.n)
	}
	if want := base.Add(1000 * time.Second).UnixMicro(); f.floor != want {
		t.Fatalf("floor = %d, want the newest create time of the dropped generation %d", f.floor, want)
	}
	for _, e := range added {
		if !f.mayBeStored(e.ID, e.CreateTime) {
			t.Fatalf("added %s (created %v) ruled out", e.ID, e.CreateTime)
		}
	}
	if !f.mayBeStored("never-added", base) {
		t.Fatal("an ID created at the floor was ruled out")
	}
	maybe := 0
	for i := range 10000 {
		if f.mayBeStored(fmt.Sprintf("new-%d", i), base.Add(time.Hour)) {
			maybe++
		}
	}
	if maybe > 50 {
		t.Errorf("%d of 10000 new IDs not ruled out, want < 0.5%%", maybe)
	}
}

// TestDedupWithFilter appends batches and resends of them (whole, partial,
// mixed with new events, after the filter rotated, after a reopen, and with
// create times at and below the floor) and checks that every resent event
// is recognized and every new one inserted.
func TestDedupWithFilter(t *testing.T) {
	defer func(n int) { idGenIDs = n }(idGenIDs)
	idGenIDs = 64
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "peba.duckdb")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	r := rand.New(rand.NewPCG(11, 12))
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var sent []peba.Event
	n := 0
	newEvents := func(k int) []peba.Event {
		evs := make([]peba.Event, k)
		for i := range evs {
			evs[i] = sampleEvent(n, "")
			// Mostly increasing create times, some older.
			evs[i].CreateTime = base.Add(time.Duration(n-r.IntN(100)) * time.Second)
			n++
		}
		return evs
	}
	check := func(when string, batch []peba.Event, wantNew int) {
		t.Helper()
		res, err := s.AppendEvents(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Inserted) != wantNew || res.Duplicates != len(batch)-wantNew {
			t.Fatalf("%s: inserted %d, duplicates %d; want %d and %d", when, len(res.Inserted), res.Duplicates, wantNew, len(batch)-wantNew)
		}
		sent = append(sent, res.Inserted...)
	}
	for round := range 20 {
		evs := newEvents(1 + r.IntN(40))
		check(fmt.Sprintf("round %d new", round), evs, len(evs))
		old := make([]peba.Event, 1+r.IntN(20))
		for i := range old {
			old[i] = sent[r.IntN(len(sent))]
		}
		seen := map[string]bool{}
		var batch []peba.Event
		for _, e := range old {
			if !seen[e.ID] {
				seen[e.ID] = true
				batch = append(batch, e)
			}
		}
		fresh := newEvents(r.IntN(5))
		check(fmt.Sprintf("round %d resend", round), append(batch, fresh...), len(fresh))
		if round == 10 {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if s, err = Open(path, Options{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	check("everything again", sent, 0)
	var count int
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM events").Scan(&count); err != nil || count != n {
		t.Fatalf("events = %d, %v; want %d", count, err, n)
	}
}
