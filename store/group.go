package store

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

// Group commit. A transaction's commit costs far more than one row, and on SQLite the writer
// runs one transaction at a time, so concurrent callers share one: a goroutine of the group's
// own runs the transactions one after another, each holding every call queued meanwhile. Each
// call still returns only after the transaction holding its work committed, so an answer keeps
// meaning "stored".
//
// The transactions run on a goroutine of their own rather than on a caller's: handing the lead
// from one caller to the next made each transaction wait for the next leader to be scheduled,
// behind every request being read and checked on a busy machine.

// group runs concurrent calls of one kind in shared transactions.
type group[In, Out any] struct {
	mu      sync.Mutex
	queue   []*call[In, Out]
	running bool // the group's goroutine is running
	// take says how many of the queued calls (at least one) the next transaction holds.
	take func(queue []*call[In, Out]) int
	// run performs one transaction and fills in every call's out and err.
	run func(batch []*call[In, Out])
	// gather, when set, holds a transaction back under load until more calls queue (see
	// gathering).
	gather *gathering
}

// gathering holds a group's next transaction back, while the last one held at least
// gatherUnder calls (the group is under load), until the queue reaches to calls or wait has
// passed, whichever comes first. The yield alone gathers only the callers runnable at that
// moment: on a machine whose two cores are busy reading and checking the next requests,
// about six captures a transaction, each transaction's commit, WAL frames and bins' check
// costing about as much as four more captures. Waiting costs the callers a fraction of a
// millisecond and no CPU; a lone call (the last transaction small) never waits.
type gathering struct {
	to   int
	wait time.Duration

	full  chan struct{} // signalled when the queue reaches to
	timer *time.Timer   // the loop's, reused
	last  int           // calls the last transaction held
}

// gatherUnder is the smallest last transaction that makes the next one gather.
const gatherUnder = 4

func newGathering(to int, wait time.Duration) *gathering {
	return &gathering{to: to, wait: wait, full: make(chan struct{}, 1)}
}

type call[In, Out any] struct {
	ctx  context.Context
	in   In
	out  Out
	err  error
	done chan struct{} // closed when the transaction holding the call has ended
}

// do runs in within a shared transaction and returns its outcome.
func (g *group[In, Out]) do(ctx context.Context, in In) (Out, error) {
	c := &call[In, Out]{ctx: ctx, in: in, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	if g.gather != nil && len(g.queue) == g.gather.to {
		select {
		case g.gather.full <- struct{}{}:
		default: // a signal is pending already
		}
	}
	if !g.running {
		g.running = true
		go g.loop()
	}
	g.mu.Unlock()
	<-c.done
	return c.out, c.err
}

// loop runs transactions until the queue is empty.
func (g *group[In, Out]) loop() {
	for {
		// Yield once before taking the batch: callers that are runnable now (requests being
		// read and checked, on this core or the other) join this transaction instead of
		// waiting for the next. Under load a transaction then holds several calls rather
		// than one or two, and its commit, the bulk of its cost, is shared; with nothing
		// runnable the yield returns at once.
		runtime.Gosched()
		g.waitForMore()
		g.mu.Lock()
		if len(g.queue) == 0 {
			g.running = false
			if g.gather != nil {
				g.gather.last = 0 // the next call comes after a lull: no load to gather under
			}
			g.mu.Unlock()
			return
		}
		n := max(1, min(len(g.queue), g.take(g.queue)))
		batch := g.queue[:n]
		g.queue = append([]*call[In, Out](nil), g.queue[n:]...)
		g.mu.Unlock()
		if g.gather != nil {
			g.gather.last = len(batch)
		}
		g.runBatch(batch)
		for _, c := range batch {
			close(c.done)
		}
	}
}

// waitForMore holds the next transaction back while the group gathers (see gathering).
func (g *group[In, Out]) waitForMore() {
	ga := g.gather
	if ga == nil || ga.last < gatherUnder {
		return
	}
	// A signal sent for a queue taken since would cut this wait short; one sent from now on
	// is for a queue this wait reads below or waits for.
	select {
	case <-ga.full:
	default:
	}
	g.mu.Lock()
	n := len(g.queue)
	g.mu.Unlock()
	if n == 0 || n >= ga.to {
		return
	}
	if ga.timer == nil {
		ga.timer = time.NewTimer(ga.wait)
	} else {
		ga.timer.Reset(ga.wait)
	}
	select {
	case <-ga.full:
	case <-ga.timer.C:
	}
	ga.timer.Stop()
}

// runBatch runs one transaction; a panic in it fails the batch's calls instead of taking the
// process down, since no request's own recovery is on this goroutine to catch it.
func (g *group[In, Out]) runBatch(batch []*call[In, Out]) {
	defer func() {
		if p := recover(); p != nil {
			slog.Error("group transaction panicked", "panic", p, "stack", string(debug.Stack()))
			for _, c := range batch {
				c.err = fmt.Errorf("store: group transaction panicked: %v", p)
			}
		}
	}()
	g.run(batch)
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
