package store

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// Every call gets its own outcome from the transaction that held it, calls queued while one
// runs share the next, and a transaction that panics fails its own calls only: the group goes
// on with the next.
func TestGroupAnswersEachCallAndSurvivesAPanickingTransaction(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	release := make(chan struct{})
	g := &group[int, int]{
		take: func(q []*call[int, int]) int { return len(q) },
		run: func(batch []*call[int, int]) {
			mu.Lock()
			sizes = append(sizes, len(batch))
			mu.Unlock()
			for _, c := range batch {
				if c.in == 0 {
					<-release // holds the first transaction while the others queue
				}
				if c.in < 0 {
					panic("broken transaction")
				}
				c.out = c.in * 10
			}
		},
	}
	ctx := context.Background()
	first := make(chan error, 1)
	go func() {
		out, err := g.do(ctx, 0)
		if err == nil && out != 0 {
			t.Errorf("call 0 answered %d", out)
		}
		first <- err
	}()
	for {
		mu.Lock()
		started := len(sizes) == 1
		mu.Unlock()
		if started {
			break
		}
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	for i := 1; i <= 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := g.do(ctx, i); err != nil || out != i*10 {
				t.Errorf("call %d answered %d, %v; want %d", i, out, err, i*10)
			}
		}()
	}
	for {
		g.mu.Lock()
		queued := len(g.queue)
		g.mu.Unlock()
		if queued == 20 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	mu.Lock()
	if len(sizes) != 2 || sizes[0] != 1 || sizes[1] != 20 {
		t.Errorf("transactions of %v calls, want [1 20]: the calls queued behind the first share the next", sizes)
	}
	mu.Unlock()

	if _, err := g.do(ctx, -1); err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Errorf("a call whose transaction panicked answered %v", err)
	}
	if out, err := g.do(ctx, 7); err != nil || out != 70 {
		t.Errorf("after a panic a call answered %d, %v; want 70", out, err)
	}
}

// gatherTest is a group that gathers up to `to` calls, waiting at most wait, and records the
// size of each transaction.
func gatherTest(to int, wait time.Duration) (*group[int, int], func() []int) {
	var mu sync.Mutex
	var sizes []int
	g := &group[int, int]{
		take: func(q []*call[int, int]) int { return len(q) },
		run: func(batch []*call[int, int]) {
			mu.Lock()
			sizes = append(sizes, len(batch))
			mu.Unlock()
		},
		gather: newGathering(to, wait),
	}
	return g, func() []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), sizes...)
	}
}

// doAll makes n concurrent calls and fails the test unless all return within a generous
// bound, far below the gathering waits that these tests must not sit out.
func doAll(t *testing.T, g *group[int, int], n int) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := g.do(context.Background(), i); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%d calls still waiting after 10 s", n)
	}
}

// loaded makes g's next transaction one under load, once its goroutine has ended.
func loaded(t *testing.T, g *group[int, int]) {
	t.Helper()
	idle(t, g)
	g.gather.last = gatherUnder
}

// idle waits for g's goroutine to end, its queue empty.
func idle(t *testing.T, g *group[int, int]) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		g.mu.Lock()
		running := g.running
		g.mu.Unlock()
		if !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the group's goroutine still runs after 10 s with nothing queued")
		}
	}
}

// Under load (the last transaction held gatherUnder calls or more) a transaction waits for
// the queue to reach its gathering size, and goes as soon as it does, not when the wait ends.
func TestGroupGathersCallsUnderLoad(t *testing.T) {
	g, sizes := gatherTest(4, time.Hour)
	loaded(t, g)
	first := make(chan error, 1)
	go func() {
		_, err := g.do(context.Background(), 0)
		first <- err
	}()
	// Without gathering, the first call's transaction would run alone meanwhile.
	time.Sleep(50 * time.Millisecond)
	doAll(t, g, 3)
	select {
	case err := <-first:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first call still waits after 10 s")
	}
	if got := sizes(); len(got) != 1 || got[0] != 4 {
		t.Errorf("transactions of %v calls, want one of 4", got)
	}
}

// A call after a lull goes at once, even when the group was loaded before the lull, and a
// loaded group's wait is bounded.
func TestGroupDoesNotHoldALoneCall(t *testing.T) {
	g, sizes := gatherTest(4, time.Hour)
	doAll(t, g, 1) // no load yet
	loaded(t, g)
	doAll(t, g, 4) // gathered, then the queue empties
	idle(t, g)
	doAll(t, g, 1)
	if got := sizes(); len(got) != 3 || got[0] != 1 || got[1] != 4 || got[2] != 1 {
		t.Errorf("transactions of %v calls, want [1 4 1]", got)
	}

	bounded, sizes := gatherTest(100, 10*time.Millisecond)
	loaded(t, bounded)
	doAll(t, bounded, 1)
	if got := sizes(); len(got) != 1 || got[0] != 1 {
		t.Errorf("transactions of %v calls, want one of 1", got)
	}
}
