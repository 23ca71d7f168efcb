// Package delivery sends events to webhooks: it claims due deliveries from the outbox,
// signs and sends them with a bounded number in flight, records every attempt and schedules
// retries. Read Dispatcher.run → attempt → recorder to follow one delivery.
package delivery

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/models"
)

// Config configures a Dispatcher.
type Config struct {
	Store         *models.Store
	Sender        *Sender
	Workers       int // deliveries in flight in total
	PerWebhook    int // most deliveries in flight to one webhook
	RetrySchedule []time.Duration
	Lease         time.Duration // how long a claim holds a delivery before others may take it
	Logger        *slog.Logger
	Jitter        func() float64 // in [0,1); injectable for tests
	Metrics       Observer       // optional
}

// Observer is told about what the dispatcher does (Prometheus metrics implement it).
type Observer interface {
	Attempted(webhookID string, resp *Response, status string)
	InFlight(n int)
}

// DefaultWorkers is the in-flight bound for this machine: deliveries mostly wait on the
// network, so it is far above the core count.
func DefaultWorkers() int { return max(64, 64*runtime.NumCPU()) }

// Dispatcher runs the delivery loop.
type Dispatcher struct {
	cfg      Config
	store    *models.Store
	owner    string
	wake     chan struct{}
	results  chan models.Result
	payloads *payloadCache

	mu       sync.Mutex
	inflight int
	hooks    map[string]*hookState

	sends sync.WaitGroup
}

// hookState is one webhook's concurrency window: additive increase on success,
// multiplicative decrease when it answers 429/503 or times out, so a struggling receiver
// gets fewer requests instead of being hammered.
type hookState struct {
	inflight int
	limit    float64
}

// New creates a dispatcher.
func New(cfg Config) *Dispatcher {
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers()
	}
	if cfg.PerWebhook <= 0 {
		cfg.PerWebhook = max(4, cfg.Workers/4)
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 2*cfg.Sender.timeout + 30*time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Jitter == nil {
		cfg.Jitter = rand.Float64
	}
	return &Dispatcher{
		cfg:      cfg,
		store:    cfg.Store,
		owner:    models.NewID("proc"),
		wake:     make(chan struct{}, 1),
		results:  make(chan models.Result, 4096),
		payloads: newPayloadCache(20000),
		hooks:    map[string]*hookState{},
	}
}

// Notify wakes the dispatcher: new deliveries are due. It never blocks.
func (d *Dispatcher) Notify() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Remember offers freshly published body bytes so the first attempt need not read them back.
func (d *Dispatcher) Remember(eventID string, payload []byte) { d.payloads.put(eventID, payload) }

// Run claims and sends deliveries until ctx is done, then waits for in-flight attempts to
// finish (each bounded by the delivery timeout), records them, and returns.
func (d *Dispatcher) Run(ctx context.Context) error {
	if !d.store.IsPostgres() {
		// SQLite is one process's file: whatever is leased belongs to a previous run of this
		// process that crashed, so take it back now rather than after the lease.
		if err := d.store.ReleaseAllLeases(ctx); err != nil {
			return err
		}
	}
	// Other replicas announce new work over LISTEN/NOTIFY (PostgreSQL); a no-op on SQLite.
	go d.store.Listen(ctx, models.ChannelWake, func(string) { d.Notify() })
	recorderDone := make(chan struct{})
	go func() { defer close(recorderDone); d.recorder() }()

	// In-flight attempts run on their own context: shutdown lets them finish rather than
	// turning every one into a failure to retry.
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()

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
			d.sends.Wait()
			close(d.results)
			<-recorderDone
			return nil
		case <-d.wake:
		case <-timer.C:
		}
	}
}

// claimAndSend leases what fits in the free slots and starts an attempt for each. It returns
// how long to wait before looking again when nothing else wakes the loop.
func (d *Dispatcher) claimAndSend(ctx, sendCtx context.Context) time.Duration {
	const fallback = time.Second
	for ctx.Err() == nil {
		d.mu.Lock()
		free := d.cfg.Workers - d.inflight
		exclude := make([]string, 0)
		for id, h := range d.hooks {
			if h.inflight >= int(h.limit) {
				exclude = append(exclude, id)
			}
		}
		d.mu.Unlock()
		if free <= 0 {
			return fallback // a finishing attempt wakes us
		}
		now := time.Now()
		claimed, err := d.store.ClaimDue(ctx, models.ClaimRequest{
			Owner: d.owner, Now: now, Lease: d.cfg.Lease, Limit: min(free, 500),
			Exclude: exclude, PerHook: d.freeSlots,
		})
		if err != nil {
			if ctx.Err() == nil {
				d.cfg.Logger.Error("claim deliveries", "err", err)
			}
			return fallback
		}
		if len(claimed) == 0 {
			next, err := d.store.NextDue(ctx, now, exclude)
			if err != nil || next == 0 {
				return fallback
			}
			return min(fallback, max(time.Millisecond, time.Until(time.UnixMilli(next))))
		}
		d.start(ctx, sendCtx, claimed)
	}
	return fallback
}

func (d *Dispatcher) freeSlots(webhookID string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.hooks[webhookID]
	if h == nil {
		return d.cfg.PerWebhook
	}
	return int(h.limit) - h.inflight
}

// start loads what the claimed deliveries need and launches their attempts.
func (d *Dispatcher) start(ctx, sendCtx context.Context, claimed []*models.Delivery) {
	hookIDs := make([]string, 0, len(claimed))
	var missing []string
	for _, c := range claimed {
		hookIDs = append(hookIDs, c.WebhookID)
		if d.payloads.get(c.EventID) == nil {
			missing = append(missing, c.EventID)
		}
	}
	webhooks, err := d.store.GetWebhooks(ctx, hookIDs)
	if err == nil && len(missing) > 0 {
		var events map[string]*models.Event
		events, err = d.store.EventPayloads(ctx, missing)
		for id, e := range events {
			d.payloads.put(id, e.Payload)
		}
	}
	if err != nil {
		d.cfg.Logger.Error("load claimed deliveries", "err", err)
		ids := make([]string, len(claimed))
		for i, c := range claimed {
			ids[i] = c.ID
		}
		_ = d.store.ReleaseLeases(context.WithoutCancel(ctx), ids)
		return
	}
	d.mu.Lock()
	for _, c := range claimed {
		h := d.hooks[c.WebhookID]
		if h == nil {
			h = &hookState{limit: float64(d.cfg.PerWebhook)}
			d.hooks[c.WebhookID] = h
		}
		h.inflight++
		d.inflight++
	}
	d.observeInFlight()
	d.mu.Unlock()
	for _, c := range claimed {
		d.sends.Add(1)
		go d.attempt(sendCtx, c, webhooks[c.WebhookID], d.payloads.get(c.EventID))
	}
}

// attempt sends one delivery and hands the result to the recorder.
func (d *Dispatcher) attempt(ctx context.Context, dl *models.Delivery, wh *models.Webhook, payload []byte) {
	defer d.sends.Done()
	n := dl.AttemptCount + 1
	var res models.Result
	switch {
	case wh == nil || !wh.Enabled:
		// Deleted or disabled after the claim: nothing to send; the delivery is cancelled.
		res = models.Result{DeliveryID: dl.ID, WebhookID: dl.WebhookID, Status: models.StatusCancelled}
	case payload == nil:
		// The event was pruned or deleted under the delivery: nothing can be sent.
		res = models.Result{DeliveryID: dl.ID, WebhookID: dl.WebhookID, Status: models.StatusFailed}
		d.cfg.Logger.Error("event body missing", "delivery", dl.ID, "event", dl.EventID)
	default:
		resp := d.cfg.Sender.Send(ctx, Request{Webhook: wh, MessageID: dl.EventID, EventType: dl.EventType,
			Body: BodyFor(wh.Format, payload), Attempt: n})
		dec := Decide(resp, n, d.cfg.RetrySchedule, d.cfg.Jitter())
		res = models.Result{
			Attempt:    attemptRecord(dl.ID, wh.ID, n, resp, false),
			DeliveryID: dl.ID, WebhookID: wh.ID, Status: dec.Status, Succeeded: resp.OK(),
			DisableReason: dec.Disable,
		}
		if dec.Status == models.StatusPending {
			res.NextAttemptAt = time.Now().Add(dec.Delay).UnixMilli()
		}
		d.adjust(wh.ID, resp)
		if d.cfg.Metrics != nil {
			d.cfg.Metrics.Attempted(wh.ID, resp, dec.Status)
		}
	}
	d.mu.Lock()
	d.inflight--
	if h := d.hooks[dl.WebhookID]; h != nil {
		h.inflight--
	}
	d.observeInFlight()
	d.mu.Unlock()
	d.results <- res
	d.Notify() // a slot is free
}

// observeInFlight reports the in-flight count; called with d.mu held so that concurrent
// updates reach the gauge in the order they happened.
func (d *Dispatcher) observeInFlight() {
	if d.cfg.Metrics != nil {
		d.cfg.Metrics.InFlight(d.inflight)
	}
}

// adjust moves a webhook's concurrency window after a response.
func (d *Dispatcher) adjust(webhookID string, resp *Response) {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.hooks[webhookID]
	if h == nil {
		return
	}
	if resp.TimedOut || resp.Status == 429 || resp.Status == 503 {
		h.limit = math.Max(1, h.limit/2)
	} else if resp.OK() {
		h.limit = math.Min(float64(d.cfg.PerWebhook), h.limit+1)
	}
}

// recorder writes results in batches: whatever accumulated while the previous transaction
// ran goes into the next one, so under load one commit covers many attempts.
func (d *Dispatcher) recorder() {
	batch := make([]models.Result, 0, 512)
	for first := range d.results {
		batch = append(batch[:0], first)
	drain:
		for len(batch) < 1000 {
			select {
			case r, ok := <-d.results:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		d.flush(batch)
	}
}

func (d *Dispatcher) flush(batch []models.Result) {
	// Recording must not be abandoned on shutdown, or finished attempts would be repeated.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	for try := 0; try < 5; try++ {
		if err = d.store.RecordResults(ctx, batch); err == nil {
			break
		}
		time.Sleep(time.Duration(try+1) * 100 * time.Millisecond)
	}
	if err != nil {
		// The leases expire and the deliveries are attempted again: at-least-once holds.
		d.cfg.Logger.Error("record attempts", "err", err, "count", len(batch))
	}
	d.Notify()
}

// attemptRecord turns a response into the attempt log row.
func attemptRecord(deliveryID, webhookID string, n int, resp *Response, test bool) *models.Attempt {
	a := &models.Attempt{
		ID: models.NewID("att"), DeliveryID: deliveryID, WebhookID: webhookID, Number: n,
		StartedAt: resp.StartedAt, DurationMs: resp.Duration.Milliseconds(),
		RequestHeaders: headerJSON(resp.RequestHeaders), ResponseHeaders: headerJSON(resp.Headers),
		ResponseBody: resp.Body, Outcome: models.OutcomeFailed, Test: test,
	}
	if resp.Status != 0 {
		st := resp.Status
		a.ResponseStatus = &st
	}
	if resp.OK() {
		a.Outcome = models.OutcomeSucceeded
	} else {
		e := resp.ErrorText()
		a.Error = &e
	}
	return a
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
	resp := d.cfg.Sender.Send(ctx, Request{Webhook: wh, MessageID: ev.ID, EventType: eventType,
		Body: BodyFor(wh.Format, body), Attempt: 1, Test: true})
	dl := &models.Delivery{ID: models.NewID("dlv"), EventID: ev.ID, WebhookID: wh.ID, EventType: eventType,
		Status: models.StatusFailed, AttemptCount: 1, Test: true, CreatedAt: now, UpdatedAt: now}
	a := attemptRecord(dl.ID, wh.ID, 1, resp, true)
	if resp.OK() {
		dl.Status = models.StatusSucceeded
	}
	dl.LastStatusCode, dl.LastError = a.ResponseStatus, a.Error
	if err := d.store.RecordTest(context.WithoutCancel(ctx), ev, dl, a); err != nil {
		return nil, err
	}
	return a, nil
}

// payloadCache keeps recent event bodies so a fan-out reads each from the database once and
// every webhook's attempt shares the same bytes.
type payloadCache struct {
	mu   sync.Mutex
	m    map[string][]byte
	ring []string
	next int
}

func newPayloadCache(n int) *payloadCache {
	return &payloadCache{m: make(map[string][]byte, n), ring: make([]string, n)}
}

func (c *payloadCache) get(id string) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[id]
}

func (c *payloadCache) put(id string, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[id]; ok {
		return
	}
	if old := c.ring[c.next]; old != "" {
		delete(c.m, old)
	}
	c.ring[c.next] = id
	c.next = (c.next + 1) % len(c.ring)
	c.m[id] = b
}
