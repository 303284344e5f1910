package postgres

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/peba-go/peba"
)

// BenchmarkEndpointStats times the Stats calls of the endpoints the memo
// serves, on an existing database (PEBA_BENCH_POSTGRES_DSN: a copy of the
// 10M-event benchmark data, which Open migrates), with and without the
// memo; first-ms is the first call (the memo empty), ns/op the calls
// after it:
//
//	PEBA_BENCH_POSTGRES_DSN=postgres://... go test ./postgres -run '^$' -bench EndpointStats -benchtime 30x
func BenchmarkEndpointStats(b *testing.B) {
	dsn := os.Getenv("PEBA_BENCH_POSTGRES_DSN")
	if dsn == "" {
		b.Skip("PEBA_BENCH_POSTGRES_DSN not set")
	}
	ctx := context.Background()
	all := []peba.Domain{peba.DomainCommunity, peba.DomainPrivate}
	comm := all[:1]
	type call struct {
		name string
		fn   func(s *Store, now time.Time) error
	}
	top := func(w func(now time.Time) peba.Window, dim peba.Dim, limit int) func(*Store, time.Time) error {
		return func(s *Store, now time.Time) error {
			_, err := s.Top(ctx, w(now), dim, limit)
			return err
		}
	}
	sod := func(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }
	calls := []call{
		{"retrieveIPs", top(func(now time.Time) peba.Window {
			return peba.Window{Domains: all, Field: peba.Received, From: now.Add(-2 * time.Hour)}
		}, peba.DimSrcIP, 1_000_000)},
		{"retrieveIPs15m", top(func(now time.Time) peba.Window {
			return peba.Window{Domains: all, Field: peba.Received, From: now.Add(-15 * time.Minute)}
		}, peba.DimSrcIP, 1_000_000)},
		{"LatLonSrc", top(func(now time.Time) peba.Window {
			return peba.Window{Domains: all, Field: peba.Created, From: now.Add(-24 * time.Hour), To: now}
		}, peba.DimSrcLocation, 10)},
		{"LatLonDst", top(func(now time.Time) peba.Window {
			return peba.Window{Domains: all, Field: peba.Created, From: now.Add(-24 * time.Hour), To: now}
		}, peba.DimDstLocation, 10)},
		{"topsURLs1Top", top(func(now time.Time) peba.Window {
			return peba.Window{Domains: all, Field: peba.Received, From: now.Add(-24 * time.Hour).Truncate(time.Second), PeerType: "Webpage"}
		}, peba.DimURL, 10)},
		{"topsURLs1Series", func(s *Store, now time.Time) error {
			w := peba.Window{Domains: all, Field: peba.Received, From: now.Add(-24 * time.Hour).Truncate(time.Second), PeerType: "Webpage"}
			bs, err := s.Top(ctx, w, peba.DimURL, 10)
			if err != nil {
				return err
			}
			keys := make([]string, len(bs))
			for i, x := range bs {
				keys[i] = x.Key
			}
			_, err = s.Series(ctx, w, time.Hour, peba.DimURL, keys)
			return err
		}},
		{"TpotStatsYesterday", func(s *Store, now time.Time) error {
			d := sod(now).Add(-24 * time.Hour)
			w := peba.Window{Domains: comm, Field: peba.Received, From: d, To: d.Add(24 * time.Hour)}
			if _, err := s.Top(ctx, w, peba.DimPeerType, 0); err != nil {
				return err
			}
			_, err := s.Sensors(ctx, w)
			return err
		}},
		{"getStatsToday", func(s *Store, now time.Time) error {
			d := sod(now)
			w := peba.Window{Domains: all, Field: peba.Received, From: d, To: d.Add(24 * time.Hour)}
			if _, err := s.Top(ctx, w, peba.DimPeerType, 0); err != nil {
				return err
			}
			_, err := s.Sensors(ctx, w)
			return err
		}},
	}
	for _, memo := range []int{-1, 0} {
		s, err := Open(ctx, dsn, Options{MemoBytes: memo})
		if err != nil {
			b.Fatal(err)
		}
		name := "memo"
		if memo < 0 {
			name = "nomemo"
		}
		for _, c := range calls {
			b.Run(c.name+"/"+name, func(b *testing.B) {
				// The first call (the memo empty) apart; ns/op is of the
				// calls after it.
				t0 := time.Now()
				if err := c.fn(s, time.Now()); err != nil {
					b.Fatal(err)
				}
				first := float64(time.Since(t0).Microseconds()) / 1000
				b.ResetTimer()
				for b.Loop() {
					if err := c.fn(s, time.Now()); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(first, "first-ms")
			})
		}
		s.Close()
	}
}
