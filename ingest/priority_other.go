//go:build !linux

package ingest

import "errors"

// setThreadNice is only implemented for Linux, where the nice value
// belongs to a thread; elsewhere the applier keeps the process's priority.
func setThreadNice(nice int) error {
	return errors.New("a thread's own priority is only set on Linux")
}

func threadNice() (int, error) { return 0, nil }
