package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/peba-go/peba"
)

// benchEvents returns n new events received around now (today's
// partition), with the variety of a real feed: several peer types,
// countries, ports, URLs and some payloads.
func benchEvents(r *rand.Rand, n, first int) []peba.Event {
	evs := randomEvents(r, n, first)
	now := time.Now().UTC()
	for i := range evs {
		e := &evs[i]
		e.ID = fmt.Sprintf("bench-%012d", first+i)
		e.ReceivedTime = now.Add(time.Duration(i) * time.Microsecond)
		e.CreateTime = e.ReceivedTime.Add(-time.Second)
		if i%10 == 0 {
			e.PayloadMD5 = fmt.Sprintf("%032x", r.IntN(500))
		}
	}
	return evs
}

// BenchmarkAppendEvents measures AppendEvents throughput (events/s) with
// 1000- and 10000-event batches, from one writer and from two Stores
// (nodes) writing at once. Each batch is new events (no duplicates).
//
//	PEBA_TEST_POSTGRES_DSN=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable \
//	  go test ./postgres -run '^$' -bench AppendEvents -benchtime 20x
func BenchmarkAppendEvents(b *testing.B) {
	for _, c := range []struct{ batch, writers int }{{1000, 1}, {10000, 1}, {1000, 2}} {
		b.Run(fmt.Sprintf("batch=%d/writers=%d", c.batch, c.writers), func(b *testing.B) {
			s, dsn := openTemp(b)
			stores := []*Store{s}
			for len(stores) < c.writers {
				o, err := Open(context.Background(), dsn, Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer o.Close()
				stores = append(stores, o)
			}
			r := rand.New(rand.NewPCG(5, 6))
			// Batches are built before the timer: they are the ingest
			// pipeline's work, not the store's.
			batches := make([][]peba.Event, b.N*c.writers)
			for i := range batches {
				batches[i] = benchEvents(r, c.batch, i*c.batch)
			}
			// Warm up: the day's partition and the statement caches.
			mustAppend(b, s, benchEvents(r, 10, -1000)...)
			b.ResetTimer()
			var wg sync.WaitGroup
			for w, st := range stores {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < len(batches); i += c.writers {
						if _, err := st.AppendEvents(context.Background(), batches[i]); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(len(batches)*c.batch)/b.Elapsed().Seconds(), "events/s")
			// Disk per stored event: events with their indexes, ids and
			// rollups (not live_feed, which is pruned).
			b.StopTimer()
			size := queryInt(b, s, `SELECT sum(pg_total_relation_size(p.relid))::bigint FROM unnest(ARRAY['events', 'event_ids',
				'rollup_recv_minute', 'rollup_recv_hour', 'rollup_recv_day', 'rollup_created_hour', 'rollup_created_day',
				'rollup_sensor_day']::regclass[]) t, pg_partition_tree(t) p`)
			b.ReportMetric(float64(size)/float64(queryInt(b, s, "SELECT count(*) FROM events")), "bytes/event")
		})
	}
}
