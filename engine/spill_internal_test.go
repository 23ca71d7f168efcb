package engine

import (
	"testing"
	"time"
)

// A spill that begins again soon after the last one ended is held for twice as long as the
// last, from minSpillHold up to maxSpillHold, and gets no slots at publish while held; one
// after a calm of respillWithin is not held.
func TestASpillBegunSoonAfterTheLastEndedIsHeldLonger(t *testing.T) {
	tb := newTable(8, func(int) {})
	w := tb.get("flaps")
	w.proven, w.limit = true, 4
	t0 := time.Now()
	grantable := func(at time.Time) bool {
		got, _ := tb.reserve(map[string]int{"flaps": 1}, at, 64)
		if got != nil {
			tb.unreserve(got)
			tb.grants.Done()
		}
		w.taking, w.takeRows = false, 0
		return got["flaps"] == 1
	}
	end := func(at time.Time) {
		w.spilled, w.endedAt = false, at
	}

	w.startSpill(t0)
	if !w.spilled || w.hold != 0 || !grantable(t0) {
		t.Fatalf("first spill: spilled %v, hold %v, granted %v; want spilled, no hold, granted at once", w.spilled, w.hold, grantable(t0))
	}
	at := t0
	for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
		16 * time.Second, 32 * time.Second, time.Minute, time.Minute} {
		end(at.Add(10 * time.Millisecond))
		at = at.Add(time.Second)
		w.startSpill(at)
		if w.hold != want {
			t.Fatalf("spill begun 1s after the last ended: hold %v, want %v", w.hold, want)
		}
		if grantable(at.Add(want - time.Millisecond)) {
			t.Fatalf("granted a slot within the spill's hold of %v", want)
		}
		if !grantable(at.Add(want)) {
			t.Fatalf("no slot once the spill's hold of %v was over", want)
		}
		at = at.Add(want)
	}
	w.startSpill(at.Add(time.Hour))
	if w.hold != time.Minute {
		t.Errorf("a spill reported again while spilled moved its hold to %v", w.hold)
	}
	end(at)
	w.startSpill(at.Add(respillWithin))
	if w.hold != 0 {
		t.Errorf("a spill after a calm of %v is held %v, want no hold", respillWithin, w.hold)
	}
}
