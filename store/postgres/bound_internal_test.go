package postgres

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// The bounder bounds each bin queued once with its keep, runs what is queued when it is
// closed before Close returns, and gives a bound that does not finish only drainFor then.
func TestBounderBoundsWhatIsQueuedAndStopsWithinItsDrain(t *testing.T) {
	var mu sync.Mutex
	var bound []string
	b := makeBounder(func(ctx context.Context, bin string, keep int) error {
		if keep != 3 {
			t.Errorf("bin %s bounded to %d, want 3", bin, keep)
		}
		mu.Lock()
		bound = append(bound, bin)
		mu.Unlock()
		if bin == "stuck" {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
	b.add([]string{"a", "b"}, 3)
	b.add([]string{"a"}, 3)
	b.add(nil, 3)
	go b.run()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := slices.Sorted(slices.Values(bound))
		mu.Unlock()
		if slices.Equal(got, []string{"a", "b"}) {
			break
		}
		if len(got) > 2 || time.Now().After(deadline) {
			t.Fatalf("bounded %v, want a and b once each", got)
		}
		time.Sleep(time.Millisecond)
	}

	b.drainFor = 50 * time.Millisecond
	b.add([]string{"stuck", "c"}, 3)
	closed := make(chan struct{})
	go func() { b.close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for a bound that does not finish")
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(bound, "stuck") {
		t.Errorf("bounded %v: what was queued at Close did not run", bound)
	}
	if !errors.Is(b.ctx.Err(), context.Canceled) {
		t.Errorf("the bounds' context is %v after Close, want cancelled", b.ctx.Err())
	}
}
