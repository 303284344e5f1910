package ingest

import "syscall"

// setThreadNice sets the nice value of the calling OS thread. On Linux the
// nice value belongs to the thread, and setpriority(PRIO_PROCESS, tid)
// changes that thread alone (setpriority(2), NOTES). Lowering it below the
// current value needs CAP_SYS_NICE or an RLIMIT_NICE that allows it.
func setThreadNice(nice int) error {
	return syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), nice)
}

// threadNice returns the nice value of the calling OS thread.
func threadNice() (int, error) {
	// The raw system call returns 20 - nice, so that it is never negative.
	prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
	if err != nil {
		return 0, err
	}
	return 20 - prio, nil
}
