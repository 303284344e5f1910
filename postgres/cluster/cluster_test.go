package cluster

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/peba-go/peba/internal/pgtest"
)

// nodes returns n Runners on one fresh database, each with its own pool,
// as n peba processes would have.
func nodes(t *testing.T, n int) []*Runner {
	t.Helper()
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	var rs []*Runner
	for i := range n {
		pool, err := pgxpool.New(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		r := New(pool, Options{Node: string(rune('A' + i))})
		if err := r.Init(ctx); err != nil { // concurrent-safe; every node calls it
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	return rs
}

// Five nodes try the same job at the same moment, round after round:
// exactly one runs it per round, the others learn it is locked or not due.
func TestExactlyOneNodeRunsEachRound(t *testing.T) {
	rs := nodes(t, 5)
	ctx := context.Background()
	var mu sync.Mutex
	runs := 0
	job := Job{Name: "retention", Every: 300 * time.Millisecond, Run: func(ctx context.Context) error {
		mu.Lock()
		runs++
		mu.Unlock()
		time.Sleep(20 * time.Millisecond) // long enough for the others to arrive while it runs
		return nil
	}}
	for round := range 4 {
		results := make([]Result, len(rs))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, r := range rs {
			wg.Go(func() {
				<-start
				res, err := r.TryRun(ctx, job)
				if err != nil {
					t.Errorf("node %d: %v", i, err)
				}
				results[i] = res
			})
		}
		close(start)
		wg.Wait()
		ran := 0
		for _, res := range results {
			if res == Ran {
				ran++
			} else if res != Locked && res != NotDue {
				t.Errorf("round %d: unexpected result %v", round, res)
			}
		}
		if ran != 1 {
			t.Fatalf("round %d: %d nodes ran the job (%v), want exactly 1", round, ran, results)
		}
		time.Sleep(job.Every + 50*time.Millisecond)
	}
	if runs != 4 {
		t.Errorf("job ran %d times in 4 rounds", runs)
	}
}

// Nodes tick at their own random moments, many times per period: runs
// still start at least one period apart, and the job does run every period.
func TestUnalignedTicksRunOncePerPeriod(t *testing.T) {
	rs := nodes(t, 3)
	const every = 250 * time.Millisecond
	// The period is measured between transaction starts on the database
	// clock, which lie between a node's call of TryRun (before) and the
	// job starting (run); so the run of one round and the call that led to
	// the previous round's run must be a period apart.
	type span struct{ before, run time.Time }
	var mu sync.Mutex
	var runs []span
	ctx, cancel := context.WithTimeout(context.Background(), 5*every+every/2)
	defer cancel()
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Go(func() {
			var before time.Time
			job := Job{Name: "prune", Every: every, Run: func(ctx context.Context) error {
				mu.Lock()
				runs = append(runs, span{before, time.Now()})
				mu.Unlock()
				return nil
			}}
			for ctx.Err() == nil {
				before = time.Now()
				if _, err := r.TryRun(ctx, job); err != nil && ctx.Err() == nil {
					t.Error(err)
				}
				time.Sleep(time.Duration(rand.IntN(30)) * time.Millisecond)
			}
		})
	}
	wg.Wait()
	// 5.5 periods: at most 6 runs (at 0, 1, ... 5 periods); at least 3 even
	// on a loaded machine where each tick comes late.
	if len(runs) < 3 || len(runs) > 6 {
		t.Errorf("%d runs in 5.5 periods, want 3 to 6", len(runs))
	}
	for i := 1; i < len(runs); i++ {
		if gap := runs[i].run.Sub(runs[i-1].before); gap < every {
			t.Errorf("run %d started %v after the call that ran %d (period %v)", i, gap, i-1, every)
		}
	}
}

// A failed run leaves the job due (another node retries it at once); a
// node that dies while running releases it (here: its context ends, which
// rolls the transaction back, as a dropped session would).
func TestFailureAndAbandonLeaveTheJobDue(t *testing.T) {
	rs := nodes(t, 2)
	ctx := context.Background()
	boom := errors.New("disk full")
	fail := Job{Name: "j", Every: time.Hour, Run: func(context.Context) error { return boom }}
	if res, err := rs[0].TryRun(ctx, fail); res != Failed || !errors.Is(err, boom) {
		t.Fatalf("failing job: %v %v", res, err)
	}
	ok := Job{Name: "j", Every: time.Hour, Run: func(context.Context) error { return nil }}
	if res, err := rs[1].TryRun(ctx, ok); res != Ran || err != nil {
		t.Fatalf("after a failure the job must still be due: %v %v", res, err)
	}
	if res, _ := rs[0].TryRun(ctx, ok); res != NotDue {
		t.Fatalf("ran twice within the hour: %v", res)
	}

	running := make(chan struct{})
	dctx, die := context.WithCancel(ctx)
	hang := Job{Name: "k", Every: time.Hour, Run: func(ctx context.Context) error {
		close(running)
		<-ctx.Done()
		return ctx.Err()
	}}
	done := make(chan Result)
	go func() { res, _ := rs[0].TryRun(dctx, hang); done <- res }()
	<-running
	k := Job{Name: "k", Every: time.Hour, Run: func(context.Context) error { return nil }}
	if res, err := rs[1].TryRun(ctx, k); res != Locked || err != nil {
		t.Fatalf("while another node runs it: %v %v", res, err)
	}
	die()
	<-done
	if res, err := rs[1].TryRun(ctx, k); res != Ran || err != nil {
		t.Fatalf("after the running node died: %v %v", res, err)
	}
}
