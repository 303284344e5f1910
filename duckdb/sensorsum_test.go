package duckdb

import (
	"context"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/storetest"
)

// summaryRow is one row of sensor_summary, decoded.
type summaryRow struct {
	events, keys int64
	groups       []peba.SensorGroup
}

// storedSummaries returns the rows of sensor_summary by day and domain.
func storedSummaries(t *testing.T, s *Store) map[dayDomain]summaryRow {
	t.Helper()
	rows, err := s.db.Query("SELECT epoch_us(t), community, event_count, key_count, groups FROM sensor_summary")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[dayDomain]summaryRow{}
	for rows.Next() {
		var k dayDomain
		var r summaryRow
		var b []byte
		if err := rows.Scan(&k.day, &k.community, &r.events, &r.keys, &b); err != nil {
			t.Fatal(err)
		}
		if r.groups, err = decodeSensorGroups(b); err != nil {
			t.Fatal(err)
		}
		if _, dup := out[k]; dup {
			t.Errorf("two summaries of %v", k)
		}
		out[k] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkSensors compares Sensors of each window (from summaries and
// rollups) with the raw-table answer and with a Go computation over the
// stored events.
func checkSensors(t *testing.T, s *Store, ws ...peba.Window) {
	t.Helper()
	ctx := context.Background()
	var all []peba.Event
	if err := s.ExportEvents(ctx, func(e *peba.Event) error { all = append(all, *e); return nil }); err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		got, err := s.sensors(ctx, w, true)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := s.sensors(ctx, w, false)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, raw) {
			t.Fatalf("Sensors(%+v) =\n  %+v with summaries\n  %+v raw", w, got, raw)
		}
		if oracle := sensorsOf(all, w); !reflect.DeepEqual(got, oracle) {
			t.Fatalf("Sensors(%+v) =\n  %+v\nwant\n  %+v", w, got, oracle)
		}
	}
}

// TestSensorSummaries checks that Sensors answered from the per-day
// summaries (sensorsum.go) equals the raw-table answer: when they are
// written, when they are read, after late events that add only counts or
// new identifiers to a summarized day, for a day that is not over, and
// after retention, including a summary computed before a retention run.
func TestSensorSummaries(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t, Options{Threads: 2})
	// The summaries are under test (altered in place below), not the
	// closed-bucket memo, which would keep serving what it read first.
	s.memo.off.Store(true)
	r := rand.New(rand.NewPCG(3, 4))
	evs := randomEvents(r, 3000, 0)
	for i := 0; i < len(evs); i += 500 {
		if _, err := s.AppendEvents(ctx, evs[i:min(i+500, len(evs))]); err != nil {
			t.Fatal(err)
		}
	}
	community := []peba.Domain{peba.DomainCommunity}
	private := []peba.Domain{peba.DomainPrivate}
	both := []peba.Domain{peba.DomainCommunity, peba.DomainPrivate}
	day := func(n int) time.Time { return rollupDay.AddDate(0, 0, n) }
	windows := func() []peba.Window {
		var ws []peba.Window
		for _, ds := range [][]peba.Domain{community, private, both} {
			for d := -1; d < 6; d++ {
				ws = append(ws, peba.Window{Domains: ds, From: day(d), To: day(d + 1)})
			}
			ws = append(ws,
				peba.Window{Domains: ds, From: day(0), To: day(5)},
				peba.Window{Domains: ds, From: day(1).Add(-time.Hour), To: day(3).Add(90 * time.Minute)},
				peba.Window{Domains: ds, From: day(2)},
				peba.Window{Domains: ds, From: day(1), To: day(2), PeerType: "Webpage"})
		}
		for range 10 {
			ws = append(ws, storetest.RandomWindow(r, rollupDay))
		}
		return ws
	}

	// Written by the first reads: one summary per day and domain with events.
	checkSensors(t, s, windows()...)
	sums := storedSummaries(t, s)
	withEvents := map[dayDomain]bool{}
	for _, e := range evs {
		withEvents[dayDomain{dbTime(e.ReceivedTime).Truncate(24 * time.Hour).UnixMicro(), e.Domain == peba.DomainCommunity}] = true
	}
	if len(sums) != len(withEvents) {
		t.Fatalf("%d summaries after the first reads, want one per day and domain with events (%d)", len(sums), len(withEvents))
	}
	// Read: a summary altered in place (same totals, one identifier more)
	// is what a read of its day returns.
	k := dayDomain{day(1).UnixMicro(), true}
	altered := slices.Clone(sums[k].groups)
	altered[0].PeerIdent = append(slices.Clone(altered[0].PeerIdent), "\xffaltered")
	if _, err := s.db.Exec("UPDATE sensor_summary SET groups = ? WHERE t = ? AND community", encodeSensorGroups(altered), day(1)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Sensors(ctx, peba.Window{Domains: community, From: day(1), To: day(2)})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, altered) {
		t.Fatalf("Sensors of a summarized day = %+v, want the summary %+v", got, altered)
	}
	if _, err := s.db.Exec("UPDATE sensor_summary SET groups = ? WHERE t = ? AND community", encodeSensorGroups(sums[k].groups), day(1)); err != nil {
		t.Fatal(err)
	}
	// An undecodable summary is aggregated again and rewritten.
	if _, err := s.db.Exec("UPDATE sensor_summary SET groups = '\\x05'::BLOB WHERE t = ? AND community", day(1)); err != nil {
		t.Fatal(err)
	}
	checkSensors(t, s, peba.Window{Domains: community, From: day(1), To: day(2)})
	if got := storedSummaries(t, s)[k]; !reflect.DeepEqual(got, sums[k]) {
		t.Fatalf("rewritten summary = %+v, want %+v", got, sums[k])
	}

	// Late events with the keys of stored rows: the day is recounted, and
	// its summary updated (the day is over).
	nextID := 100000
	late := func(n int, at time.Time, newIdent bool) []peba.Event {
		var out []peba.Event
		for _, e := range evs {
			if len(out) == n {
				break
			}
			if e.ReceivedTime.Truncate(24*time.Hour).Equal(at) && e.Domain == peba.DomainCommunity {
				e.ID = sampleEvent(nextID, "").ID
				nextID++
				if newIdent {
					e.PeerIdent = "late-sensor"
				}
				out = append(out, e)
			}
		}
		if _, err := s.AppendEvents(ctx, out); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, out...)
		return out
	}
	late(40, day(1), false)
	checkSensors(t, s, windows()...)
	after := storedSummaries(t, s)[k]
	if after.keys != sums[k].keys || after.events != sums[k].events+40 {
		t.Fatalf("summary after 40 late events of stored keys: %d events, %d keys; want %d, %d",
			after.events, after.keys, sums[k].events+40, sums[k].keys)
	}
	// A new identifier: the day is aggregated again.
	late(3, day(1), true)
	checkSensors(t, s, windows()...)
	after = storedSummaries(t, s)[k]
	if after.events != sums[k].events+43 || after.keys == sums[k].keys {
		t.Fatalf("summary after a new identifier: %d events, %d keys; want %d events, more than %d keys",
			after.events, after.keys, sums[k].events+43, sums[k].keys)
	}

	// Today: summarized when first read, recounted without rewriting while
	// events with known keys arrive, exact throughout.
	today := time.Now().UTC().Truncate(24 * time.Hour)
	var now []peba.Event
	for i := range 30 {
		e := evs[i]
		e.ID = sampleEvent(200000+i, "").ID
		e.ReceivedTime = today.Add(time.Duration(i) * time.Second)
		e.Domain = peba.DomainCommunity
		now = append(now, e)
	}
	if _, err := s.AppendEvents(ctx, now[:20]); err != nil {
		t.Fatal(err)
	}
	evs = append(evs, now[:20]...)
	wToday := peba.Window{Domains: community, From: today, To: today.Add(24 * time.Hour)}
	checkSensors(t, s, wToday)
	kToday := dayDomain{today.UnixMicro(), true}
	first := storedSummaries(t, s)[kToday]
	if first.events != 20 {
		t.Fatalf("summary of today: %d events, want 20", first.events)
	}
	again := now[20:]
	for i := range again {
		again[i].PeerIdent, again[i].PeerType, again[i].Hostname, again[i].DstIP =
			now[0].PeerIdent, now[0].PeerType, now[0].Hostname, now[0].DstIP
	}
	if _, err := s.AppendEvents(ctx, again); err != nil {
		t.Fatal(err)
	}
	evs = append(evs, again...)
	checkSensors(t, s, wToday)
	if got := storedSummaries(t, s)[kToday]; !reflect.DeepEqual(got, first) {
		t.Fatalf("summary of today rewritten by a recount: %+v, was %+v", got, first)
	}

	// Retention at an unaligned time drops the summaries of the days it
	// touches; the others stay valid.
	cut := day(2).Add(7*time.Hour + 3*time.Microsecond)
	if _, err := s.DeleteEventsBefore(ctx, cut); err != nil {
		t.Fatal(err)
	}
	for k := range storedSummaries(t, s) {
		if k.day < cut.UnixMicro() {
			t.Errorf("summary of %s kept after retention before %s", time.UnixMicro(k.day).UTC(), cut)
		}
	}
	checkSensors(t, s, windows()...)

	// A summary computed before a retention run is not written.
	w := peba.Window{Domains: both, From: day(3), To: day(4)}
	var fresh []daySensors
	var epoch int64
	if _, err := s.db.Exec("DELETE FROM sensor_summary WHERE t = ?", day(3)); err != nil {
		t.Fatal(err)
	}
	err = s.readTx(ctx, func(ctx context.Context) error {
		var err error
		_, fresh, epoch, err = s.sensorDays(ctx, []time.Time{day(3)}, w.Domains)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(fresh) != 2 {
		t.Fatalf("%d days to save, want 2", len(fresh))
	}
	if _, err := s.DeleteEventsBefore(ctx, day(3).Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	s.saveSensorDays(ctx, epoch, fresh)
	for k := range storedSummaries(t, s) {
		if k.day == day(3).UnixMicro() {
			t.Fatalf("summary of %s written from a snapshot before retention", day(3))
		}
	}
	checkSensors(t, s, windows()...)
}

// TestSensorGroupsEncoding checks that summaries keep any value and that
// damaged ones are rejected.
func TestSensorGroupsEncoding(t *testing.T) {
	groups := []peba.SensorGroup{
		{Hostname: "", TargetIP: "192.0.2.1", PeerIdent: []string{""}, PeerType: []string{"a\x01b"}, Count: 1},
		{Hostname: "tpot\x00ü", PeerIdent: []string{"c-1", "c-2"}, PeerType: []string{"Webpage"}, Count: 1 << 40},
	}
	b := encodeSensorGroups(groups)
	got, err := decodeSensorGroups(b)
	if err != nil || !reflect.DeepEqual(got, groups) {
		t.Fatalf("decode(encode(groups)) = %+v, %v; want %+v", got, err, groups)
	}
	for n := range len(b) {
		if got, err := decodeSensorGroups(b[:n]); err == nil {
			t.Errorf("decoding %d of %d bytes gave %+v, want an error", n, len(b), got)
		}
	}
	if _, err := decodeSensorGroups(append(b, 0)); err == nil {
		t.Error("decoding with a trailing byte: no error")
	}
}
