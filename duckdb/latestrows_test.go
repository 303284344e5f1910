package duckdb

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/storetest"
)

// TestLatestSourceRows compares Latest of a source by created time, read
// with the source index and whole rows of its newest hours
// (latestHoursRows), with the answer from the events alone: whole events,
// in order, for sources with many events, few (fewer than the limit, all
// hours listed), none, and after retention (hours listed without events).
func TestLatestSourceRows(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t, Options{Threads: 2})
	r := rand.New(rand.NewPCG(9, 10))
	evs := randomEvents(r, 3000, 0)
	for i := range evs {
		switch {
		case i%100 == 0: // a sparse source: 30 events
			evs[i].SrcIP = netip.AddrFrom4([4]byte{10, 1, 0, 1})
		case i%700 == 1: // fewer than most limits: 5 events
			evs[i].SrcIP = netip.AddrFrom4([4]byte{10, 1, 0, 2})
		}
	}
	for i := 0; i < len(evs); i += 300 {
		if _, err := s.AppendEvents(ctx, evs[i:min(i+300, len(evs))]); err != nil {
			t.Fatal(err)
		}
	}
	srcs := []netip.Addr{
		netip.AddrFrom4([4]byte{10, 1, 0, 1}), netip.AddrFrom4([4]byte{10, 1, 0, 2}),
		netip.AddrFrom4([4]byte{10, 0, 0, 3}), netip.MustParseAddr("10.9.9.9"),
	}
	check := func(rounds int) {
		t.Helper()
		for range rounds {
			w := storetest.RandomWindow(r, rollupDay)
			w.Field = peba.Created
			if r.IntN(3) != 0 {
				w.PeerType = ""
			}
			if r.IntN(3) == 0 {
				w.From, w.To = time.Time{}, time.Time{}
			}
			src := srcs[r.IntN(len(srcs))]
			limit := []int{1, 2, 5, 7, 35}[r.IntN(5)]
			got, err := s.latest(ctx, w, src, limit, true)
			if err != nil {
				t.Fatal(err)
			}
			want, err := s.latest(ctx, w, src, limit, false)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Latest(%+v, %s, %d) =\n  %v with the index\n  %v without", w, src, limit, got, want)
			}
			// The brief rows (querySingleIP) of the same path: the same
			// events, with their brief fields.
			brief, err := s.LatestBrief(ctx, w, src, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(brief) != len(want) {
				t.Fatalf("LatestBrief(%+v, %s, %d): %d events, want %d", w, src, limit, len(brief), len(want))
			}
			for i, e := range want {
				b := brief[i]
				if b.ID != e.ID || b.Domain != e.Domain || !b.ReceivedTime.Equal(e.ReceivedTime) || !b.CreateTime.Equal(e.CreateTime) ||
					b.PeerType != e.PeerType || b.SrcIP != e.SrcIP || b.Dst.Country != e.Dst.Country || b.URL != e.URL {
					t.Fatalf("LatestBrief(%+v, %s, %d)[%d] =\n  %+v\nwant the fields of\n  %+v", w, src, limit, i, b, e)
				}
			}
		}
	}
	before := latestRowsServed.Load()
	check(300)
	if n := latestRowsServed.Load() - before; n < 20 {
		t.Fatalf("latestHoursRows answered %d of 300 reads", n)
	}
	// Retention: the index keeps hours of which events are gone.
	if _, err := s.DeleteEventsBefore(ctx, rollupDay.Add(50*time.Hour+7*time.Minute)); err != nil {
		t.Fatal(err)
	}
	check(200)
}
