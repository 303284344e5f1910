//go:build unix

package duckdb

import (
	"context"
	"database/sql/driver"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	duckdbdriver "github.com/duckdb/duckdb-go/v2"

	"github.com/peba-go/peba"
)

// benchLikeEvents returns n events shaped like `peba bench ingest` batches after
// decoding and enrichment (100 per sender batch, one module per batch).
func benchLikeEvents(r *rand.Rand, n, first int, now time.Time) []peba.Event {
	mods := []struct {
		ident, ptype, desc string
		port               int32
	}{
		{"cowrie-community-01", "SSH/console(cowrie)", "SSH Honeypot Cowrie", 22},
		{"dionaea-community-01", "Network(Dionaea)", "Network Honeyport Dionaea v0.1.0", 445},
		{"honeytrap-community-01", "Network(honeytrap)", "NetworkHoneypot Honeytrap v1.1", 80},
		{"heralding-community-01", "Passwords(heralding)", "Heralding Honeypot", 21},
		{"endlessh-community-01", "SSH/console(endlessh)", "Endlessh Honeypot", 22},
	}
	out := make([]peba.Event, n)
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	for i := range out {
		k := first + i
		m := mods[(k/100)%len(mods)]
		e := &out[i]
		e.ID = fmt.Sprintf("%016x%016x", r.Uint64(), r.Uint64())
		e.Domain = peba.DomainCommunity
		e.Submitter, e.Origin = "community-01-user", "ews"
		e.ReceivedTime = now
		e.CreateTime = base.Add(time.Duration(k/100)*time.Second + time.Duration(k%100)*time.Millisecond)
		e.PeerIdent, e.PeerType = m.ident, m.ptype
		e.SensorUUID = "6f1c2a7e-5b3d-4c8e-9a0f-0e5a4a2e55" + strconv.Itoa(k%8)
		e.Hostname, e.ExternalIP, e.InternalIP = "ews-bench", "81.2.69.142", "10.10.0.5"
		if r.IntN(10) < 3 {
			e.SrcIP = netip.AddrFrom4([4]byte{45, byte(10 + r.IntN(3)), byte(r.IntN(4)), byte(1 + r.IntN(5))})
		} else {
			e.SrcIP = netip.AddrFrom4([4]byte{byte(1 + r.IntN(222)), byte(r.IntN(256)), byte(r.IntN(256)), byte(1 + r.IntN(254))})
		}
		e.SrcPort = int32(1024 + r.IntN(64000))
		e.DstIP, e.DstPort, e.Transport = netip.MustParseAddr("81.2.69.142"), m.port, "tcp"
		e.Fields = []peba.Attr{{Key: "sessionid", Value: strconv.Itoa(k)}, {Key: "hostname", Value: "ews-bench"},
			{Key: "externalIP", Value: "81.2.69.142"}, {Key: "internalIP", Value: "10.10.0.5"}, {Key: "uuid", Value: e.SensorUUID}}
		if m.port == 21 || m.port == 22 {
			e.Username, e.Password, e.Login = "root", "pass"+strconv.Itoa(r.IntN(1000)), "Fail"
		} else {
			e.URL = fmt.Sprintf("Attack on port %d/tcp", m.port)
		}
		e.Requests = []peba.Attr{{Key: "description", Value: m.desc}}
		e.Src, e.Dst = peba.UnknownGeo, peba.UnknownGeo
	}
	return out
}

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
