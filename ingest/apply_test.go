package ingest

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/duckdb"
)

// The applier gathers the batches of a transaction into one array that it
// keeps for the next transaction. Between transactions the array holds
// nothing (no event, no pointer into one), and the next transaction of the
// same size uses it again instead of a new one.
func TestApplyReusesOneClearedArray(t *testing.T) {
	st, err := duckdb.Open(filepath.Join(t.TempDir(), "peba.duckdb"), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p := New(st, nil, nil, Options{})
	defer p.Close(context.Background())

	batch := func(prefix string, n int) []peba.Event {
		out := make([]peba.Event, n)
		for i := range out {
			out[i] = peba.Event{
				ID: fmt.Sprintf("%s-%d", prefix, i), Domain: peba.DomainCommunity, Origin: "ews",
				ReceivedTime: time.Now().UTC(), CreateTime: time.Date(2026, 11, 20, 8, 0, i, 0, time.UTC),
				PeerIdent: "cowrie-community-01", PeerType: "SSH/console(cowrie)",
				SrcIP: netip.MustParseAddr("216.160.83.56"), SrcPort: peba.NoPort,
				DstIP: netip.MustParseAddr("81.2.69.142"), DstPort: 22,
				Src: peba.UnknownGeo, Dst: peba.UnknownGeo,
			}
		}
		return out
	}
	var buf []peba.Event
	var first *peba.Event
	for round := range 3 {
		batches := [][]peba.Event{batch(fmt.Sprint("a", round), 3), batch(fmt.Sprint("b", round), 4)}
		inserted, errs := p.apply(batches, 7, &buf, false, false)
		if inserted != 7 || errs[0] != nil || errs[1] != nil {
			t.Fatalf("round %d: inserted %d, errors %v, want 7 and none", round, inserted, errs)
		}
		if len(buf) != 0 || cap(buf) < 7 {
			t.Fatalf("round %d: kept array len %d cap %d, want 0 and at least 7", round, len(buf), cap(buf))
		}
		for i, e := range buf[:cap(buf)] {
			if e.ID != "" || e.SrcIP.IsValid() || e.Src != (peba.Geo{}) {
				t.Fatalf("round %d: kept array holds event %d (%q) between transactions", round, i, e.ID)
			}
		}
		if round == 0 {
			first = &buf[:1][0]
		} else if &buf[:1][0] != first {
			t.Fatalf("round %d: a new array for a transaction of the same size", round)
		}
	}
	_, total, err := st.FindEvents(context.Background(), peba.EventFilter{})
	if err != nil || total != 21 {
		t.Fatalf("stored %d events (%v), want 21", total, err)
	}
}
