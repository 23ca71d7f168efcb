package engine

import (
	"testing"
	"time"
)

// Eventually polls cond until it holds or timeout passes, and reports whether it held; the
// caller says what failed. The timeout bounds a broken run, it measures nothing: keep it
// generous. It is exported (in a test file) for this package's external tests too.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool) bool {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}
