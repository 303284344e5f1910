package duckdb

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/peba-go/peba"
)

// TestRecentCacheBigBatches checks the cache of the newest events when one
// append brings more events than the cache keeps (newestRecent cuts them),
// with received-time ties at the cut: Latest from the cache must equal the
// table's answer for any window.
func TestRecentCacheBigBatches(t *testing.T) {
	defer func(n int) { recentMax = n }(recentMax)
	recentMax = 7
	ctx := context.Background()
	s := openStats(t).(*Store)
	r := rand.New(rand.NewPCG(9, 10))
	base := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	n := 0
	for batch := range 8 {
		evs := make([]peba.Event, 1+r.IntN(25))
		for i := range evs {
			e := sampleEvent(n, "")
			n++
			// Few distinct instants per batch: ties at the cut.
			e.ReceivedTime = base.Add(time.Duration(batch*2+r.IntN(3))*time.Minute + time.Duration(r.IntN(2))*time.Microsecond)
			e.Domain = peba.Domain(1 + r.IntN(2))
			evs[i] = e
		}
		if _, err := s.AppendEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		froms := []time.Time{{}}
		for _, e := range evs {
			froms = append(froms, e.ReceivedTime, e.ReceivedTime.Add(-time.Minute))
		}
		for _, limit := range []int{3, 7} {
			for _, from := range froms {
				w := peba.Window{Field: peba.Received, Domains: [][]peba.Domain{
					{peba.DomainCommunity}, {peba.DomainPrivate}, {peba.DomainCommunity, peba.DomainPrivate}}[r.IntN(3)], From: from}
				got, err := s.Latest(ctx, w, netip.Addr{}, limit)
				if err != nil {
					t.Fatal(err)
				}
				want, err := s.latestStored(ctx, w, limit)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("batch %d: Latest(from %v, %d) from the cache =\n  %v\nfrom the table\n  %v", batch, from, limit, ids(got), ids(want))
				}
			}
		}
	}
	s.recent.mu.RLock()
	defer s.recent.mu.RUnlock()
	if !s.recent.valid || len(s.recent.events) > recentMax {
		t.Fatalf("cache valid %v with %d events, want valid with at most %d", s.recent.valid, len(s.recent.events), recentMax)
	}
}
