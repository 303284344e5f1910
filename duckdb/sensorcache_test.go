package duckdb

import (
	"context"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/peba-go/peba"
)

// TestSensorCache checks the decoded summaries and merged windows
// (sensorcache.go): they are reused only for the same bytes and summaries,
// what a caller does to an answer does not reach them, and recounts of a
// day that is not over (counts summed into a copy) leave them intact.
func TestSensorCache(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t, Options{Threads: 2})
	s.memo.off.Store(true) // the summaries and the cache are under test
	r := rand.New(rand.NewPCG(5, 6))
	evs := randomEvents(r, 2000, 0)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	for i := range 300 { // a day that is not over
		evs[i].ReceivedTime = today.Add(time.Duration(i) * time.Second)
	}
	if _, err := s.AppendEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	both := []peba.Domain{peba.DomainCommunity, peba.DomainPrivate}
	day1 := rollupDay.AddDate(0, 0, 1)
	ws := []peba.Window{
		{Domains: both, From: day1, To: day1.Add(24 * time.Hour)},
		{Domains: both, From: today, To: today.Add(24 * time.Hour)},
		{Domains: both, From: rollupDay, To: rollupDay.AddDate(0, 0, 4)},
	}
	checkSensors(t, s, ws...) // writes the summaries
	for round := range 3 {
		for _, w := range ws {
			got, err := s.Sensors(ctx, w)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := s.sensors(ctx, w, false)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, raw) {
				t.Fatalf("round %d: Sensors(%+v) =\n  %+v\nraw\n  %+v", round, w, got, raw)
			}
			// A caller that reorders and changes its answer.
			slices.Reverse(got)
			for i := range got {
				got[i].Count = -1
				got[i].PeerIdent = nil
			}
		}
	}
	k := dayDomain{day1.UnixMicro(), true}
	s.sensorCache.mu.Lock()
	dec, merged := s.sensorCache.dec[k], len(s.sensorCache.merged)
	s.sensorCache.mu.Unlock()
	if dec == nil || merged == 0 {
		t.Fatalf("nothing cached: summary %v, %d merged windows", dec, merged)
	}
	if _, err := s.Sensors(ctx, ws[0]); err != nil {
		t.Fatal(err)
	}
	s.sensorCache.mu.Lock()
	again := s.sensorCache.dec[k]
	s.sensorCache.mu.Unlock()
	if again != dec {
		t.Fatal("the same summary was decoded again")
	}

	// Other bytes of the same day (the summary rewritten): decoded again,
	// and the merged window not reused.
	altered := slices.Clone(dec.groups)
	altered[0].PeerIdent = append(slices.Clone(altered[0].PeerIdent), "\xffaltered")
	if _, err := s.db.Exec("UPDATE sensor_summary SET groups = ? WHERE t = ? AND community", encodeSensorGroups(altered), day1); err != nil {
		t.Fatal(err)
	}
	got, err := s.Sensors(ctx, peba.Window{Domains: []peba.Domain{peba.DomainCommunity}, From: day1, To: day1.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, altered) {
		t.Fatalf("Sensors after the summary changed = %+v, want %+v", got, altered)
	}
	gotBoth, err := s.Sensors(ctx, ws[0])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(gotBoth, func(g peba.SensorGroup) bool { return slices.Contains(g.PeerIdent, "\xffaltered") }) {
		t.Fatal("the merged window of the old summary was reused")
	}
	if _, err := s.db.Exec("UPDATE sensor_summary SET groups = ? WHERE t = ? AND community", encodeSensorGroups(dec.groups), day1); err != nil {
		t.Fatal(err)
	}
	checkSensors(t, s, ws...)

	// Today recounted (events of known keys arrive): exact, and the kept
	// decoded summary keeps its counts.
	kToday := dayDomain{today.UnixMicro(), evs[0].Domain == peba.DomainCommunity}
	s.sensorCache.mu.Lock()
	before := s.sensorCache.dec[kToday]
	s.sensorCache.mu.Unlock()
	if before == nil {
		t.Fatal("today's summary is not cached")
	}
	counts := make([]int64, len(before.groups))
	for i, g := range before.groups {
		counts[i] = g.Count
	}
	for round := range 3 {
		more := slices.Clone(evs[:10])
		for i := range more {
			more[i].ID = sampleEvent(300000+round*10+i, "").ID
			more[i].Domain = evs[0].Domain
		}
		if _, err := s.AppendEvents(ctx, more); err != nil {
			t.Fatal(err)
		}
		checkSensors(t, s, ws...)
	}
	for i, g := range before.groups {
		if g.Count != counts[i] {
			t.Fatalf("a recount changed the kept summary: group %d count %d, was %d", i, g.Count, counts[i])
		}
	}
}
