package duckdb

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/peba-go/peba"
)

// TestSubtractedKeys checks the answers of windows that read a whole day
// minus its edges (cover) when some keys have events in the subtracted
// edges only: they sum to 0 there and must not appear, as in the raw
// answer.
func TestSubtractedKeys(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t, Options{Threads: 2})
	h := func(n float64) time.Time { return rollupDay.Add(time.Duration(n * float64(time.Hour))) }
	var evs []peba.Event
	add := func(at time.Time, country string, lat float64, port int32, url string) {
		e := sampleEvent(len(evs), "")
		e.ReceivedTime, e.CreateTime = at, at
		e.Src.Country, e.Src.CountryName, e.Src.Lat = country, country+" name", lat
		e.DstPort, e.URL = port, url
		evs = append(evs, e)
	}
	add(h(0.2), "AA", 1, 1, "/edge-only") // only in the subtracted first half hour
	add(h(23.7), "BB", 2, 2, "/edge-only")
	add(h(12), "CC", 3, 3, "/inside")
	add(h(12.5), "CC", 3, 3, "/inside")
	add(h(0.7), "AA", 4, 4, "/inside") // AA also inside, with another location
	if _, err := s.AppendEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	for _, field := range []peba.TimeField{peba.Received, peba.Created} {
		w := peba.Window{Domains: []peba.Domain{peba.DomainCommunity}, Field: field, From: h(0.5), To: h(23.5)}
		subtracts := false
		for _, sg := range plan(w, peba.DimPeerType, 24*time.Hour, true) {
			subtracts = subtracts || sg.neg
		}
		if !subtracts {
			t.Fatalf("plan(%+v) subtracts nothing: the test misses its path", w)
		}
		for _, d := range []peba.Dim{peba.DimSrcCountry, peba.DimSrcLocation, peba.DimURL, peba.DimDstPort} {
			got, err := s.top(ctx, w, d, 0, true)
			if err != nil {
				t.Fatal(err)
			}
			want, err := s.top(ctx, w, d, 0, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) == 0 || !reflect.DeepEqual(got, want) {
				t.Errorf("Top(%v, dim %d) = %v with rollups, %v raw", field, d, got, want)
			}
			var keys []string
			for _, b := range want {
				keys = append(keys, b.Key)
			}
			keys = append(keys, "AA", "BB", "1,113.72", "2,113.72", "1", "2", "/edge-only")
			for _, width := range []time.Duration{time.Hour, 24 * time.Hour} {
				gotS, err := s.series(ctx, w, width, d, keys, true)
				if err != nil {
					t.Fatal(err)
				}
				wantS, err := s.series(ctx, w, width, d, keys, false)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(gotS, wantS) {
					t.Errorf("Series(%v, %s, dim %d) = %v with rollups, %v raw", field, width, d, gotS, wantS)
				}
			}
		}
	}
}
