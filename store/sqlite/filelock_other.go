//go:build !unix

package sqlite

import (
	"fmt"
	"os"
)

// lockFile creates the database file readable by its owner only; without flock(2) a second
// process on the same file is not detected here.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return f, nil
}
