package engine

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookrelay/hookrelay/delivery"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/tracing"
)

// errEventMissing fails the send span of a delivery whose event is gone.
var errEventMissing = errors.New("event body missing")

// Dispatcher runs the delivery loop: it plans, claims and starts attempts (this file), keeps
// one state per webhook in its table (webhook.go) planned by a pure planner (planner.go),
// takes what spilled webhooks owe (spill.go), and hands results to the recorder
// (recorder.go).
type Dispatcher struct {
	cfg      Config
	store    Queue
	owner    string
	canSpill bool
	wake     chan struct{}
	payloads *payloadCache
	table    *table
	spill    *spiller
	rec      *recorder
	// rescanAt is when the next periodic rescan is due (unix ns; 0: at once). Only the loop
	// reads it; anyone may make it due at once.
	rescanAt atomic.Int64
	// handed holds deliveries publishes leased to this dispatcher (lease.go), until the loop
	// starts them; their slots are counted already.
	handMu sync.Mutex
	handed []*models.Delivery

	sends   sync.WaitGroup
	senders *senders
	// inflight mirrors the table's total in flight, for readers outside the loop (Busy), and
	// idleSince is when it last fell to zero (unix ns).
	inflight  atomic.Int64
	idleSince atomic.Int64
}

// busyTail is how long the dispatcher still counts as busy after its last attempt ended.
// Between two claims, or while a publish commits, nothing may be in flight for a moment;
// work that yields to deliveries would rush into each such gap and be in the way when they
// resume.
const busyTail = time.Second

// noteInFlight learns the total in flight; the table calls it, in order, on every change.
func (d *Dispatcher) noteInFlight(n int) {
	d.inflight.Store(int64(n))
	if n == 0 {
		d.idleSince.Store(time.Now().UnixNano())
	}
	if d.cfg.Metrics != nil {
		d.cfg.Metrics.InFlight(n)
	}
}

// Busy reports whether attempts are in flight, or were within busyTail: work that the
// inspector's captures yield to.
func (d *Dispatcher) Busy() bool {
	return d.inflight.Load() > 0 || time.Now().UnixNano()-d.idleSince.Load() < int64(busyTail)
}

// rescanEvery is how often the dispatcher looks for due work it was not told about: leases
// that expired after a failed record, and, on PostgreSQL, work of other replicas.
const rescanEvery = time.Second

// New creates a dispatcher.
func New(cfg Config) *Dispatcher {
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers()
	}
	if cfg.PerWebhook <= 0 {
		cfg.PerWebhook = max(4, cfg.Workers/4)
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 2*cfg.Sender.Timeout() + 30*time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Jitter == nil {
		cfg.Jitter = rand.Float64
	}
	d := &Dispatcher{
		cfg:      cfg,
		store:    cfg.Store,
		owner:    models.NewID("proc"),
		canSpill: cfg.Store.SpillSupported(),
		wake:     make(chan struct{}, 1),
		payloads: newPayloadCache(payloadCacheBytes),
		senders:  newSenders(),
	}
	d.table = newTable(cfg.PerWebhook, d.noteInFlight)
	d.spill = newSpiller(cfg.Store, d.table, d.owner, cfg.Lease, cfg.Logger, d.nudge, d.requestRescan)
	d.rec = newRecorder(cfg.Store, d.recorded, d.lost)
	return d
}

// queued learns what the store just queued: the bodies of fresh events, and where work is.
func (d *Dispatcher) queued(q store.Queued) {
	for id, b := range q.Payloads {
		d.payloads.put(id, b.Payload, b.TraceParent, b.Deliveries)
	}
	if len(q.Spilled) > 0 {
		d.table.spilledByPublish(q.Spilled)
		for _, id := range q.Spilled {
			d.cfg.Logger.Info("webhook spilled: its new events wait without delivery rows until it catches up", "webhook", id)
		}
	}
	d.hint(q.Due)
	if d.cfg.Changes != nil {
		ids := make([]string, 0, len(q.Due)+len(q.Spilled))
		for id := range q.Due {
			ids = append(ids, id)
		}
		d.cfg.Changes.WebhooksChanged(append(ids, q.Spilled...))
	}
}

// hint records that webhooks may have deliveries due at the given times (unix ms) and wakes
// the loop.
func (d *Dispatcher) hint(due map[string]int64) {
	d.table.hint(due)
	d.nudge()
}

// requestRescan makes the next loop look for due work everywhere.
func (d *Dispatcher) requestRescan() {
	d.rescanAt.Store(0)
	d.nudge()
}

// nudge wakes the claim loop: new deliveries may be due. It never blocks (one pending wake-up is enough).
func (d *Dispatcher) nudge() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run claims and sends deliveries until ctx is done, then waits for in-flight attempts to
// finish (each bounded by the delivery timeout), records them, and returns.
func (d *Dispatcher) Run(ctx context.Context) error {
	if !d.store.IsPostgres() {
		// SQLite is one process's file: whatever is leased belongs to a previous run of this
		// process that crashed, so take it back now rather than after the lease.
		if err := d.store.ReleaseAllLeases(ctx); err != nil {
			if ctx.Err() != nil {
				// Stopped before it began: nothing was claimed, so there is nothing to drain.
				return nil
			}
			return err
		}
	}
	// The spilled webhooks a previous run left are found by the first loop's rescan, which
	// is due at once.
	d.store.OnQueued(d.queued)
	d.store.LeaseAtPublish(lessee{d})
	if d.store.SpillSupported() {
		d.store.SpillWhenPending(spillThreshold(d.store.IsPostgres()))
	}
	// Other replicas announce new work over LISTEN/NOTIFY (PostgreSQL); a no-op on SQLite.
	go d.store.Listen(ctx, store.ChannelWake, func(payload string) {
		if payload == "" {
			d.requestRescan()
			return
		}
		now := time.Now().UnixMilli()
		due := map[string]int64{}
		for _, id := range strings.Split(payload, ",") {
			due[id] = now
		}
		d.hint(due)
	})
	recorderDone := make(chan struct{})
	go func() { defer close(recorderDone); d.rec.run() }()

	// In-flight attempts run on their own context: shutdown lets them finish rather than
	// turning every one into a failure to retry.
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()
	spillerDone := make(chan struct{})
	go func() { defer close(spillerDone); d.spill.loop(ctx) }()

	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		wait := d.claimAndSend(ctx, sendCtx)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			// Publishes holding slots commit or fail first; what they leased is sent like
			// any delivery in flight.
			d.store.LeaseAtPublish(nil)
			d.table.closeGrants()
			if h := d.takeHanded(); len(h) > 0 {
				d.start(context.WithoutCancel(ctx), sendCtx, h, time.Now(), true)
			}
			<-spillerDone // a take under way ends first
			// What takes brought and no attempt started is given back to the store, which
			// takes it again from the stored position: the store outlives this dispatcher in
			// tests and embedders, and its bookkeeping would otherwise hold those events as
			// in flight, never to be taken again, behind a spill that could not end.
			d.spill.abandon(d.table.withReady())
			d.sends.Wait()
			d.senders.close()
			d.rec.close()
			<-recorderDone
			return nil
		case <-d.wake:
		case <-timer.C:
		}
	}
}

// claimAndSend starts what fits in the free slots: the ready work of spilled webhooks, then
// what it leases from the store. It returns how long to wait before looking again when
// nothing else wakes the loop.
func (d *Dispatcher) claimAndSend(ctx, sendCtx context.Context) time.Duration {
	for ctx.Err() == nil {
		if h := d.takeHanded(); len(h) > 0 {
			d.start(ctx, sendCtx, h, time.Now(), true)
		}
		d.rescanIfDue(ctx)
		p, ready, seq := d.table.plan(time.Now(), d.cfg.Workers, d.canSpill)
		if d.canSpill {
			// Applied by the next publish, the only writer of the rows a spill saves.
			d.store.RequestSpill(p.Spill)
		}
		if len(ready) == 0 && len(p.Claim) == 0 {
			wait := min(p.Wait, time.Until(time.Unix(0, d.rescanAt.Load())))
			return max(wait, time.Millisecond)
		}
		now := time.Now()
		if len(ready) > 0 {
			d.start(ctx, sendCtx, ready, now, true)
		}
		if len(p.Claim) == 0 {
			continue
		}
		claimed, next, err := d.claim(ctx, store.ClaimForRequest{Owner: d.owner, Now: now, Lease: d.cfg.Lease, Hooks: p.Claim})
		if err != nil {
			d.table.claimFailed(p.Claim)
			if ctx.Err() == nil {
				d.cfg.Logger.Error("claim deliveries", "err", err)
			}
			return time.Second
		}
		if d.table.claimed(p.Claim, claimed, next, now, seq) {
			d.spill.wake()
		}
		if len(claimed) == 0 {
			// Only rows released while the claim read (they show up at the next look).
			return time.Millisecond
		}
		d.start(ctx, sendCtx, claimed, now, true)
	}
	return time.Second
}

// claimTimeout bounds a claim that shutdown does not interrupt.
const claimTimeout = 10 * time.Second

// claim runs one claim to its end even when shutdown begins meanwhile: on PostgreSQL the
// statement may have leased its rows on the server when a cancel cuts the answer short, and
// the rows it leased would then wait out their lease instead of being sent now.
func (d *Dispatcher) claim(ctx context.Context, r store.ClaimForRequest) ([]*models.Delivery, map[string]int64, error) {
	claimCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimTimeout)
	defer cancel()
	return d.store.ClaimFor(claimCtx, r)
}

// rescanIfDue looks for pending work in every webhook's queue once a rescan is due: work
// that no hint announced (leases that ran out after a failed record; on PostgreSQL, what
// other replicas queued or left behind).
func (d *Dispatcher) rescanIfDue(ctx context.Context) {
	now := time.Now()
	if now.UnixNano() < d.rescanAt.Load() {
		return
	}
	// A rescan asked for meanwhile is served by the reads below, which follow it.
	d.rescanAt.Store(now.Add(rescanEvery).UnixNano())
	pending, err := d.store.PendingByWebhook(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.cfg.Logger.Error("look for due deliveries", "err", err)
		}
		return
	}
	// Spills are announced as they happen; reading them here too means a missed announcement
	// delays a webhook's owed events by one rescan at most, never strands them.
	spilled, err := d.store.SpilledWebhooks(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.cfg.Logger.Error("look for spilled webhooks", "err", err)
		}
	}
	d.table.rescanned(pending, spilled)
}

// start loads what the claimed deliveries need and launches their attempts; claimedAt is
// when their claim began (the claim span's start). counted: the table counts them in flight
// already (a claim's, or a publish's lease); otherwise start counts them.
func (d *Dispatcher) start(ctx, sendCtx context.Context, claimed []*models.Delivery, claimedAt time.Time, counted bool) {
	hookIDs := make([]string, 0, len(claimed))
	// The bodies are held here for the attempts: the shared cache may evict one before
	// its attempt starts.
	bodies := make(map[string]store.EventBody, len(claimed))
	uses := make(map[string]int, len(claimed)) // deliveries of each event in this claim
	seenHook := make(map[string]bool, 4)
	for _, c := range claimed {
		if !seenHook[c.WebhookID] {
			// Once each: the driver binds an IN list in time quadratic in its length.
			seenHook[c.WebhookID] = true
			hookIDs = append(hookIDs, c.WebhookID)
		}
		uses[c.EventID]++
	}
	var missing []string
	for id, n := range uses {
		if b, tp := d.payloads.take(id, n); b != nil {
			bodies[id] = store.EventBody{Payload: b, TraceParent: tp}
		} else {
			missing = append(missing, id)
		}
	}
	webhooks, err := d.store.WebhooksToSend(ctx, hookIDs)
	if err == nil && len(missing) > 0 {
		var events map[string]store.EventBody
		events, err = d.store.EventPayloads(ctx, missing)
		for id, b := range events {
			bodies[id] = b
			// The rest of the fan-out is likely close behind (the other webhooks' cursors).
			d.payloads.put(id, b.Payload, b.TraceParent, b.Deliveries-uses[id])
		}
	}
	if err != nil {
		d.cfg.Logger.Error("load claimed deliveries", "err", err)
		var ids, owedHooks []string
		for _, c := range claimed {
			if c.Owed != nil {
				owedHooks = append(owedHooks, c.WebhookID)
			} else {
				ids = append(ids, c.ID)
			}
		}
		_ = d.store.ReleaseLeases(context.WithoutCancel(ctx), ids)
		d.spill.abandon(owedHooks)
		if counted {
			d.table.unstarted(claimed)
		}
		return
	}
	if !counted {
		d.table.started(claimed)
	}
	for _, c := range claimed {
		d.sends.Add(1)
		b, wh := bodies[c.EventID], webhooks[c.WebhookID]
		d.senders.do(func() { d.attempt(sendCtx, c, wh, b.Payload, b.TraceParent, claimedAt) })
	}
}

// attempt sends one delivery and hands the result to the recorder. traceParent is the
// event's stored trace context: the attempt's spans continue it.
func (d *Dispatcher) attempt(ctx context.Context, dl *models.Delivery, wh *models.Webhook, payload []byte, traceParent string, claimedAt time.Time) {
	defer d.sends.Done()
	n := dl.AttemptCount + 1
	var res models.Result
	span := d.cfg.Tracer.StartAttempt(traceParent, claimedAt,
		tracing.Delivery{DeliveryID: dl.ID, WebhookID: dl.WebhookID, EventID: dl.EventID, Attempt: n})
	sendTrace := span.TraceParent() // the receiver's header and the record span's parent
	switch {
	case wh == nil || !wh.Enabled:
		// Deleted or disabled after the claim: nothing to send; the delivery is cancelled.
		res = models.Result{DeliveryID: dl.ID, WebhookID: dl.WebhookID, EventID: dl.EventID, Status: models.StatusCancelled}
		span.End(0, nil, res.Status)
	case payload == nil:
		// The event was pruned or deleted under the delivery: nothing can be sent.
		res = models.Result{DeliveryID: dl.ID, WebhookID: dl.WebhookID, EventID: dl.EventID, Status: models.StatusFailed}
		d.cfg.Logger.Error("event body missing", "delivery", dl.ID, "event", dl.EventID)
		span.End(0, errEventMissing, res.Status)
	default:
		req := delivery.Request{Webhook: wh, MessageID: dl.EventID, EventType: dl.EventType,
			Body: delivery.BodyFor(wh.Format, payload), Attempt: n}
		if wh.TraceContext {
			req.TraceParent = sendTrace
		}
		d.table.sending(wh.ID)
		resp := d.cfg.Sender.Send(ctx, req)
		dec := delivery.Decide(resp, n, d.cfg.RetrySchedule, d.cfg.Jitter())
		res = models.Result{
			Attempt:    delivery.NewAttempt(dl.ID, wh, n, resp, false),
			DeliveryID: dl.ID, WebhookID: wh.ID, EventID: dl.EventID, Status: dec.Status, Succeeded: resp.OK(),
			DisableReason: dec.Disable,
		}
		if dec.Status == models.StatusPending {
			res.NextAttemptAt = time.Now().Add(dec.Delay).UnixMilli()
		}
		span.End(resp.Status, resp.Err, dec.Status)
		d.table.adjust(wh.ID, resp, d.cfg.Jitter())
		if d.cfg.Metrics != nil {
			d.cfg.Metrics.Attempted(wh.ID, resp, dec.Status)
		}
	}
	if dl.Owed != nil {
		res.Owed, res.EventID, res.EventType, res.TakenAt = dl.Owed, dl.EventID, dl.EventType, dl.CreatedAt
	}
	if sendTrace != "" {
		res.Traced = &models.TracedResult{SendSpan: sendTrace, HandedAt: time.Now()}
	}
	// The slot is freed once the recorder has taken the result (see resultBuffer).
	d.rec.add(res)
	d.table.finished(dl.WebhookID)
	d.nudge() // a slot is free
}

// recorded hears of a batch written: retries it scheduled are due work.
func (d *Dispatcher) recorded(batch []models.Result) {
	retries := map[string]int64{}
	for _, r := range batch {
		if r.Traced != nil {
			d.cfg.Tracer.Recorded(r.Traced.SendSpan, r.Traced.HandedAt, len(batch), nil)
		}
		if r.Status == models.StatusPending {
			if at, ok := retries[r.WebhookID]; !ok || r.NextAttemptAt < at {
				retries[r.WebhookID] = r.NextAttemptAt
			}
		}
	}
	d.hint(retries) // also wakes the loop: the recorded rows are claimable again
	if d.cfg.Changes != nil {
		d.cfg.Changes.DeliveriesRecorded(batch)
	}
}

// lost hears of a batch the recorder gave up on. The leases expire and the deliveries are
// attempted again: at-least-once holds. Those taken from a spill are taken again from its
// stored position.
func (d *Dispatcher) lost(batch []models.Result, err error) {
	d.cfg.Logger.Error("record attempts", "err", err, "count", len(batch))
	var owedHooks []string
	for _, r := range batch {
		if r.Traced != nil {
			d.cfg.Tracer.Recorded(r.Traced.SendSpan, r.Traced.HandedAt, len(batch), err)
		}
		if r.Owed != nil {
			owedHooks = append(owedHooks, r.WebhookID)
		}
	}
	d.spill.abandon(owedHooks)
	d.nudge()
}

// SendTest performs the test action: the seed's sample payload for eventType with fresh
// timestamps, sent now with X-Webhook-Test: true, whether or not the webhook is enabled, and
// recorded in the delivery log as a test.
func (d *Dispatcher) SendTest(ctx context.Context, wh *models.Webhook, eventType string) (*models.Attempt, error) {
	et, ok := models.LookupEventType(eventType)
	if !ok {
		return nil, errors.New("unknown event type")
	}
	now := time.Now().UTC()
	body := et.Example(now)
	ev := &models.Event{ID: models.NewID("evt"), Type: eventType, Payload: body, OccurredAt: now.Truncate(time.Second),
		Test: true, DeliveryCount: 1, CreatedAt: now}
	resp := d.cfg.Sender.Send(ctx, delivery.Request{Webhook: wh, MessageID: ev.ID, EventType: eventType,
		Body: delivery.BodyFor(wh.Format, body), Attempt: 1, Test: true})
	dl := &models.Delivery{ID: models.NewID("dlv"), EventID: ev.ID, WebhookID: wh.ID, EventType: eventType,
		Status: models.StatusFailed, AttemptCount: 1, Test: true, CreatedAt: now, UpdatedAt: now}
	a := delivery.NewAttempt(dl.ID, wh, 1, resp, true)
	if resp.OK() {
		dl.Status = models.StatusSucceeded
	}
	dl.LastStatusCode, dl.LastError = a.ResponseStatus, a.Error
	if err := d.store.RecordTest(context.WithoutCancel(ctx), ev, dl, a); err != nil {
		return nil, err
	}
	return a, nil
}
