package main

import (
	"context"
	"io"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/config"
	"github.com/peba-go/peba/internal/pgtest"
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

func TestBenchGenTopUpDuckDB(t *testing.T) {
	testBenchGenTopUp(t, "-datadir", t.TempDir())
}

func TestBenchGenTopUpPostgres(t *testing.T) {
	testBenchGenTopUp(t, "-postgres_dsn", pgtest.DSN(t))
}

// testBenchGenTopUp generates two days of data ending at end, then tops it
// up to six hours later (the benchmark started late) and checks that the gap
// is filled at the data's rate up to the new end, and that a second top-up
// adds next to nothing.
func testBenchGenTopUp(t *testing.T, store ...string) {
	const events, days = 4800, 2 // 100 events per hour
	end := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	later := end.Add(6 * time.Hour)
	gen := append([]string{"bench", "gen", "-events", strconv.Itoa(events), "-days", strconv.Itoa(days), "-end", end.Format(time.RFC3339)}, store...)
	if out, _, err := runCmd(t, "", gen...); err != nil {
		t.Fatalf("gen: %q %v", out, err)
	}
	count, newest := benchStoreSummary(t, store)
	if count != events || newest.After(end) || newest.Before(end.Add(-time.Hour)) {
		t.Fatalf("after gen: %d events, newest %s", count, newest)
	}

	topup := append([]string{"bench", "gen", "-topup", "-end", later.Format(time.RFC3339)}, store...)
	out, _, err := runCmd(t, "", topup...)
	if err != nil {
		t.Fatalf("top-up: %q %v", out, err)
	}
	added := topUpCount(t, out)
	// The gap (6 h plus what the wave left before end) at 100 events/h.
	if want := later.Sub(newest).Hours() * 100; float64(added) < want*0.97 || float64(added) > want*1.03 {
		t.Errorf("top-up wrote %d events, want about %.0f: %q", added, want, out)
	}
	count2, newest2 := benchStoreSummary(t, store)
	if count2 != count+int64(added) || newest2.After(later) || later.Sub(newest2) > 2*time.Minute {
		t.Fatalf("after top-up: %d events (want %d), newest %s (want just before %s)", count2, count+int64(added), newest2, later)
	}

	// Running it again fills only the few seconds after the newest event.
	out, _, err = runCmd(t, "", topup...)
	if err != nil {
		t.Fatalf("second top-up: %q %v", out, err)
	}
	count3, newest3 := benchStoreSummary(t, store)
	if again := topUpCount(t, out); again > 2 || count3 != count2+int64(again) {
		t.Errorf("second top-up wrote %d events, store went from %d to %d: %q", again, count2, count3, out)
	}

	// An explicit rate: one event per second up to ten minutes later.
	rated := append([]string{"bench", "gen", "-topup", "-rate", "1", "-end", later.Add(10 * time.Minute).Format(time.RFC3339)}, store...)
	out, _, err = runCmd(t, "", rated...)
	if err != nil {
		t.Fatalf("top-up -rate: %q %v", out, err)
	}
	count4, newest4 := benchStoreSummary(t, store)
	want := int(later.Add(10 * time.Minute).Sub(newest3).Round(time.Second).Seconds())
	if n := topUpCount(t, out); n < want-1 || n > want+1 || count4 != count3+int64(n) || newest4.Before(later.Add(9*time.Minute)) {
		t.Errorf("top-up -rate 1: wrote %d (want %d), store %d -> %d, newest %s: %q", n, want, count3, count4, newest4, out)
	}
}

// topUpCount reads the number of events a top-up announced.
func topUpCount(t *testing.T, out string) int {
	t.Helper()
	m := regexp.MustCompile(`events/s: (\d+) events`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no top-up summary in %q", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// benchStoreSummary opens the (stopped) store of args and returns its event
// count and newest receive time.
func benchStoreSummary(t *testing.T, args []string) (int64, time.Time) {
	t.Helper()
	cfg, _, err := config.Load("test", args, env(nil), io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := openStore(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	all := peba.Window{Domains: []peba.Domain{peba.DomainCommunity, peba.DomainPrivate}}
	n, err := st.Count(ctx, all)
	if err != nil {
		t.Fatal(err)
	}
	latest, err := st.Latest(ctx, all, netip.Addr{}, 1)
	if err != nil || len(latest) != 1 {
		t.Fatalf("latest: %v %v", latest, err)
	}
	return n, latest[0].ReceivedTime
}
