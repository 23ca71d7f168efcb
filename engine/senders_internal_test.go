package engine

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// An attempt goes to a goroutine that finished one and waits, not to a new one: that
// goroutine's stack has grown already. Busy goroutines are never waited for, idle ones end
// after senderIdle, and close ends the rest.
func TestSendersReuseIdleGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSenders()
		var ran atomic.Int64
		quick := func() { ran.Add(1) }
		for range 5 {
			s.do(quick)
			synctest.Wait() // every goroutine here is blocked: the sender is idle again
		}
		if got := s.started.Load(); got != 1 {
			t.Errorf("5 attempts one after another started %d goroutines, want 1", got)
		}

		// Three attempts at once: the idle goroutine takes one, two new ones the others,
		// and do never waits for a busy one.
		release := make(chan struct{})
		slow := func() { <-release; ran.Add(1) }
		for range 3 {
			s.do(slow)
		}
		if got := s.started.Load(); got != 3 {
			t.Errorf("3 attempts at once with one idle goroutine: %d started in all, want 3", got)
		}
		close(release)
		synctest.Wait()
		for range 3 {
			s.do(quick)
			synctest.Wait()
		}
		if got := s.started.Load(); got != 3 {
			t.Errorf("after the burst, 3 more attempts started %d goroutines in all, want still 3", got)
		}

		time.Sleep(senderIdle + time.Millisecond)
		synctest.Wait()
		s.do(quick)
		synctest.Wait()
		if got := s.started.Load(); got != 4 {
			t.Errorf("after %v idle: %d goroutines started in all, want 4 (the idle ones ended)", senderIdle, got)
		}
		s.close() // ends the one left; synctest fails the test if any goroutine outlives it
		if got := ran.Load(); got != 12 {
			t.Errorf("%d attempts ran, want 12", got)
		}
	})
}
