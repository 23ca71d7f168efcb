//go:build !unix

package connlimit

// DefaultTotal is a fixed bound where the descriptor limit cannot be read.
func DefaultTotal() int { return 1024 }
