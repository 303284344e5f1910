package duckdb

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	duckdbdriver "github.com/duckdb/duckdb-go/v2"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/storetest"
)

func openTemp(t testing.TB, opt Options) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "peba.duckdb")
	s, err := Open(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t testing.TB) peba.Store {
		s, _ := openTemp(t, Options{Threads: 2})
		return s
	})
}

func sampleEvent(i int, md5 string) peba.Event {
	t := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond)
	return peba.Event{
		ID: fmt.Sprintf("%032x", i), Domain: peba.DomainCommunity, Origin: "ews",
		ReceivedTime: t, CreateTime: t.Add(-time.Second),
		PeerIdent: "cowrie-01", PeerType: "SSH/console(cowrie)", Hostname: "h",
		SrcIP: netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), SrcPort: int32(1024 + i%60000),
		DstIP: netip.MustParseAddr("172.29.0.2"), DstPort: 22, Transport: "tcp",
		URL: "Attack on port 22/tcp", Username: "root", Password: "123456", PayloadMD5: md5,
		Fields: []peba.Attr{{Key: "input", Value: "uname -a"}},
		Src:    peba.Geo{Country: "CN", CountryName: "China", ASN: "AS4134 Chinanet", Lat: 34.77, Lon: 113.72},
		Dst:    peba.UnknownGeo,
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t, Options{})
	if _, err := s.AppendEvents(ctx, []peba.Event{sampleEvent(1, "m"), sampleEvent(2, "")}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, &peba.User{Name: "u", TokenHash: "h"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendEvents(ctx, []peba.Event{sampleEvent(3, "")}); peba.ErrorCode(err) != peba.EUNAVAILABLE {
		t.Errorf("append after Close: %v, want code %q", err, peba.EUNAVAILABLE)
	}

	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	evs, total, err := s2.FindEvents(ctx, peba.EventFilter{})
	if err != nil || total != 2 || len(evs) != 2 {
		t.Fatalf("after reopen: %d events (total %d), %v; want 2", len(evs), total, err)
	}
	if _, err := s2.FindUser(ctx, "u"); err != nil {
		t.Errorf("user lost on reopen: %v", err)
	}
	if p, err := s2.FindPayload(ctx, "m"); err != nil || p.MD5Count != 1 {
		t.Errorf("payload after reopen = %+v, %v", p, err)
	}
	// Still de-duplicates against data written before the reopen.
	res, err := s2.AppendEvents(ctx, []peba.Event{sampleEvent(1, "m")})
	if err != nil || len(res.Inserted) != 0 || res.Duplicates != 1 {
		t.Errorf("re-append after reopen = %+v, %v; want 1 duplicate", res, err)
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	s, path := openTemp(t, Options{})
	if _, err := s.wconn.ExecContext(context.Background(),
		`INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future.sql')`); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{})
	if err == nil || !strings.Contains(err.Error(), "9999") || !strings.Contains(err.Error(), "newer version") {
		t.Fatalf("Open of a newer schema: err = %v, want a clear 'newer version' error naming 9999", err)
	}
}

func TestMigrationsRecorded(t *testing.T) {
	s, _ := openTemp(t, Options{})
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.db.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || len(ms) == 0 {
		t.Errorf("%d migrations recorded, %d embedded", n, len(ms))
	}
}

func TestOpenRejectsBadOptions(t *testing.T) {
	dir := t.TempDir()
	for _, opt := range []Options{
		{MemoryLimit: "1GB&threads=1"},
		{MemoryLimit: "lots"},
		{CheckpointThreshold: "1GB;DROP"},
		{Threads: -1},
	} {
		if s, err := Open(filepath.Join(dir, "x.duckdb"), opt); err == nil {
			s.Close()
			t.Errorf("Open(%+v) succeeded", opt)
		}
	}
}

// TestAppenderRollsBackWithTx pins the driver behaviour AppendEvents relies
// on: rows written by a DuckDB Appender (and the payload query appender)
// inside an explicit transaction on the same connection are discarded by
// ROLLBACK.
func TestAppenderRollsBackWithTx(t *testing.T) {
	s, _ := openTemp(t, Options{})
	ctx := context.Background()
	row, err := rowValues(ptr(sampleEvent(1, "")))
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err = s.inTx(ctx, func() error {
		err := s.wconn.Raw(func(dc any) error {
			app, err := duckdbdriver.NewAppenderFromConn(dc.(driver.Conn), "", "events")
			if err != nil {
				return err
			}
			if err := app.AppendRow(row...); err != nil {
				return err
			}
			return app.Close()
		})
		if err != nil {
			return err
		}
		if err := s.upsertPayloads(ctx, []peba.Event{sampleEvent(2, "m")}); err != nil {
			return err
		}
		// Visible inside the transaction ...
		var n int
		if err := s.wconn.QueryRowContext(ctx, "SELECT count(*) FROM events").Scan(&n); err != nil || n != 1 {
			t.Errorf("inside tx: %d rows, %v; want 1", n, err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("inTx = %v, want boom", err)
	}
	// ... and gone after the rollback.
	var n int
	if err := s.db.QueryRow("SELECT count(*) FROM events").Scan(&n); err != nil || n != 0 {
		t.Errorf("after rollback: %d rows, %v; want 0", n, err)
	}
	if _, err := s.FindPayload(ctx, "m"); peba.ErrorCode(err) != peba.ENOTFOUND {
		t.Errorf("payload record survived the rollback: %v", err)
	}
}

// TestAppendFailsMidTransaction makes the payload upsert fail after the
// events were appended: the events must be rolled back too.
func TestAppendFailsMidTransaction(t *testing.T) {
	s, _ := openTemp(t, Options{})
	ctx := context.Background()
	if _, err := s.wconn.ExecContext(ctx, "DROP TABLE payloads"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendEvents(ctx, []peba.Event{sampleEvent(1, ""), sampleEvent(2, "m")}); err == nil {
		t.Fatal("AppendEvents succeeded without a payloads table")
	}
	var n int
	if err := s.db.QueryRow("SELECT count(*) FROM events").Scan(&n); err != nil || n != 0 {
		t.Errorf("after failed append: %d events, %v; want 0", n, err)
	}
	// The writer connection is usable again.
	if res, err := s.AppendEvents(ctx, []peba.Event{sampleEvent(1, "")}); err != nil || len(res.Inserted) != 1 {
		t.Errorf("append after failure = %+v, %v", res, err)
	}
}

func ptr[T any](v T) *T { return &v }

// TestDedupRelyOnCreateTime checks the index-free de-duplication, which
// looks stored IDs up only within the batch's create-time range: a batch
// spanning a year still finds its duplicate, and sub-microsecond create times
// (truncated when stored) do not move the duplicate out of the range.
func TestDedupRelyOnCreateTime(t *testing.T) {
	s, _ := openTemp(t, Options{})
	ctx := context.Background()
	a := sampleEvent(1, "")
	if _, err := s.AppendEvents(ctx, []peba.Event{a}); err != nil {
		t.Fatal(err)
	}
	// Same create time, batch spanning a wide range: found.
	far := sampleEvent(2, "")
	far.CreateTime = a.CreateTime.AddDate(1, 0, 0)
	res, err := s.AppendEvents(ctx, []peba.Event{far, a})
	if err != nil || res.Duplicates != 1 || len(res.Inserted) != 1 {
		t.Errorf("append = %+v, %v; want a found as duplicate", res, err)
	}
	// Sub-microsecond create time: stored truncated, still found.
	b := sampleEvent(3, "")
	b.CreateTime = b.CreateTime.Add(999 * time.Nanosecond)
	for range 2 {
		if _, err := s.AppendEvents(ctx, []peba.Event{b}); err != nil {
			t.Fatal(err)
		}
	}
	if _, total, _ := s.FindEvents(ctx, peba.EventFilter{ID: b.ID}); total != 1 {
		t.Errorf("event with nanosecond create time stored %d times, want 1", total)
	}
}

func vmHWM() string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:"))
		}
	}
	return "?"
}

// BenchmarkAppendCommit measures the commit latency of 100-event appends
// (the group-commit size upstream) over PEBA_BENCH_EVENTS events (default
// 1,000,000), one sub-benchmark per checkpoint threshold. Each event has a
// payload md5 from a small set, so the payload upsert is exercised. Run:
//
//	go test ./duckdb -run '^$' -bench AppendCommit -benchtime 1x
func BenchmarkAppendCommit(b *testing.B) {
	total := 1_000_000
	if v := os.Getenv("PEBA_BENCH_EVENTS"); v != "" {
		fmt.Sscan(v, &total)
	}
	thresholds := []string{"16MB", DefaultCheckpointThreshold, "1GB"}
	if v := os.Getenv("PEBA_BENCH_THRESHOLDS"); v != "" {
		thresholds = strings.Split(v, ",")
	}
	// PEBA_BENCH_CHECKPOINT_EVERY=n calls Store.Checkpoint after every n
	// appends, like a service that checkpoints when ingest pauses.
	every := 0
	if v := os.Getenv("PEBA_BENCH_CHECKPOINT_EVERY"); v != "" {
		fmt.Sscan(v, &every)
	}
	const batch = 100
	for _, th := range thresholds {
		b.Run("checkpoint_threshold="+th, func(b *testing.B) {
			for range b.N {
				s, path := openTemp(b, Options{CheckpointThreshold: th})
				ctx := context.Background()
				lat := make([]time.Duration, 0, total/batch)
				var cps []time.Duration // explicit checkpoints, as the service would issue them
				evs := make([]peba.Event, batch)
				start := time.Now()
				for n := 0; n < total; n += batch {
					for i := range evs {
						evs[i] = sampleEvent(n+i, fmt.Sprintf("%032x", (n+i)%500))
					}
					t0 := time.Now()
					res, err := s.AppendEvents(ctx, evs)
					if err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(t0))
					if len(res.Inserted) != batch {
						b.Fatalf("inserted %d", len(res.Inserted))
					}
					if every > 0 && (n/batch+1)%every == 0 {
						t0 := time.Now()
						if err := s.Checkpoint(ctx); err != nil {
							b.Fatal(err)
						}
						cps = append(cps, time.Since(t0))
					}
				}
				elapsed := time.Since(start)
				slices.Sort(lat)
				q := func(p float64) float64 {
					return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
				}
				b.ReportMetric(q(0.5), "p50-ms")
				b.ReportMetric(q(0.99), "p99-ms")
				b.ReportMetric(q(1), "max-ms")
				b.ReportMetric(float64(total)/elapsed.Seconds(), "events/s")
				if len(cps) > 0 {
					slices.Sort(cps)
					b.Logf("%d explicit checkpoints: p50 %v, max %v", len(cps), cps[len(cps)/2].Round(time.Millisecond), cps[len(cps)-1].Round(time.Millisecond))
				}
				t0 := time.Now()
				if err := s.Checkpoint(ctx); err != nil {
					b.Fatal(err)
				}
				cp := time.Since(t0)
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				st, _ := os.Stat(path)
				b.Logf("threshold %s: %d events in %v, final checkpoint %v, file %d MiB, VmHWM %s, Go heap sys %d MiB",
					th, total, elapsed.Round(time.Millisecond), cp.Round(time.Millisecond), st.Size()>>20, vmHWM(), ms.HeapSys>>20)
			}
		})
	}
}

// BenchmarkExportEvents measures a full keyset-paged export of
// PEBA_BENCH_EVENTS events (default 1,000,000), appended in 10k batches.
func BenchmarkExportEvents(b *testing.B) {
	total := 1_000_000
	if v := os.Getenv("PEBA_BENCH_EVENTS"); v != "" {
		fmt.Sscan(v, &total)
	}
	s, _ := openTemp(b, Options{})
	ctx := context.Background()
	evs := make([]peba.Event, 10_000)
	for n := 0; n < total; n += len(evs) {
		for i := range evs {
			evs[i] = sampleEvent(n+i, "")
		}
		if _, err := s.AppendEvents(ctx, evs); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Checkpoint(ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		n := 0
		start := time.Now()
		if err := s.ExportEvents(ctx, func(*peba.Event) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		if n != total {
			b.Fatalf("exported %d, want %d", n, total)
		}
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
	}
	b.Logf("VmHWM %s", vmHWM())
}
