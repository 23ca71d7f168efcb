package engine

import (
	"testing"
	"time"
)

// The dispatcher counts as busy while attempts are in flight and for busyTail after the last
// one ended, so that captures yielding to it do not rush into the gap between two claims.
func TestTheDispatcherStaysBusyForAMomentAfterItsLastAttempt(t *testing.T) {
	d := &Dispatcher{}
	if d.Busy() {
		t.Fatal("busy before any attempt")
	}
	d.noteInFlight(3)
	if !d.Busy() {
		t.Fatal("not busy with 3 attempts in flight")
	}
	d.noteInFlight(0)
	if !d.Busy() {
		t.Fatal("not busy right after the last attempt ended")
	}
	d.idleSince.Store(time.Now().Add(-busyTail - time.Millisecond).UnixNano())
	if d.Busy() {
		t.Fatal("still busy a tail after the last attempt ended")
	}
	d.noteInFlight(1)
	if !d.Busy() {
		t.Fatal("not busy with an attempt in flight again")
	}
}
