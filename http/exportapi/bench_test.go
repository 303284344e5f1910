package exportapi

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/auth"
	"github.com/peba-go/peba/duckdb"
)

// BenchmarkBlocklist measures blocklists over a large store, through the
// HTTP handler (query, formatting, transfer over loopback). It needs a
// data directory made by `peba bench gen` that no server is using:
//
//	peba bench gen -events 10000000 -days 30 -datadir /tmp/bench10m
//	PEBA_BENCH_DATADIR=/tmp/bench10m go test ./http/exportapi -run '^$' -bench Blocklist -benchtime 40x
//
// The clock is set to the newest event of the store, so the windows hold
// the same events however long after generation it runs. Reported:
// median and p99 per request (ms), the process CPU time per request (ms,
// DuckDB's threads and the HTTP client included: steadier than latency on
// a loaded machine), and the addresses listed.
func BenchmarkBlocklist(b *testing.B) {
	dir := os.Getenv("PEBA_BENCH_DATADIR")
	if dir == "" {
		b.Skip("set PEBA_BENCH_DATADIR to a `peba bench gen` data directory")
	}
	st, err := duckdb.Open(filepath.Join(dir, "peba.duckdb"), duckdb.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	latest, _, err := st.FindEvents(context.Background(), peba.EventFilter{Limit: 1, NoTotal: true})
	if err != nil || len(latest) == 0 {
		b.Fatalf("no events in %s: %v", dir, err)
	}
	end := latest[0].ReceivedTime.Add(time.Microsecond)
	authn := auth.New(auth.Credentials{User: communityUser, Token: communityToken}, st, auth.Options{})
	api := New(Options{Auth: authn, Sources: st, Events: st, Now: func() time.Time { return end }})
	mux := http.NewServeMux()
	api.Register(mux)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	srv := hs.URL
	for _, c := range []struct{ name, path string }{
		{"24h_txt", "/api/v1/blocklist.txt?window=24h"},
		{"24h_csv", "/api/v1/blocklist.csv?window=24h"},
		{"24h_json", "/api/v1/blocklist.json?window=24h"},
		{"24h_min10_txt", "/api/v1/blocklist.txt?window=24h&min_count=10"},
		{"2h_txt", "/api/v1/blocklist.txt?window=2h"},
		{"7d_min10_txt", "/api/v1/blocklist.txt?window=7d&min_count=10"},
	} {
		b.Run(c.name, func(b *testing.B) {
			var lat []time.Duration
			var n string
			cpu0 := processCPU()
			for b.Loop() {
				t0 := time.Now()
				resp, err := http.Get(srv + c.path)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
				lat = append(lat, time.Since(t0))
				n = resp.Header.Get("X-Blocklist-Count")
			}
			cpu := processCPU() - cpu0
			slices.Sort(lat)
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(len(lat)), "cpu-ms/op")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "median-ms")
			b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds())/1000, "p99-ms")
			if v, err := strconv.ParseFloat(n, 64); err == nil {
				b.ReportMetric(v, "addresses")
			}
		})
	}
}
