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
