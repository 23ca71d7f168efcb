package engine

import (
	"math"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/delivery"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

// webhook is everything the engine knows of one webhook's queue: its concurrency window,
// where its work is, whether it is backlogged, and its spill. The table holds one per webhook
// it has heard of; the planner reads them, and only table methods change them.
type webhook struct {
	id string

	// The concurrency window: additive increase on success, multiplicative decrease when it
	// answers 429/503 or times out, so a struggling receiver gets fewer requests instead of
	// being hammered.
	inflight int
	limit    float64
	// claiming is the slots the running claim was planned to fill for it (table.claiming).
	claiming int
	// proven: the last attempt succeeded. Webhooks not proven (new, or failing) share at
	// most half of the workers between them, so fifty dead endpoints cannot take every
	// slot from a healthy one while their requests hang until the timeout.
	proven bool
	// sending counts the requests on the wire (sent, not yet answered); sendingSince is when
	// it last went from 0 to 1, lastAnswer when a request last came back (answered, failed or
	// timed out). Together they tell a receiver that has stopped answering (stalled). They
	// count the receiver's time only: inflight also counts the claim's and the bodies' reads,
	// and a database slow for a moment is no reason to spill a receiver that answers.
	sending                  int
	sendingSince, lastAnswer time.Time
	// restUntil (unix ms): after a request timed out, the webhook sends nothing before then
	// (restAfterTimeout).
	restUntil int64

	// due: the webhook may have a due delivery from dueAt (unix ms) on. It is set by
	// publishes (Store.OnQueued), retries, wake-ups from other replicas and the periodic
	// rescan, and cleared by a claim that finds nothing more, so a claim visits only the
	// webhooks that can send now.
	due   bool
	dueAt int64
	// hinted is the hint sequence at which the webhook was last hinted: a claim that began
	// before a hint must not clear due on the strength of an older snapshot.
	hinted uint64
	// backlogSince is since when its claims have left due work behind (more was due than its
	// window could take); zero when it is not backlogged. A webhook backlogged for long is
	// spilled (doc.go).
	backlogSince time.Time

	// The spill (spill.go). spilled: new events wait in the webhook's spill, not as rows; it
	// stays due until the spill is drained. spillGen counts the spills publishes reported.
	spilled  bool
	spillGen uint64
	// spilledAt is when the current spill began here, endedAt when the last one ended, and
	// hold how long this one must last before its webhook, keeping up, may end it (see
	// startSpill).
	spilledAt, endedAt time.Time
	hold               time.Duration
	// takeRows > 0: a take of that many owed events is asked for and the spiller has not
	// started it yet. taking: a take is asked for or under way; claiming meanwhile would only
	// find again that nothing is due.
	takeRows int
	taking   bool
	// ready holds what a take brought beyond the webhook's free slots: it is sent before
	// anything is claimed for it, without another read. It has no rows and no lease, so it
	// can wait as long as it must; on shutdown it is simply owed again.
	ready []*models.Delivery
}

// stalled reports whether the webhook has requests on the wire and none has come back for at
// least d.
func (w *webhook) stalled(now time.Time, d time.Duration) bool {
	return w.sending > 0 && now.Sub(w.sendingSince) >= d && now.Sub(w.lastAnswer) >= d
}

// slowStart is the window a webhook starts with; it grows by one per success up to
// PerWebhook.
const slowStart = 4

// table is the dispatcher's set of webhook states. Its one mutex guards them and the counts
// derived from them (the total in flight, the hint sequence): the planner needs all of it
// consistent at once, and every change is a few field updates, so one short lock is cheaper
// than finer ones and cannot deadlock.
type table struct {
	perWebhook int
	inFlight   func(n int) // reports the total in flight; called with mu held, so in order

	mu       sync.Mutex
	hooks    map[string]*webhook
	inflight int    // sum of the webhooks' inflight
	hintSeq  uint64 // counts hints, for webhook.hinted
	scratch  []*webhook
	// grants counts the reservations (reserve) whose publish has neither committed nor
	// failed yet; once closed, none is granted, so that shutdown can wait for them.
	grants sync.WaitGroup
	closed bool
	// claiming is the slots the running claim was planned to fill: reserve leaves them to it.
	// Each webhook's own share is its claiming.
	claiming int
}

func newTable(perWebhook int, inFlight func(int)) *table {
	return &table{perWebhook: perWebhook, inFlight: inFlight, hooks: map[string]*webhook{}}
}

// get returns the state of a webhook, creating it at slow start; called with mu held.
func (t *table) get(id string) *webhook {
	w := t.hooks[id]
	if w == nil {
		w = &webhook{id: id, limit: float64(min(slowStart, t.perWebhook))}
		t.hooks[id] = w
	}
	return w
}

// markDue records that a webhook may have work due at unix ms at (the earlier time wins);
// called with mu held.
func (w *webhook) markDue(at int64) {
	if !w.due || at < w.dueAt {
		w.due, w.dueAt = true, at
	}
}

// hint records that webhooks may have deliveries due at the given times (unix ms).
func (t *table) hint(due map[string]int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.hintSeq++
	for id, at := range due {
		w := t.get(id)
		w.markDue(at)
		w.hinted = t.hintSeq
	}
}

// rescanned merges what a rescan found: pending work per webhook and the spilled webhooks.
func (t *table) rescanned(pending map[string]int64, spilled []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, at := range pending {
		t.get(id).markDue(at)
	}
	for _, id := range spilled {
		w := t.get(id)
		w.startSpill(time.Now())
		if !w.due {
			w.due, w.dueAt = true, 0 // a take that found nothing new left it to wait for a hint
		}
	}
}

// plan plans one round of the claim loop at now and applies what it can at once: it marks
// the new backlogs and hands out the ready work the plan serves. It returns the plan, that
// ready work, and the hint sequence the plan saw.
func (t *table) plan(now time.Time, workers int, canSpill bool) (roundPlan, []*models.Delivery, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	// Map order: when slots are scarce, which webhooks get them first varies from round to
	// round instead of always favouring the same ones.
	hooks := t.scratch[:0]
	for _, w := range t.hooks {
		hooks = append(hooks, w)
	}
	p := plan(hooks, planInput{Now: now, Free: workers - t.inflight, Workers: workers,
		PerWebhook: t.perWebhook, CanSpill: canSpill})
	t.scratch = hooks[:0] // the table never forgets a webhook, so the pointers pin nothing
	for _, id := range p.Backlogged {
		t.hooks[id].backlogSince = now
	}
	t.claiming = 0
	for _, c := range p.Claim {
		t.claiming += c.Free
		t.hooks[c.WebhookID].claiming = c.Free
	}
	var out []*models.Delivery
	for _, s := range p.Ready {
		w := t.hooks[s.WebhookID]
		n := min(s.Free, len(w.ready))
		out = append(out, w.ready[:n]...)
		w.ready = w.ready[n:]
		if len(w.ready) == 0 {
			w.ready = nil
		}
	}
	// In flight from now, before the lock is let go: reserve must not see their slots free
	// while the loop loads their bodies.
	t.startedLocked(out)
	return p, out, t.hintSeq
}

// claimed settles the table after a claim at now for the planned slots: next holds, for each
// webhook whose due work the claim exhausted, when it next has work (0: none known). Spilled
// webhooks with no row left to send get a take asked for; it reports whether any did.
func (t *table) claimed(slots []store.WebhookQuota, got []*models.Delivery, next map[string]int64, now time.Time, seq uint64) (askedTake bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	// What the claim got is in flight from now: the slots it was planned for pass to it in
	// one step, so reserve never sees them free.
	t.claiming = 0
	t.startedLocked(got)
	planned := make(map[string]int, len(slots))
	for _, s := range slots {
		planned[s.WebhookID] = s.Free
		w := t.get(s.WebhookID)
		w.claiming = 0
		if _, exhausted := next[s.WebhookID]; !exhausted {
			if w.backlogSince.IsZero() {
				w.backlogSince = now
			}
		} else {
			w.backlogSince = time.Time{}
		}
	}
	for id, at := range next {
		w := t.get(id)
		if w.spilled && (at == 0 || at > now.UnixMilli()) {
			// Its rows are all taken or waiting for a retry: room for owed events.
			w.takeRows, w.taking = takeFor(w, planned[id]), true
			askedTake = true
			continue
		}
		if w.hinted > seq {
			continue // hinted during the claim: its snapshot may not show the new work
		}
		switch {
		case len(w.ready) > 0:
			w.due, w.dueAt = true, 0 // rows of a take wait for its slots
		case at == 0:
			w.due = false
		default:
			w.due, w.dueAt = true, at
		}
	}
	return askedTake
}

// started counts deliveries as in flight.
func (t *table) started(ds []*models.Delivery) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.startedLocked(ds)
}

func (t *table) startedLocked(claimed []*models.Delivery) {
	if len(claimed) == 0 {
		return
	}
	for _, c := range claimed {
		w := t.get(c.WebhookID)
		w.inflight++
		t.inflight++
	}
	t.inFlight(t.inflight)
}

// finished frees the slot of an attempt whose result the recorder has taken.
func (t *table) finished(webhookID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.inflight--
	if w := t.hooks[webhookID]; w != nil {
		w.inflight--
	}
	t.inFlight(t.inflight)
}

// sending notes a request going on the wire to the webhook's receiver.
func (t *table) sending(webhookID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if w := t.hooks[webhookID]; w != nil {
		if w.sending == 0 {
			w.sendingSince = time.Now()
		}
		w.sending++
	}
}

// restAfterTimeout is the longest a webhook rests after a request timed out, as a share of
// the time that request waited; each rest is a random part of it (jitter). Endpoints that
// went dead together time out together: without the rest, every timeout sent the next
// request at once, so fifty dead endpoints kept their timeouts, records, takes and new
// connections in one burst each timeout, and a healthy webhook's events published during
// the burst arrived late. A rest of up to a quarter of a timeout spreads them apart within
// a few timeouts, and costs a dead endpoint little.
const restAfterTimeout = 0.25

// adjust notes a request come back and moves the webhook's concurrency window after its
// response; jitter in [0, 1) chooses the rest after a timeout.
func (t *table) adjust(webhookID string, resp *delivery.Response, jitter float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.hooks[webhookID]
	if w == nil {
		return
	}
	now := time.Now()
	w.sending = max(0, w.sending-1)
	w.lastAnswer = now
	w.proven = resp.OK()
	if resp.TimedOut {
		w.restUntil = now.Add(time.Duration(jitter * restAfterTimeout * float64(resp.Duration))).UnixMilli()
	}
	if resp.TimedOut || resp.Status == 429 || resp.Status == 503 {
		w.limit = math.Max(1, w.limit/2)
	} else if resp.OK() {
		w.limit = math.Min(float64(t.perWebhook), w.limit+1)
		w.restUntil = 0 // an answer in time: the endpoint is back, nothing to spread
	}
}

// reserve grants a publish slots for its new deliveries (want: per webhook), which it then
// writes leased to this dispatcher (lease.go). A webhook gets them only when nothing stands
// before them: it is proven (new and failing webhooks go through claims, where the planner
// shares the slots fairly), has no due work waiting (which would otherwise be overtaken),
// no take and no backlog, and has room in its window; the global bound holds too. Granted
// slots count as in flight at once.
//
// A spilled webhook keeps up when it has room in its window and no taken work waits for a
// slot; its owed events being due does not count, as under a steady stream they always are
// (each publish owes one more while the take of the last is under way). It is granted slots
// then, and those of its new events are written leased like any other's instead of owed,
// and a take is asked for (askedTake) if none is under way: it brings what is still owed,
// and ends the spill once nothing owed is left or in flight. A spill would otherwise last as
// long as events keep coming, each of them waiting for a take. A spill on hold (startSpill)
// gets no slots until the hold is over.
func (t *table) reserve(want map[string]int, now time.Time, workers int) (granted map[string]int, askedTake bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, false
	}
	free := workers - t.inflight - t.claiming
	for id, n := range want {
		if free <= 0 {
			break
		}
		w := t.hooks[id]
		if w == nil || !w.grantable(now) {
			continue
		}
		room := min(int(w.limit), t.perWebhook) - w.inflight - w.claiming
		k := min(n, room, free)
		if k <= 0 {
			continue
		}
		if granted == nil {
			granted = make(map[string]int, len(want))
		}
		granted[id] = k
		free -= k
		w.inflight += k
		t.inflight += k
		if w.spilled && !w.taking {
			w.takeRows, w.taking = takeFor(w, room-k), true
			askedTake = true
		}
	}
	if granted != nil {
		t.grants.Add(1)
		t.inFlight(t.inflight)
	}
	return granted, askedTake
}

// grantable reports whether nothing of the webhook's own stands before a publish's new
// deliveries (reserve): it is proven, has no taken work waiting and no backlog, and, unless
// it is spilled, no due work; a spilled one must be past its hold.
func (w *webhook) grantable(now time.Time) bool {
	if !w.proven || len(w.ready) > 0 || !w.backlogSince.IsZero() {
		return false
	}
	if w.spilled {
		return now.Sub(w.spilledAt) >= w.hold
	}
	return !w.due || w.dueAt > now.UnixMilli()
}

// unstarted gives back the slots of deliveries counted in flight that could not be started.
func (t *table) unstarted(ds []*models.Delivery) {
	counts := map[string]int{}
	for _, d := range ds {
		counts[d.WebhookID]++
	}
	t.unreserve(counts)
}

// unreserve gives back slots that were counted in flight but started nothing: a grant whose
// publish failed, or deliveries that could not be started (unstarted).
func (t *table) unreserve(counts map[string]int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, n := range counts {
		t.inflight -= n
		if w := t.hooks[id]; w != nil {
			w.inflight -= n
		}
	}
	t.inFlight(t.inflight)
}

// claimFailed ends a claim for slots that returned nothing.
func (t *table) claimFailed(slots []store.WebhookQuota) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.claiming = 0
	for _, s := range slots {
		if w := t.hooks[s.WebhookID]; w != nil {
			w.claiming = 0
		}
	}
}

// closeGrants stops granting and waits for the publishes holding grants to settle.
func (t *table) closeGrants() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.grants.Wait()
}
