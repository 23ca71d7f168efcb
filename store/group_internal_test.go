package store

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
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
	t.Cleanup(g.close)
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

// The group's goroutine waits for the next call instead of ending with an empty queue, so
// calls one after another run on one goroutine (whose stack has grown already); it ends after
// groupIdle without calls, and close ends it at once. A call after close still runs.
func TestGroupGoroutineWaitsForTheNextCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := &group[int, int]{
			take: func(q []*call[int, int]) int { return len(q) },
			run: func(batch []*call[int, int]) {
				for _, c := range batch {
					c.out = c.in * 10
				}
			},
		}
		ctx := context.Background()
		call := func(i int) {
			t.Helper()
			if out, err := g.do(ctx, i); err != nil || out != i*10 {
				t.Fatalf("call %d answered %d, %v", i, out, err)
			}
			synctest.Wait() // the goroutine waits for the next call, or has ended
		}
		state := func() (running bool, started int) {
			g.mu.Lock()
			defer g.mu.Unlock()
			return g.running, g.started
		}
		for i := range 5 {
			call(i)
		}
		if running, started := state(); !running || started != 1 {
			t.Errorf("5 calls one after another: running %v, %d goroutines started; want one, still waiting", running, started)
		}
		time.Sleep(groupIdle + time.Millisecond)
		synctest.Wait()
		if running, _ := state(); running {
			t.Errorf("after %v without calls the goroutine still runs", groupIdle)
		}
		call(5)
		if running, started := state(); !running || started != 2 {
			t.Errorf("a call after the goroutine ended: running %v, %d started; want a second one, waiting", running, started)
		}
		g.close()
		if running, _ := state(); running {
			t.Error("close returned with the goroutine running")
		}
		call(6)
		if running, started := state(); running || started != 3 {
			t.Errorf("a call after close: running %v, %d started; want a third that ended with it", running, started)
		}
	})
}
