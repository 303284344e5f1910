package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/duckdb"
	"github.com/peba-go/peba/ingest"
	"github.com/prometheus/client_golang/prometheus"
)

func openStore(t *testing.T) *duckdb.Store {
	t.Helper()
	st, err := duckdb.Open(filepath.Join(t.TempDir(), "peba.duckdb"), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func events(prefix string, n int) []peba.Event {
	out := make([]peba.Event, n)
	for i := range out {
		out[i] = peba.Event{
			ID:         fmt.Sprintf("%s-%04d", prefix, i),
			Origin:     "ews",
			CreateTime: time.Date(2026, 11, 20, 8, 0, i%60, 0, time.UTC),
			PeerIdent:  "cowrie-community-01",
			PeerType:   "SSH/console(cowrie)",
			SrcIP:      netip.MustParseAddr("216.160.83.56"),
			SrcPort:    int32(40000 + i),
			DstIP:      netip.MustParseAddr("81.2.69.142"),
			DstPort:    22,
			Transport:  "tcp",
		}
	}
	return out
}

type fixedGeo struct{}

func (fixedGeo) Lookup(ip netip.Addr) peba.Geo {
	return peba.Geo{Country: "SE", CountryName: "Sweden", ASN: "AS1 Test", Lat: 59.3, Lon: 18.1}
}

func TestConcurrentSubmitsShareCommitsAndAreAllStored(t *testing.T) {
	st := openStore(t)
	reg := prometheus.NewRegistry()
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	p := ingest.New(st, fixedGeo{}, nil, ingest.Options{Registerer: reg, Now: func() time.Time { return now }})
	const senders, per = 16, 50
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := p.Submit(context.Background(), peba.DomainPrivate, events(fmt.Sprintf("s%02d", s), per))
			if err != nil || res.Inserted != per || res.Duplicates != 0 {
				t.Errorf("sender %d: %+v %v", s, res, err)
			}
		}()
	}
	wg.Wait()
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, total, err := st.FindEvents(context.Background(), peba.EventFilter{Limit: 1})
	if err != nil || total != senders*per {
		t.Fatalf("stored %d events, want %d (%v)", total, senders*per, err)
	}
	e := got[0]
	if e.Domain != peba.DomainPrivate || !e.ReceivedTime.Equal(now) || e.Src.Country != "SE" || e.Dst.ASN != "AS1 Test" {
		t.Errorf("event not enriched: %+v", e)
	}
	commits := histogramCount(t, reg, "peba_ingest_commit_seconds")
	if commits == 0 || commits > senders {
		t.Errorf("%d commits for %d senders", commits, senders)
	}
	t.Logf("%d senders were committed in %d transactions", senders, commits)
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("metric %s missing", name)
	return 0
}

func TestResubmitIsDeduplicated(t *testing.T) {
	p := ingest.New(openStore(t), nil, nil, ingest.Options{})
	defer p.Close(context.Background())
	ev := events("a", 20)
	if res, err := p.Submit(context.Background(), peba.DomainCommunity, ev); err != nil || res.Inserted != 20 {
		t.Fatalf("first: %+v %v", res, err)
	}
	again := events("a", 25) // 20 resent + 5 new
	res, err := p.Submit(context.Background(), peba.DomainCommunity, again)
	if err != nil || res.Inserted != 5 || res.Duplicates != 20 {
		t.Fatalf("resend: %+v %v", res, err)
	}
}

func TestOverloadFailsFastAndRetryably(t *testing.T) {
	p := ingest.New(openStore(t), nil, nil, ingest.Options{QueueEvents: 10})
	defer p.Close(context.Background())
	_, err := p.Submit(context.Background(), peba.DomainCommunity, events("x", 11))
	if !errors.Is(err, ingest.ErrOverloaded) || peba.ErrorCode(err) != peba.EUNAVAILABLE {
		t.Fatalf("err = %v, want ErrOverloaded", err)
	}
	if res, err := p.Submit(context.Background(), peba.DomainCommunity, events("x", 10)); err != nil || res.Inserted != 10 {
		t.Fatalf("within bound: %+v %v", res, err)
	}
}

func TestSubmitAfterCloseIsRefused(t *testing.T) {
	p := ingest.New(openStore(t), nil, nil, ingest.Options{})
	p.Close(context.Background())
	if _, err := p.Submit(context.Background(), peba.DomainCommunity, events("c", 1)); !errors.Is(err, ingest.ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
}

// gatedStore holds the first commit until released, so that the requests
// queued meanwhile are committed together in the next group.
type gatedStore struct {
	*duckdb.Store
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (g *gatedStore) AppendEvents(ctx context.Context, ev []peba.Event) (peba.AppendResult, error) {
	g.once.Do(func() { close(g.entered); <-g.release })
	return g.Store.AppendEvents(ctx, ev)
}

func TestPoisonedBatchDoesNotFailItsGroup(t *testing.T) {
	g := &gatedStore{Store: openStore(t), entered: make(chan struct{}), release: make(chan struct{})}
	p := ingest.New(g, nil, nil, ingest.Options{})
	defer p.Close(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := p.Submit(context.Background(), peba.DomainCommunity, events("first", 1))
		first <- err
	}()
	<-g.entered

	bad := events("bad", 3)
	bad[1].Username = "\xff\xfe not UTF-8" // the store refuses the whole transaction
	results := make(chan error, 2)
	go func() {
		_, err := p.Submit(context.Background(), peba.DomainCommunity, events("good", 3))
		results <- err
	}()
	go func() { _, err := p.Submit(context.Background(), peba.DomainCommunity, bad); results <- err }()
	time.Sleep(100 * time.Millisecond) // let both queue behind the held commit
	close(g.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	var ok, failed int
	for range 2 {
		if err := <-results; err != nil {
			failed++
		} else {
			ok++
		}
	}
	if ok != 1 || failed != 1 {
		t.Fatalf("ok=%d failed=%d, want 1 and 1", ok, failed)
	}
	_, total, _ := g.FindEvents(context.Background(), peba.EventFilter{})
	if total != 4 {
		t.Fatalf("stored %d, want 4 (first + good; nothing of bad)", total)
	}
}
