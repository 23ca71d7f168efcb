package store

import (
	"context"
	"runtime"
	"sync"
)

// Group commit. A transaction's commit costs far more than one row, and on SQLite the writer
// runs one transaction at a time, so concurrent callers share one: whoever finds no
// transaction running leads, taking every call queued meanwhile into the next transaction.
// Each call still returns only after the transaction holding its work committed, so an
// answer keeps meaning "stored".

// group runs concurrent calls of one kind in shared transactions.
type group[In, Out any] struct {
	mu      sync.Mutex
	queue   []*call[In, Out]
	leading bool
	// take says how many of the queued calls (at least one) the next transaction holds.
	take func(queue []*call[In, Out]) int
	// run performs one transaction and fills in every call's out and err.
	run func(batch []*call[In, Out])
}

type call[In, Out any] struct {
	ctx  context.Context
	in   In
	out  Out
	err  error
	done bool
	wake chan struct{} // closed when done, or when this call must lead
}

// do runs in within a shared transaction and returns its outcome.
func (g *group[In, Out]) do(ctx context.Context, in In) (Out, error) {
	c := &call[In, Out]{ctx: ctx, in: in, wake: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	if g.leading {
		g.mu.Unlock()
		<-c.wake
		g.mu.Lock()
		if c.done {
			g.mu.Unlock()
			return c.out, c.err
		}
		// The previous leader finished its own call and handed over.
	}
	g.leading = true
	for !c.done {
		// Yield once before taking the batch: callers that are runnable now (requests being
		// read and checked, on this core or the other) join this transaction instead of
		// waiting for the next. Under load a transaction then holds several calls rather
		// than one or two, and its commit, the bulk of its cost, is shared; with nothing
		// runnable the yield returns at once.
		g.mu.Unlock()
		runtime.Gosched()
		g.mu.Lock()
		n := max(1, min(len(g.queue), g.take(g.queue)))
		batch := g.queue[:n]
		g.queue = append([]*call[In, Out](nil), g.queue[n:]...)
		g.mu.Unlock()
		g.run(batch)
		g.mu.Lock()
		for _, b := range batch {
			b.done = true
			if b != c {
				close(b.wake)
			}
		}
	}
	if len(g.queue) > 0 {
		close(g.queue[0].wake) // leads: done is false
	} else {
		g.leading = false
	}
	g.mu.Unlock()
	return c.out, c.err
}

// live drops the calls whose caller has gone, recording why; the rest go on.
func live[In, Out any](batch []*call[In, Out]) []*call[In, Out] {
	out := batch[:0:0]
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			c.err = err
			continue
		}
		out = append(out, c)
	}
	return out
}

// runEach performs a failed batch again one call at a time, so that one call's error (a
// conflicting Idempotency-Key, a bin deleted meanwhile) is its own and not its neighbours'.
func runEach[In, Out any](ctx context.Context, batch []*call[In, Out], one func(ctx context.Context, in In) (Out, error)) {
	for _, c := range batch {
		c.out, c.err = one(ctx, c.in)
	}
}
