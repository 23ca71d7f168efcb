//go:build unix

package sqlite

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockFile creates the database file if it does not exist, readable by its owner only (it
// holds webhook secrets and captured requests), and takes an exclusive lock on it for the
// life of the process. The lock is what keeps a second Hookrelay off the same file: it would
// free every lease at start-up (they are in memory here) and send them a second time.
//
// The lock is flock(2), which does not interact with the POSIX locks SQLite takes on the same
// file, and the descriptor stays open until Close, after SQLite's own: closing another
// descriptor of the file earlier would drop SQLite's locks.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("database %s is in use by another Hookrelay process (a SQLite file serves one process; use PostgreSQL for replicas)", path)
		}
		return nil, fmt.Errorf("lock sqlite %s: %w", path, err)
	}
	return f, nil
}
