package ingest_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/ingest"
	"github.com/prometheus/client_golang/prometheus"
)

// threadsAtNice lists the threads of this process whose nice value is
// nice, as the kernel reports them (/proc/self/task/*/stat, field 19).
func threadsAtNice(t *testing.T, nice int) []string {
	t.Helper()
	stats, err := filepath.Glob("/proc/self/task/*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread has ended
		}
		// Fields after the command name, which is in parentheses and may
		// hold spaces: state is field 3, nice field 19.
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if n, err := strconv.Atoi(fields[19-3]); err == nil && n == nice {
			out = append(out, filepath.Base(filepath.Dir(f)))
		}
	}
	return out
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s missing", name)
	return 0
}

// The applier's thread, and it alone, runs at WriterNice, and the thread
// ends with the applier, so that no other goroutine ever runs at that
// priority.
func TestWriterThreadRunsAtWriterNice(t *testing.T) {
	const nice = -7
	if len(threadsAtNice(t, nice)) != 0 {
		t.Fatalf("a thread already runs at nice %d", nice)
	}
	// Where raising a thread's priority is not allowed (no CAP_SYS_NICE,
	// RLIMIT_NICE too low), the applier logs and runs on; nothing to see.
	probe := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		probe <- syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), -1)
	}()
	if err := <-probe; err != nil {
		t.Skipf("this process may not raise a thread's priority: %v", err)
	}

	reg := prometheus.NewRegistry()
	p := ingest.New(openStore(t), nil, nil, ingest.Options{Journal: openJournal(t, t.TempDir()), WriterNice: nice, Registerer: reg})
	if _, err := p.Submit(context.Background(), peba.DomainCommunity, events("n", 10)); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := gauge(t, reg, "peba_ingest_writer_nice"); got != nice {
		t.Errorf("peba_ingest_writer_nice = %v, want %d", got, nice)
	}
	if threads := threadsAtNice(t, nice); len(threads) != 1 {
		t.Fatalf("threads at nice %d: %v, want the applier's alone", nice, threads)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Go ends a thread whose goroutine exits locked to it, but for the
	// process's main thread, which it parks for good instead: either way
	// no other goroutine runs on it.
	main := strconv.Itoa(os.Getpid())
	deadline := time.Now().Add(5 * time.Second)
	for th := threadsAtNice(t, nice); len(th) != 0 && !(len(th) == 1 && th[0] == main); th = threadsAtNice(t, nice) {
		if time.Now().After(deadline) {
			t.Fatalf("thread %v still runs at nice %d after Close: other goroutines may run on it", th, nice)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// With WriterNice 0 the applier keeps the process's priority.
func TestWriterNiceZeroLeavesPriority(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := ingest.New(openStore(t), nil, nil, ingest.Options{Journal: openJournal(t, t.TempDir()), Registerer: reg})
	defer p.Close(context.Background())
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := gauge(t, reg, "peba_ingest_writer_nice"); got != 0 {
		t.Errorf("peba_ingest_writer_nice = %v, want 0", got)
	}
	// (The probe of the test above may leave a thread at nice -1.)
	for _, nice := range []int{-20, -10, -5} {
		if threads := threadsAtNice(t, nice); len(threads) != 0 {
			t.Errorf("threads %v run at nice %d", threads, nice)
		}
	}
}
