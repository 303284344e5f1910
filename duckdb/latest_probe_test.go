//go:build unix

package duckdb

// Measurement aids for Latest of a cold source and the statistics of an
// open day (issue 3), on a copy of a data directory; skipped otherwise:
//
//	PEBA_LATEST_PROBE=/copy/peba.duckdb go test ./duckdb/ -run 'TestLatestProbe|TestColumnProbe|TestStatsProbe' -v
//
// The query variants below are the ways of reading a few whole rows that
// were compared (docs/performance.md); fetchQ is the shape fetchEvents
// uses, unionQ with list_contains the one latestHoursRows uses.

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/peba-go/peba"
)

func fetchQ(cands []latestCand, cols string) string {
	var p []string
	for _, c := range cands {
		ts := c.t.Format("2006-01-02 15:04:05.999999")
		p = append(p, "SELECT "+cols+" FROM events WHERE create_time = TIMESTAMP '"+ts+"' AND id = '"+c.id+"'")
	}
	return strings.Join(p, " UNION ALL ")
}

func tsLit(t time.Time) string {
	return "TIMESTAMP '" + t.UTC().Format("2006-01-02 15:04:05.999999") + "'"
}

func fetchIn(cands []latestCand, cols string) string {
	var ts, ids []string
	for _, c := range cands {
		ts = append(ts, tsLit(c.t))
		ids = append(ids, "'"+c.id+"'")
	}
	return "SELECT " + cols + " FROM events WHERE create_time IN (" + strings.Join(ts, ",") + ") AND list_contains([" + strings.Join(ids, ",") + "], id)"
}

func fetchOr(cands []latestCand, cols string) string {
	var p []string
	for _, c := range cands {
		p = append(p, "(create_time = "+tsLit(c.t)+" AND id = '"+c.id+"')")
	}
	return "SELECT " + cols + " FROM events WHERE " + strings.Join(p, " OR ")
}

func unionQ(info srcInfo, src, cols, cond string) string {
	var p []string
	for _, r := range hourRuns(info.hours[:5]) {
		from, to := time.UnixMicro(int64(r[1])*hourUS), time.UnixMicro(int64(r[0]+1)*hourUS)
		p = append(p, "SELECT "+cols+" FROM events WHERE create_time >= "+tsLit(from)+" AND create_time < "+tsLit(to)+" AND "+cond)
	}
	return "SELECT * FROM (" + strings.Join(p, " UNION ALL ") + ") ORDER BY create_time DESC, id LIMIT 5"
}

// TestLatestProbe times Latest of a cold source on a copy of a data
// directory (PEBA_LATEST_PROBE=path/to/peba.duckdb); a measurement aid,
// skipped otherwise.
func TestLatestProbe(t *testing.T) {
	s := openProbe(t, "PEBA_LATEST_PROBE")
	ctx := context.Background()
	rank := uint64(20000)
	src := netip.AddrFrom4([4]byte{byte(1 + rank*2654435761%223), byte(rank >> 16), byte(rank >> 8), byte(rank)})
	both := []peba.Domain{peba.DomainCommunity, peba.DomainPrivate}
	w := peba.Window{Domains: both, Field: peba.Created}
	time1 := func(name string, n int, fn func() error) {
		cpu, walls := timeCalls(t, n, fn)
		t.Logf("%-30s cpu %6.2f ms  walls %v", name, float64(cpu)/1e6, walls[:min(5, len(walls))])
	}
	var evs []peba.Event
	var err error
	time1("Latest", 10, func() error { evs, err = s.Latest(ctx, w, src, 5); return err })
	for _, e := range evs {
		t.Logf("  %s %s", e.CreateTime, e.ID)
	}
	var info srcInfo
	time1("srcLookup", 10, func() error { info, _, err = s.srcLookup(ctx, both, src); return err })
	t.Logf("info %+v", info)
	var cands []latestCand
	time1("latestHours", 10, func() error {
		return s.readTx(ctx, func(ctx context.Context) error {
			extra, srcArgs := []string{"list_contains(?::VARCHAR[], src_ip)"}, []any{[]string{src.String()}}
			part := func(sw peba.Window) (wherePart, bool) {
				where, args, none := windowWhere(sw, "create_time", extra...)
				return wherePart{where, append(append([]any{}, srcArgs...), args...)}, !none
			}
			ww := w
			ww.From = info.firstCreated
			ww.To = info.lastCreated.Add(time.Microsecond)
			cands, _, err = s.latestHours(ctx, ww, part, info, 5, nil)
			return err
		})
	})
	time1("fetchEvents", 10, func() error { _, err = s.fetchEvents(ctx, peba.Created, cands); return err })
	if len(cands) == 0 {
		t.Skipf("no events of source %s in this database: nothing to compare the rowid alternatives on", src)
	}
	// alternatives: rowids within one transaction
	q := func(ctx context.Context, query string, args ...any) (int, error) {
		rows, err := s.q(ctx).QueryContext(ctx, query, args...)
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			n++
		}
		return n, rows.Err()
	}
	var rowids []int64
	err = s.readTx(ctx, func(ctx context.Context) error {
		var ids []string
		for _, c := range cands {
			ids = append(ids, c.id)
		}
		rows, err := s.q(ctx).QueryContext(ctx, "SELECT rowid FROM events WHERE create_time BETWEEN ? AND ? AND list_contains(?::VARCHAR[], id)", cands[len(cands)-1].t, cands[0].t, ids)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r int64
			rows.Scan(&r)
			rowids = append(rowids, r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rowids %v", rowids)
	var lits []string
	for _, r := range rowids {
		lits = append(lits, fmt.Sprint(r))
	}
	for _, v := range []struct{ name, q string }{
		{"rowid = ANY literal list", "SELECT " + eventColumns + " FROM events WHERE rowid = ANY([" + strings.Join(lits, ",") + "])"},
		{"fetch exact all cols", fetchQ(cands, eventColumns)},
		{"fetch IN times list ids", fetchIn(cands, eventColumns)},
		{"fetch OR pairs", fetchOr(cands, eventColumns)},
		{"union pushdown all", unionQ(info, src.String(), eventColumns, "src_ip = '"+src.String()+"'")},
		{"union pushdown narrow", unionQ(info, src.String(), "create_time, id", "src_ip = '"+src.String()+"'")},
		{"union list_contains all", unionQ(info, src.String(), eventColumns, "list_contains(['"+src.String()+"'], src_ip)")},
		{"fetch exact id only", fetchQ(cands, "id")},
		{"fetch exact 10 cols", fetchQ(cands, "id, community, submitter, origin, received_time, create_time, peer_ident, peer_type, sensor_uuid, hostname")},
		{"fetch exact big cols", fetchQ(cands, "id, raw_http, payload_md5, additional_data, fields, requests")},
		{"fetch one exact all", fetchQ(cands[:1], eventColumns)},
	} {
		time1(v.name, 10, func() error {
			return s.readTx(ctx, func(ctx context.Context) error {
				n, err := q(ctx, v.q)
				if err == nil && n == 0 {
					err = fmt.Errorf("no rows")
				}
				return err
			})
		})
	}
}

// TestColumnProbe: the cost of fetching each column of 5 cold rows.
func TestColumnProbe(t *testing.T) {
	s := openProbe(t, "PEBA_LATEST_PROBE")
	ctx := context.Background()
	rank := uint64(20000)
	src := netip.AddrFrom4([4]byte{byte(1 + rank*2654435761%223), byte(rank >> 16), byte(rank >> 8), byte(rank)})
	both := []peba.Domain{peba.DomainCommunity, peba.DomainPrivate}
	evs, err := s.Latest(ctx, peba.Window{Domains: both, Field: peba.Created}, src, 5)
	if err != nil {
		t.Fatal(err)
	}
	var cands []latestCand
	for _, e := range evs {
		cands = append(cands, latestCand{e.CreateTime, e.ID})
	}
	run := func(q string) time.Duration {
		best := time.Hour
		for range 7 {
			t0 := time.Now()
			r, err := s.db.QueryContext(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for r.Next() {
			}
			r.Close()
			best = min(best, time.Since(t0))
		}
		return best
	}
	base := run(fetchQ(cands, "id"))
	t.Logf("id only %v", base)
	for _, c := range strings.Split(eventColumns, ",") {
		c = strings.TrimSpace(c)
		if c == "id" {
			continue
		}
		t.Logf("%-18s +%v", c, run(fetchQ(cands, "id, "+c))-base)
	}
	r, err := s.db.QueryContext(ctx, "SELECT column_name, compression, count(*) FROM pragma_storage_info('events') WHERE row_group_id = 70 AND segment_type <> 'VALIDITY' GROUP BY ALL ORDER BY ALL")
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var a, b string
		var n int
		r.Scan(&a, &b, &n)
		t.Logf("  %s %s %d", a, b, n)
	}
	r.Close()
}

// TestStatsProbe: getStats' two calls (today) and LatLon src.
func TestStatsProbe(t *testing.T) {
	s := openProbe(t, "PEBA_LATEST_PROBE")
	ctx := context.Background()
	now := time.Now().UTC()
	day0 := now.Truncate(24 * time.Hour)
	both := []peba.Domain{peba.DomainCommunity, peba.DomainPrivate}
	today := peba.Window{Domains: both, Field: peba.Received, From: day0, To: day0.Add(24 * time.Hour)}
	cases := []struct {
		name string
		fn   func() error
	}{
		{"Top peer type today", func() error { _, err := s.Top(ctx, today, peba.DimPeerType, 0); return err }},
		{"Sensors today", func() error { _, err := s.Sensors(ctx, today); return err }},
		{"summaries today", func() error {
			return s.readTx(ctx, func(ctx context.Context) error {
				_, err := s.readSensorSummaries(ctx, day0, day0.Add(24*time.Hour), "")
				return err
			})
		}},
		{"latlon src", func() error {
			_, err := s.Top(ctx, peba.Window{Domains: both, Field: peba.Created, From: now.Add(-24 * time.Hour), To: now}, peba.DimSrcLocation, 10)
			return err
		}},
	}
	s.readTx(ctx, func(ctx context.Context) error {
		sums, err := s.readSensorSummaries(ctx, day0, day0.Add(24*time.Hour), "")
		for k, v := range sums {
			t.Logf("summary %v: events %d total %d keys %d groups %d", k, v.events, v.total, v.keys, len(v.groups))
		}
		return err
	})
	for _, c := range cases {
		c.fn()
		cpu, walls := timeCalls(t, 100, c.fn)
		slices.Sort(walls)
		t.Logf("%-22s cpu %6.2f ms  wall p50 %v min %v", c.name, float64(cpu)/1e6, walls[50], walls[0])
	}
}
