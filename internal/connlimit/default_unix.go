//go:build unix

package connlimit

import "syscall"

// DefaultTotal is half of this process's file descriptor limit (the other half is left to the
// database and to outgoing deliveries), between 256 and 16,384.
func DefaultTotal() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == 0 {
		return 1024
	}
	return int(min(max(lim.Cur/2, 256), 16384))
}
