//go:build unix

package duckdb

import (
	"context"
	"testing"
	"time"

	"github.com/peba-go/peba"
)

// TestMemoProbe times statistics calls on a copy of a data directory
// (PEBA_MEMO_PROBE=path/to/peba.duckdb); a measurement aid, skipped otherwise.
func TestMemoProbe(t *testing.T) {
	s := openProbe(t, "PEBA_MEMO_PROBE")
	ctx := context.Background()
	now := time.Now().UTC()
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	both := []peba.Domain{peba.DomainCommunity, peba.DomainPrivate}
	day0 := now.Truncate(24 * time.Hour)
	cases := []struct {
		name string
		fn   func() error
	}{
		{"topCountries src", func() error {
			_, err := s.Top(ctx, peba.Window{Domains: both, Field: peba.Received, From: month, To: now}, peba.DimSrcCountry, 10)
			return err
		}},
		{"latlon src", func() error {
			_, err := s.Top(ctx, peba.Window{Domains: both, Field: peba.Created, From: now.Add(-24 * time.Hour), To: now}, peba.DimSrcLocation, 10)
			return err
		}},
		{"types month series", func() error {
			_, err := s.Series(ctx, peba.Window{Domains: both, Field: peba.Created, From: day0.AddDate(0, 0, -30), To: day0.Add(24 * time.Hour)}, 24*time.Hour, peba.DimNone, nil)
			return err
		}},
		{"tops ports 7", func() error {
			_, err := s.Top(ctx, peba.Window{Domains: both, Field: peba.Received, From: day0.AddDate(0, 0, -6)}, peba.DimDstPort, 30)
			return err
		}},
		{"tpot yesterday peer types", func() error {
			_, err := s.Top(ctx, peba.Window{Domains: []peba.Domain{peba.DomainCommunity}, Field: peba.Received, From: day0.AddDate(0, 0, -1), To: day0}, peba.DimPeerType, 0)
			return err
		}},
		{"sensors yesterday", func() error {
			_, err := s.Sensors(ctx, peba.Window{Domains: []peba.Domain{peba.DomainCommunity}, Field: peba.Received, From: day0.AddDate(0, 0, -1), To: day0})
			return err
		}},
	}
	for _, c := range cases {
		for _, memo := range []bool{false, true} {
			s.memo.off.Store(!memo)
			c.fn()
			cpu, walls := timeCalls(t, 30, c.fn)
			var wall time.Duration
			for _, w := range walls {
				wall += w
			}
			h, m := s.MemoStats()
			t.Logf("%-28s memo=%-5v %6.2f ms/call wall %6.2f ms CPU  hits %v misses %v", c.name, memo,
				float64(wall.Microseconds())/1000/float64(len(walls)), float64(cpu.Microseconds())/1000, h, m)
		}
	}
}
