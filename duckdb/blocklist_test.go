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

func TestSourcesContract(t *testing.T) {
	storetest.RunSources(t, func(t testing.TB) storetest.SourcesStore {
		s, _ := openTemp(t, Options{})
		return s
	})
}

// A limit that cuts a count group of thousands of addresses keeps the
// numerically smallest of them, as with few, while sourcesStored holds no
// more than twice the limit at a time.
func TestSourcesStoredCutsALargeTie(t *testing.T) {
	s, _ := openTemp(t, Options{NoWarm: true})
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	evs := benchLikeEvents(rand.New(rand.NewPCG(3, 4)), 5000, 0, now)
	for i := range evs {
		// 4,997 addresses seen once, in no order; 10.0.0.1 thrice.
		evs[i].SrcIP = netip.AddrFrom4([4]byte{11, byte(i * 7919 % 5000 >> 8), byte(i * 7919 % 5000), 1})
		if i < 3 {
			evs[i].SrcIP = netip.MustParseAddr("10.0.0.1")
		}
	}
	if _, err := s.AppendEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	w := peba.Window{Domains: []peba.Domain{peba.DomainCommunity, peba.DomainPrivate}, From: now.Add(-time.Hour)}
	all, err := s.sourcesStored(ctx, w, peba.SourceQuery{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.sourcesStored(ctx, w, peba.SourceQuery{Limit: 7})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4998 || len(got) != 7 {
		t.Fatalf("%d sources, %d with a limit of 7; want 4998 and 7", len(all), len(got))
	}
	if !reflect.DeepEqual(got, all[:7]) {
		t.Errorf("limit 7: %v; want %v", got, all[:7])
	}
	if got[0].Addr.String() != "10.0.0.1" || got[1].Addr.String() != "11.0.1.1" || got[6].Addr.String() != "11.0.6.1" {
		t.Errorf("limit 7: %v; want 10.0.0.1, then 11.0.1.1 up to 11.0.6.1", got)
	}
}
