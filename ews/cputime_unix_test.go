//go:build unix

package ews

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user+system, all threads, GC included) the
// process has used: on a busy machine, alerts per CPU-second is the stable
// "per core" figure where wall-clock rates are not.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
