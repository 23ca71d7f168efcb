// Package wait holds the one polling helper Hookrelay's tests use to wait for something that
// happens in another goroutine or process (a delivery arriving, a capture stored, a server
// up). The timeout is generous on purpose: it only bounds a broken build, so no test depends
// on how fast a shared CI machine is.
package wait

import (
	"testing"
	"time"
)

// Timeout bounds every wait.
const Timeout = 30 * time.Second

// Until polls cond until it holds, failing t with what it waited for after Timeout.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", Timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// For polls cond until it holds or Timeout passes and reports whether it held, for callers
// that say themselves, with the details they have, what did not happen.
func For(cond func() bool) bool {
	deadline := time.Now().Add(Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}
