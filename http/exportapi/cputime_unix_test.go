//go:build unix

package exportapi

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user + system) the test process has used,
// DuckDB's worker threads included.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
