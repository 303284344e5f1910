package duckdb

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/storetest"
)

func openStats(t testing.TB) storetest.StatsStore {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "peba.duckdb"), Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStatsContract(t *testing.T) {
	storetest.RunStats(t, openStats)
}

// TestStatsEdgeValues checks the DuckDB-specific choices documented on
// Sensors and Top: an empty hostname groups by target address, and -0
// coordinates share the key "0,0" with +0.
func TestStatsEdgeValues(t *testing.T) {
	ctx := context.Background()
	s := openStats(t)
	a, b := sampleEvent(1, ""), sampleEvent(2, "")
	a.Hostname, b.Hostname = "", "undefined"
	a.Src.Lat, a.Src.Lon = math.Copysign(0, -1), 0
	b.Src.Lat, b.Src.Lon = 0, math.Copysign(0, -1)
	if _, err := s.AppendEvents(ctx, []peba.Event{a, b}); err != nil {
		t.Fatal(err)
	}
	w := peba.Window{Domains: []peba.Domain{peba.DomainCommunity}}
	groups, err := s.Sensors(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	want := []peba.SensorGroup{{TargetIP: "172.29.0.2", PeerIdent: []string{"cowrie-01"}, PeerType: []string{"SSH/console(cowrie)"}, Count: 2}}
	if !reflect.DeepEqual(groups, want) {
		t.Errorf("Sensors = %+v, want %+v", groups, want)
	}
	top, err := s.Top(ctx, w, peba.DimSrcLocation, 0)
	if err != nil {
		t.Fatal(err)
	}
	if wantTop := []peba.Bucket{{Key: "0,0", Count: 2}}; !reflect.DeepEqual(top, wantTop) {
		t.Errorf("Top(DimSrcLocation) = %+v, want %+v", top, wantTop)
	}
	pts, err := s.Series(ctx, w, time.Hour, peba.DimSrcLocation, []string{"0,0"})
	if err != nil {
		t.Fatal(err)
	}
	wantPts := []peba.Point{{Start: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC), Key: "0,0", Count: 2}}
	if !reflect.DeepEqual(pts, wantPts) {
		t.Errorf("Series(DimSrcLocation) = %+v, want %+v", pts, wantPts)
	}
	for _, dim := range []peba.Dim{peba.DimNone, peba.Dim(200)} {
		if _, err := s.Top(ctx, w, dim, 0); peba.ErrorCode(err) != peba.EINVALID {
			t.Errorf("Top(dim %d) error = %v, want EINVALID", dim, err)
		}
	}
	if _, err := s.Count(ctx, peba.Window{Domains: w.Domains, Field: 9}); peba.ErrorCode(err) != peba.EINVALID {
		t.Errorf("Count(field 9) error = %v, want EINVALID", err)
	}
}

// BenchmarkStats appends 200k synthetic events over 30 days (one store for
// all sub-benchmarks) and times each Stats method on a month-wide window.
func BenchmarkStats(b *testing.B) {
	ctx := context.Background()
	s := openStats(b)
	const n, batch = 200_000, 5000
	start := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	step := 30 * 24 * time.Hour / n
	countries := []peba.Geo{
		{Country: "CN", CountryName: "China", Lat: 34.77, Lon: 113.72},
		{Country: "US", CountryName: "United States", Lat: 37.751, Lon: -97.822},
		{Country: "DE", CountryName: "Germany", Lat: 51.2993, Lon: 9.491},
		peba.UnknownGeo,
	}
	types := []string{"SSH/console(cowrie)", "Webpage", "Network(Dionaea)", "Passwords(heralding)"}
	for i := 0; i < n; i += batch {
		evs := make([]peba.Event, batch)
		for j := range evs {
			k := i + j
			e := sampleEvent(k, "")
			e.ReceivedTime = start.Add(time.Duration(k) * step)
			e.CreateTime = e.ReceivedTime.Add(-time.Second)
			e.Domain = peba.Domain(1 + k%5/4) // 80% community
			e.PeerType = types[k%len(types)]
			e.Hostname = fmt.Sprintf("h%d", k%50)
			e.DstPort = int32(k % 100)
			e.URL = fmt.Sprintf("/p%d", k%300)
			e.Src = countries[k%len(countries)]
			evs[j] = e
		}
		if _, err := s.AppendEvents(ctx, evs); err != nil {
			b.Fatal(err)
		}
	}
	w := peba.Window{Domains: []peba.Domain{peba.DomainCommunity}, From: start, To: start.Add(30 * 24 * time.Hour)}
	for _, c := range []struct {
		name string
		fn   func() error
	}{
		{"Count", func() error { _, err := s.Count(ctx, w); return err }},
		{"TopSrcIP", func() error { _, err := s.Top(ctx, w, peba.DimSrcIP, 10); return err }},
		{"TopSrcCountry", func() error { _, err := s.Top(ctx, w, peba.DimSrcCountry, 10); return err }},
		{"TopSrcLocation", func() error { _, err := s.Top(ctx, w, peba.DimSrcLocation, 10); return err }},
		{"TopDstPort", func() error { _, err := s.Top(ctx, w, peba.DimDstPort, 10); return err }},
		{"Series24h", func() error { _, err := s.Series(ctx, w, 24*time.Hour, peba.DimNone, nil); return err }},
		{"Series1hURL", func() error {
			_, err := s.Series(ctx, w, time.Hour, peba.DimURL, []string{"/p1", "/p2", "/p3"})
			return err
		}},
		{"Latest35", func() error { _, err := s.Latest(ctx, w, netip.Addr{}, 35); return err }},
		{"Sensors", func() error { _, err := s.Sensors(ctx, w); return err }},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if err := c.fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
