package duckdb

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peba-go/peba"
)

// TestSrcIndexMergeUnderMemoryLimit merges a source index of many keys
// under a memory limit scaled down with the key ranges: 128 MB and ranges
// of 200,000 rows in the server, 16 MB and 20,000 here. The merge of
// session 10 (16 fixed key ranges, and a join of per-key bounds and hours)
// ran out of memory in the server at 9.6M keys, which failed every append
// after it; here it fails the same way. The merged index must equal the
// tail combined per key and domain, sorted by key.
func TestSrcIndexMergeUnderMemoryLimit(t *testing.T) {
	defer func(n int64) { srcMergeChunkRows = n }(srcMergeChunkRows)
	srcMergeChunkRows = 20_000
	s, _ := openTemp(t, Options{})
	ctx := context.Background()
	exec := func(q string) {
		t.Helper()
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	// 300,000 tail rows: 250,000 keys spread over the address space; a
	// cluster of 20,000 rows on 1,000 keys of one /16 (a scanner network),
	// 20 hours each; 30,000 rows of other addresses (one key, srcKeyOther)
	// over 30 hours. Both domains.
	exec(`INSERT INTO src_index_tail
		SELECT (i * 2654435761) % 4294967296, i % 3 = 0,
		       TIMESTAMP '2026-11-01' + to_seconds(i % 5000), TIMESTAMP '2026-11-01' + to_seconds(i % 5000 + 7),
		       TIMESTAMP '2026-11-02' + to_seconds(i % 777), 494208 + i % 2
		FROM range(1000000) r(i)`)
	exec(`INSERT INTO src_index_tail
		SELECT 3232235520 + i % 1000, i % 2 = 0,
		       TIMESTAMP '2026-11-01' + to_seconds(i), TIMESTAMP '2026-11-01' + to_seconds(i + 1),
		       TIMESTAMP '2026-11-02' + to_seconds(i), 494200 + (i // 1000) % 20
		FROM range(20000) r(i)`)
	exec(`INSERT INTO src_index_tail
		SELECT 4294967296, i % 2 = 0,
		       TIMESTAMP '2026-11-01' + to_seconds(i), TIMESTAMP '2026-11-01' + to_seconds(i + 1),
		       TIMESTAMP '2026-11-02' + to_seconds(i), 494180 + i % 30
		FROM range(30000) r(i)`)
	// What the merge must give, computed from the tail alone.
	exec(`CREATE TABLE want AS
		SELECT src, community, min(first_created) AS first_created, max(last_created) AS last_created,
		       max(last_received) AS last_received,
		       list_slice(list_sort(list(DISTINCT hour), 'DESC'), 1, 16) AS hours, count(DISTINCT hour) <= 16 AS all_hours
		FROM src_index_tail GROUP BY src, community`)

	schema := func() string {
		t.Helper()
		var cols string
		err := s.db.QueryRowContext(ctx, `SELECT string_agg(column_name || ' ' || data_type || ' ' || is_nullable, ', ' ORDER BY column_index)
			FROM duckdb_columns() WHERE table_name = 'src_index'`).Scan(&cols)
		if err != nil {
			t.Fatal(err)
		}
		return cols
	}
	before := schema()

	// Readers go on during the merge: one in a transaction begun before it
	// sees the index as it was, before and after the merge commits; others
	// see the old or the merged index, never an error.
	cluster := netip.MustParseAddr("192.168.0.0") // 20 hours, both domains
	both := []peba.Domain{peba.DomainCommunity, peba.DomainPrivate}
	var old srcInfo
	var oldOK bool
	snapshot := make(chan struct{})
	merged := make(chan struct{})
	snapErr := make(chan error, 1)
	go func() {
		snapErr <- s.readTx(ctx, func(ctx context.Context) error {
			var err error
			if old, oldOK, err = s.srcLookup(ctx, both, cluster); err != nil {
				close(snapshot)
				return err
			}
			close(snapshot)
			<-merged
			again, ok, err := s.srcLookup(ctx, both, cluster)
			if err != nil || ok != oldOK || !reflect.DeepEqual(again, old) {
				return fmt.Errorf("in a snapshot from before the merge: %+v, %v, %v; before the merge %+v, %v", again, ok, err, old, oldOK)
			}
			return nil
		})
	}()
	<-snapshot
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var lookups atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			lookups.Add(1)
			if _, ok, err := s.srcLookup(ctx, both, cluster); err != nil || !ok {
				t.Errorf("lookup during the merge: %v, %v", ok, err)
			}
		}
	}()

	exec("SET memory_limit = '16MB'")
	s.mu.Lock()
	err := s.inTx(ctx, func() error {
		if err := s.countSrcIndex(ctx); err != nil {
			return err
		}
		return s.mergeSrcIndex(ctx)
	})
	s.mu.Unlock()
	close(stop)
	wg.Wait()
	exec("SET memory_limit = '" + DefaultMemoryLimit + "'")
	if err != nil {
		t.Fatalf("merge under a 16 MB limit: %v", err)
	}
	close(merged)
	if err := <-snapErr; err != nil {
		t.Error(err)
	}
	if !oldOK || len(old.hours) != srcHours || old.allHours {
		t.Errorf("before the merge: %+v, %v; want the newest %d of 20 hours", old, oldOK, srcHours)
	}
	if now, ok, err := s.srcLookup(ctx, both, cluster); err != nil || !ok || !reflect.DeepEqual(now, old) {
		t.Errorf("after the merge: %+v, %v, %v; before %+v", now, ok, err, old)
	}
	t.Logf("%d lookups during the merge", lookups.Load())

	if after := schema(); after != before {
		t.Errorf("src_index after the merge: %s; before: %s", after, before)
	}
	var want, base, tail, differ, unsorted int64
	err = s.db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM want), (SELECT count(*) FROM src_index),
		(SELECT count(*) FROM src_index_tail),
		(SELECT count(*) FROM ((SELECT * FROM want EXCEPT ALL SELECT * FROM src_index) UNION ALL
		                       (SELECT * FROM src_index EXCEPT ALL SELECT * FROM want))),
		(SELECT count(*) FROM (SELECT src < lag(src) OVER (ORDER BY rowid) AS down FROM src_index) WHERE down)`).
		Scan(&want, &base, &tail, &differ, &unsorted)
	if err != nil {
		t.Fatal(err)
	}
	if want < 1_000_000 || base != want || tail != 0 || differ != 0 || unsorted != 0 {
		t.Errorf("after the merge: %d rows in src_index (want %d), %d in the tail (want 0), %d differ from the combined tail, %d out of key order",
			base, want, tail, differ, unsorted)
	}
}
