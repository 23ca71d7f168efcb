package engine

import (
	"context"
	"log/slog"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// The dispatcher's side of spilling (the policy as a whole is in doc.go): the planner asks
// the store to spill a webhook backlogged for long (Spill in its plan); a claim that finds a
// spilled webhook without a row to send asks for a take (table.claimed); the spiller takes
// the owed events and leaves them in the webhook's ready work; the claim loop starts them
// before it claims anything for the webhook; an attempt that will not be recorded abandons
// its webhook's owed events, which the store then takes again from the stored position.

// spillAfter is how long a webhook stays backlogged before it is spilled: long enough that
// a burst a healthy receiver absorbs keeps the direct path, short enough that a receiver
// slower than the event rate stops costing the writer a row per event. A backlogged webhook
// whose requests have stopped coming back (none finished for stallAfter) is spilled at
// once: fifty endpoints going dead together would otherwise cost a second's worth of rows.
const (
	spillAfter = 100 * time.Millisecond
	stallAfter = 20 * time.Millisecond
)

// spillDue and spillPending are the backlog at which a publish spills a webhook
// (Queue.SpillWhenPending, spillThreshold): spillDue deliveries due (in flight, waiting for a
// slot, or a retry whose time came), on PostgreSQL only those due for spillAfter or longer,
// or there spillPending pending at all (a retry still waiting for its time too). A webhook
// that hangs or falls behind passes the first within a few dozen events; a publisher that
// outruns its receiver by far passes the second first. The store applies them inside the
// publish that would write the rows, where they cost no transaction of their own.
const (
	spillDue     = 32
	spillPending = 256
)

// spillThreshold is the backlog at which the store's publishes spill a webhook.
//
// On SQLite every due delivery counts, however fresh: an owed event costs the one writer a row at its
// record instead of a row at publish and an update at its record, and no round trip, so even
// a webhook that keeps up is better off spilled when its events come faster than a window's
// worth at a time. Counting only deliveries due for 100 ms measured 20% fewer deliveries/s
// with one event per publish (4 pairs, 12,080 against 15,142).
//
// On PostgreSQL an owed event costs round trips on its way (the publish's spill locks, the
// take and its lease) and waits for the take, so a spill that a healthy receiver did not need
// costs latency for as long as it lasts (until it keeps up again: table.reserve): at 1,000
// events/s a pause of 30 ms made 32 pending, and half of the events then arrived 11 ms after
// their publish instead of 4. There only deliveries due for spillAfter count, or a backlog of
// spillPending, which keeps a burst's rows to a few hundred.
func spillThreshold(postgres bool) store.SpillThreshold {
	if !postgres {
		return store.SpillThreshold{Due: spillDue}
	}
	return store.SpillThreshold{Due: spillDue, DueFor: spillAfter, Pending: spillPending}
}

// A spill that ends soon after it began, while events keep coming, often begins again at
// once: a publisher faster than its receivers lets them catch up for a moment now and then,
// and each end costs a backlog of rows and claims until the next spill. So a spill that
// begins within respillWithin of the last one's end is held (no slots at publish, which is
// what ends a spill under a steady stream; table.reserve) for twice the last one's hold, from
// minSpillHold up to maxSpillHold. A spill after a calm of respillWithin is not held: a
// healthy webhook spilled by a moment's backlog ends its spill at once.
const (
	respillWithin = 5 * time.Second
	minSpillHold  = time.Second
	maxSpillHold  = time.Minute
)

// startSpill marks the webhook spilled from now on, and sets the spill's hold; called with
// the table's mu held.
func (w *webhook) startSpill(now time.Time) {
	if w.spilled {
		return
	}
	w.spilled, w.spilledAt = true, now
	switch {
	case w.endedAt.IsZero() || now.Sub(w.endedAt) >= respillWithin:
		w.hold = 0
	default:
		w.hold = min(max(2*w.hold, minSpillHold), maxSpillHold)
	}
}

// maxTake bounds the owed events one TakeSpilled hands out.
const maxTake = 512

// takeWindows is how many windows of owed events a take brings a webhook that answers.
const takeWindows = 8

// takeFor is how many owed events to take for a spilled webhook that had free slots. For one
// that answers, several windows' worth, so one read feeds it for a while (measured when takes
// wrote rows: 4 windows gave 16% more deliveries/s than 2, 8 more again). One that is failing
// or hanging gets only what it can be sent now, so nothing waits behind its timeouts.
func takeFor(w *webhook, free int) int {
	if !w.proven {
		return max(free, 1)
	}
	return min(max(free, takeWindows*int(w.limit)), maxTake)
}

// spiller takes the owed events of spilled webhooks in its own goroutine, so the claim loop
// never waits for a take, and batches whatever takes were asked for while its previous round
// ran.
type spiller struct {
	store  Queue
	table  *table
	owner  string
	lease  time.Duration
	logger *slog.Logger
	notify func() // wakes the claim loop
	rescan func() // makes the claim loop look for work everywhere
	run    chan struct{}
}

func newSpiller(q Queue, t *table, owner string, lease time.Duration, logger *slog.Logger, notify, rescan func()) *spiller {
	return &spiller{store: q, table: t, owner: owner, lease: lease, logger: logger, notify: notify, rescan: rescan,
		run: make(chan struct{}, 1)}
}

// wake tells the spiller that takes are asked for; it never blocks.
func (s *spiller) wake() {
	select {
	case s.run <- struct{}{}:
	default:
	}
}

// loop runs the takes asked for until ctx is done.
func (s *spiller) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.run:
		}
		wants, gens, seq := s.table.takesAsked()
		err := s.take(ctx, wants, gens, seq)
		s.table.takesDone(wants)
		s.notify()
		if err != nil && ctx.Err() == nil {
			s.logger.Error("take spilled events", "err", err)
			time.Sleep(100 * time.Millisecond)
			s.rescan()
		}
	}
}

// take takes owed events of spilled webhooks into their ready work. gens are their spill
// generations and seq the hint sequence when the takes were collected.
func (s *spiller) take(ctx context.Context, wants []store.OwedQuota, gens map[string]uint64, seq uint64) error {
	if len(wants) == 0 {
		return nil
	}
	got, err := s.store.TakeSpilled(ctx, store.TakeRequest{Owner: s.owner, Now: time.Now(), Lease: s.lease, Hooks: wants})
	if err != nil {
		return err
	}
	for _, id := range s.table.took(got, gens, seq) {
		s.logger.Info("webhook caught up: its spill is drained", "webhook", id)
	}
	s.notify()
	return nil
}

// abandon gives up on deliveries taken from the spills of these webhooks that will not be
// recorded: the store takes the webhooks' owed events again from their stored positions, so
// what waits in ready would only be sent twice.
func (s *spiller) abandon(webhookIDs []string) {
	if len(webhookIDs) == 0 {
		return
	}
	s.store.AbandonOwed(webhookIDs)
	s.table.dropReady(webhookIDs)
	s.rescan()
}

// spilledByPublish marks the webhooks a publish spilled.
func (t *table) spilledByPublish(ids []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	for _, id := range ids {
		w := t.get(id)
		w.backlogSince = time.Time{}
		w.spillGen++
		w.startSpill(now)
		if !w.due {
			w.due, w.dueAt = true, 0
		}
	}
}

// takesAsked hands the spiller the takes asked for since its last round, with the webhooks'
// spill generations and the hint sequence now.
func (t *table) takesAsked() ([]store.OwedQuota, map[string]uint64, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var wants []store.OwedQuota
	gens := map[string]uint64{}
	for id, w := range t.hooks {
		if w.takeRows > 0 {
			wants = append(wants, store.OwedQuota{WebhookID: id, Rows: w.takeRows})
			gens[id] = w.spillGen
			w.takeRows = 0
		}
	}
	return wants, gens, t.hintSeq
}

// takesDone ends the takes of a round, except for webhooks a new take was asked for meanwhile.
func (t *table) takesDone(wants []store.OwedQuota) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, want := range wants {
		if w := t.hooks[want.WebhookID]; w.takeRows == 0 {
			w.taking = false
		}
	}
}

// took adds what a take brought to the webhooks' ready work and ends the spills it found
// drained; it returns the webhooks whose spill ended. seq is the hint sequence when the take
// was collected, gens the spill generations then.
func (t *table) took(got map[string]store.SpillTake, gens map[string]uint64, seq uint64) (caughtUp []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	// What was taken waits in ready for the claim loop, which serves it before claiming:
	// that loop alone starts attempts, so the slots it counts are never spent by a take at
	// the same time (both once started attempts, and a webhook could get up to twice its
	// per-webhook limit in flight).
	for id, g := range got {
		w := t.get(id)
		w.ready = append(w.ready, g.Taken...)
		if len(w.ready) > 0 {
			// Like a hint: a claim that began before this must not clear due.
			t.hintSeq++
			w.hinted = t.hintSeq
			w.due, w.dueAt = true, 0
		} else if g.Spilled && len(g.Taken) == 0 && !g.More && w.hinted <= seq {
			// Nothing owed yet that is not in flight: wait for a publish to hint at more (or
			// for a record to end the spill), instead of asking again at once.
			w.due = false
		}
	}
	// A take that found a spill drained ends it here only if no spill was reported since
	// the take began: a publish may spill the webhook again right after the take's commit
	// and report it first.
	for id, g := range got {
		w := t.hooks[id]
		if g.Spilled || !w.spilled || w.spillGen != gens[id] {
			continue
		}
		w.spilled, w.endedAt = false, time.Now()
		if len(g.Taken) == 0 && len(w.ready) == 0 {
			w.due = false
		}
		caughtUp = append(caughtUp, id)
	}
	return caughtUp
}

// withReady lists the webhooks holding ready work.
func (t *table) withReady() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ids []string
	for id, w := range t.hooks {
		if len(w.ready) > 0 {
			ids = append(ids, id)
		}
	}
	return ids
}

// dropReady forgets the ready work of the webhooks whose owed events were abandoned.
func (t *table) dropReady(ids []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range ids {
		if w := t.hooks[id]; w != nil {
			w.ready = nil
		}
	}
}
