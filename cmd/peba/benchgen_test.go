package main

import (
	"strings"
	"testing"

	"github.com/peba-go/peba"
)

func TestBenchGenWritesRealisticData(t *testing.T) {
	dir := t.TempDir()
	out, _, err := runCmd(t, "", "bench", "gen", "-events", "20000", "-days", "3", "-datadir", dir)
	if err != nil || !strings.Contains(out, "20000 events written") {
		t.Fatalf("%q %v", out, err)
	}
	stored := storedEvents(t, dir)
	if len(stored) != 20000 {
		t.Fatalf("%d events stored", len(stored))
	}
	community, ips, types := 0, map[string]int{}, map[string]bool{}
	for _, e := range stored {
		if e.Domain == peba.DomainCommunity {
			community++
		}
		ips[e.SrcIP.String()]++
		types[e.PeerType] = true
	}
	// Zipf: a few addresses are hot, most are rare.
	hottest := 0
	for _, n := range ips {
		hottest = max(hottest, n)
	}
	if community < 15000 || community > 17000 || hottest < 200 || len(ips) < 2000 || len(types) < 10 {
		t.Errorf("community=%d hottest=%d distinct IPs=%d types=%d", community, hottest, len(ips), len(types))
	}
}
