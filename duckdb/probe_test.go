//go:build unix

package duckdb

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// Helpers of the measurement aids (TestIngestStages, the latest, stats and
// memo probes): on demand only, never part of the default test run.

// cpuNow returns the CPU time the process has used (DuckDB's threads
// included).
func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// openProbe opens the database a probe measures: a copy of a data
// directory's peba.duckdb, named by the environment variable env. Without
// it the test is skipped.
func openProbe(t *testing.T, env string) *Store {
	t.Helper()
	path := os.Getenv(env)
	if path == "" {
		t.Skip(env + " not set")
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// timeCalls calls fn n times and returns the process CPU time per call and
// the wall time of each call, in call order (the first ones are the cold
// ones).
func timeCalls(t *testing.T, n int, fn func() error) (cpu time.Duration, walls []time.Duration) {
	t.Helper()
	c0 := cpuNow()
	for range n {
		t0 := time.Now()
		if err := fn(); err != nil {
			t.Fatal(err)
		}
		walls = append(walls, time.Since(t0))
	}
	return (cpuNow() - c0) / time.Duration(n), walls
}
