package journal

import (
	"os"
	"syscall"
)

// fdatasync flushes the file's data and the metadata needed to read it
// (its size), skipping timestamps: one device flush per append.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
