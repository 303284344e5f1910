//go:build unix

package duckdb

import (
	"context"
	"database/sql/driver"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	duckdbdriver "github.com/duckdb/duckdb-go/v2"
)

// TestIngestStages measures, on demand, the process CPU time (DuckDB's
// threads included) and wall time per event of each stage of AppendEvents,
// by running the stages one by one as AppendEvents does, on batches shaped
// like `peba bench ingest` after decoding (docs/performance.md, "Ingest"):
//
//	PEBA_INGEST_STAGES=10000 [PEBA_INGEST_ROUNDS=20] go test -run TestIngestStages -v ./duckdb/
func TestIngestStages(t *testing.T) {
	size, _ := strconv.Atoi(os.Getenv("PEBA_INGEST_STAGES"))
	if size == 0 {
		t.Skip("set PEBA_INGEST_STAGES=batch size")
	}
	ctx := context.Background()
	s, path := openTemp(t, Options{})
	r := rand.New(rand.NewPCG(1, 2))
	if q := os.Getenv("PEBA_INGEST_SET"); q != "" {
		if _, err := s.wconn.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	type acc struct{ cpu, wall time.Duration }
	stages := []string{"rows", "begin", "dedup", "appender", "flush", "payloads", "rollups", "sensor", "srcindex", "commit", "idfilter", "recent"}
	tot := map[string]*acc{}
	for _, st := range stages {
		tot[st] = &acc{}
	}
	var w0 time.Time
	var cc0 time.Duration
	mark := func() { cc0, w0 = cpuNow(), time.Now() }
	done := func(st string) { tot[st].cpu += cpuNow() - cc0; tot[st].wall += time.Since(w0); mark() }
	total := 0
	rounds, _ := strconv.Atoi(os.Getenv("PEBA_INGEST_ROUNDS"))
	if rounds == 0 {
		rounds = 20
	}
	for round := range rounds {
		events := benchLikeEvents(r, size, round*size, time.Now().UTC().Truncate(time.Microsecond))
		mark()
		rows := make([][]driver.Value, len(events))
		ids := make([]int, len(events))
		for i := range events {
			rows[i], _ = rowValues(&events[i])
			ids[i] = i
		}
		done("rows")
		s.mu.Lock()
		if _, err := s.wconn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
			t.Fatal(err)
		}
		done("begin")
		stored, err := s.storedIDs(ctx, events, ids)
		if err != nil || len(stored) != 0 {
			t.Fatal(err, len(stored))
		}
		done("dedup")
		err = s.wconn.Raw(func(dc any) error {
			app, err := duckdbdriver.NewAppenderFromConn(dc.(driver.Conn), "", "events")
			if err != nil {
				return err
			}
			for i := range rows {
				if err := app.AppendRow(rows[i]...); err != nil {
					return err
				}
			}
			done("appender")
			return app.CloseWithCancel(ctx)
		})
		if err != nil {
			t.Fatal(err)
		}
		done("flush")
		if err := s.upsertPayloads(ctx, events); err != nil {
			t.Fatal(err)
		}
		done("payloads")
		if err := s.upsertRollupTables(ctx, events); err != nil {
			t.Fatal(err)
		}
		done("rollups")
		if err := s.upsertSensorRollup(ctx, events); err != nil {
			t.Fatal(err)
		}
		done("sensor")
		if err := s.appendSrcIndex(ctx, events); err != nil {
			t.Fatal(err)
		}
		done("srcindex")
		if _, err := s.wconn.ExecContext(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
		done("commit")
		s.ids.add(events)
		done("idfilter")
		s.rememberRecent(events)
		done("recent")
		s.mu.Unlock()
		total += len(events)
	}
	// The periodic CHECKPOINT of serve writes what the commits put in the
	// WAL into the file: part of the cost of every event.
	mark()
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	tot["checkpoint"] = &acc{}
	done("checkpoint")
	stages = append(stages, "checkpoint")
	if st, err := os.Stat(path); err == nil {
		t.Logf("database file: %.1f MiB, %.0f bytes per event", float64(st.Size())/(1<<20), float64(st.Size())/float64(total))
	}
	var sc, sw time.Duration
	for _, st := range stages {
		a := tot[st]
		sc += a.cpu
		sw += a.wall
		t.Logf("%-9s cpu %6.2f µs/event  wall %6.2f µs/event", st, float64(a.cpu.Nanoseconds())/1e3/float64(total), float64(a.wall.Nanoseconds())/1e3/float64(total))
	}
	t.Logf("%-9s cpu %6.2f µs/event  wall %6.2f µs/event (batch %d, %d events)", "TOTAL", float64(sc.Nanoseconds())/1e3/float64(total), float64(sw.Nanoseconds())/1e3/float64(total), size, total)
}

// TestIngestAppend measures, on demand, AppendEvents as the ingest
// pipeline's writer calls it: the process CPU time (every thread) and the
// wall time per event, over rounds of batches shaped like `peba bench
// ingest` (docs/performance.md):
//
//	PEBA_INGEST_APPEND=10000 [PEBA_INGEST_ROUNDS=20] go test -run TestIngestAppend -v ./duckdb/
func TestIngestAppend(t *testing.T) {
	size, _ := strconv.Atoi(os.Getenv("PEBA_INGEST_APPEND"))
	if size == 0 {
		t.Skip("set PEBA_INGEST_APPEND=batch size")
	}
	rounds, _ := strconv.Atoi(os.Getenv("PEBA_INGEST_ROUNDS"))
	if rounds == 0 {
		rounds = 20
	}
	ctx := context.Background()
	s, _ := openTemp(t, Options{})
	r := rand.New(rand.NewPCG(1, 2))
	var cpu, wall time.Duration
	for round := range rounds {
		events := benchLikeEvents(r, size, round*size, time.Now().UTC().Truncate(time.Microsecond))
		c0, w0 := cpuNow(), time.Now()
		res, err := s.AppendEvents(ctx, events)
		if err != nil {
			t.Fatal(err)
		}
		cpu, wall = cpu+cpuNow()-c0, wall+time.Since(w0)
		if len(res.Inserted) != size {
			t.Fatalf("round %d: inserted %d of %d", round, len(res.Inserted), size)
		}
	}
	n := float64(size * rounds)
	t.Logf("AppendEvents: cpu %.2f µs/event, wall %.2f µs/event (batch %d, %d events)",
		float64(cpu.Nanoseconds())/1e3/n, float64(wall.Nanoseconds())/1e3/n, size, size*rounds)
}
