package conformance

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

func testPublishFansOutToEnabledSubscribersOnly(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	both := NewWebhook(t, s, "conversation.started,message.received", true)
	msgs := NewWebhook(t, s, "message.received", true)
	NewWebhook(t, s, "message.received", false) // disabled: no delivery
	NewWebhook(t, s, "conversation.started", true)

	p := Publish(t, s, "message.received", "")
	got := map[string]bool{}
	for _, d := range p.Deliveries {
		got[d.WebhookID] = true
		if d.Status != models.StatusPending {
			t.Errorf("new delivery status %s", d.Status)
		}
	}
	if len(got) != 2 || !got[both.ID] || !got[msgs.ID] {
		t.Fatalf("deliveries to %v, want exactly %s and %s", got, both.ID, msgs.ID)
	}
	ev, err := s.GetEvent(context.Background(), p.Event.ID)
	if err != nil || ev.DeliveryCount != 2 || string(ev.Payload) != string(p.Event.Payload) {
		t.Fatalf("stored event %+v err %v", ev, err)
	}
}

func testIdempotencyKeyReplaysAndRefusesOtherContent(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	NewWebhook(t, s, "message.received", true)
	first := Publish(t, s, "message.received", "key-1")
	again := Publish(t, s, "message.received", "key-1")
	if !again.Replayed || again.Event.ID != first.Event.ID || len(again.Deliveries) != 1 {
		t.Fatalf("replay: %+v", again)
	}
	et, _ := models.LookupEventType("message.received")
	_, err := s.Publish(context.Background(), []store.PublishInput{{Type: et.Name, Payload: et.Example(time.Now()),
		OccurredAt: time.Now(), IdempotencyKey: "key-1", RequestHash: "other"}})
	if !errors.Is(err, models.ErrConflict) {
		t.Fatalf("reuse with other content: err %v, want ErrConflict", err)
	}
	ds, _, _ := s.ListDeliveries(context.Background(), store.DeliveryFilter{}, models.Page{Limit: 10})
	if len(ds) != 1 {
		t.Fatalf("%d deliveries after replays, want 1", len(ds))
	}
}

func testConcurrentPublishesWithOneIdempotencyKeyMakeOneEvent(t *testing.T, b Backend) {
	dsn := b.DSN(t)
	s := b.Open(t, dsn)
	NewWebhook(t, s, "message.received", true)
	stores := []*store.Store{s}
	if b.Name == "postgres" {
		stores = append(stores, b.Open(t, dsn))
	}
	et, _ := models.LookupEventType("message.received")
	now := time.Now().UTC().Truncate(time.Second)
	ids := make(chan string, 8)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := stores[i%len(stores)].Publish(context.Background(), []store.PublishInput{{Type: et.Name,
				Payload: et.Example(now), OccurredAt: now, IdempotencyKey: "same-key", RequestHash: "h"}})
			if err != nil {
				t.Error(err)
				return
			}
			ids <- res[0].Event.ID
		}()
	}
	wg.Wait()
	close(ids)
	distinct := map[string]bool{}
	for id := range ids {
		distinct[id] = true
	}
	if len(distinct) != 1 {
		t.Fatalf("%d distinct events for one Idempotency-Key", len(distinct))
	}
	ds, _, _ := s.ListDeliveries(context.Background(), store.DeliveryFilter{}, models.Page{Limit: 100})
	if len(ds) != 1 {
		t.Fatalf("%d deliveries, want 1", len(ds))
	}
}

// Concurrent single publishes share transactions, yet each request gets its own outcome: a
// reused Idempotency-Key fails only its own request, a retry replays only its own event, and
// every accepted event is stored with its deliveries.
func testPublishOneGivesEachConcurrentRequestItsOwnOutcome(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	NewWebhook(t, s, "message.received", true)
	et, _ := models.LookupEventType(models.EventMessageReceived)
	now := time.Now().UTC().Truncate(time.Second)
	first, err := s.PublishOne(ctx, store.PublishInput{Type: et.Name, Payload: et.Example(now), OccurredAt: now,
		IdempotencyKey: "taken", RequestHash: "h1"})
	if err != nil {
		t.Fatal(err)
	}

	const n = 64
	type outcome struct {
		p   store.Published
		err error
	}
	out := make([]outcome, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := store.PublishInput{Type: et.Name, Payload: et.Example(now), OccurredAt: now}
			switch i {
			case 7: // the key of another request's content
				in.IdempotencyKey, in.RequestHash = "taken", "other"
			case 9: // a retry of the first request
				in.IdempotencyKey, in.RequestHash = "taken", "h1"
			case 11, 12: // two new requests racing with one key and one content
				in.IdempotencyKey, in.RequestHash = "fresh", "h2"
			}
			out[i].p, out[i].err = s.PublishOne(ctx, in)
		}()
	}
	wg.Wait()
	ids := map[string]bool{}
	for i, o := range out {
		switch {
		case i == 7:
			if !errors.Is(o.err, models.ErrConflict) {
				t.Errorf("request %d reused a key for other content: err %v, want a conflict", i, o.err)
			}
			continue
		case o.err != nil:
			t.Errorf("request %d: %v", i, o.err)
			continue
		case i == 9:
			if !o.p.Replayed || o.p.Event.ID != first.Event.ID {
				t.Errorf("request %d retried the first publish: replayed %v, event %s; want %s replayed", i, o.p.Replayed, o.p.Event.ID, first.Event.ID)
			}
			continue
		}
		if len(o.p.Deliveries) != 1 {
			t.Errorf("request %d fanned out to %d deliveries, want 1", i, len(o.p.Deliveries))
		}
		ids[o.p.Event.ID] = true
	}
	if out[11].p.Event == nil || out[12].p.Event == nil || out[11].p.Event.ID != out[12].p.Event.ID {
		t.Errorf("two requests with one new key made different events")
	}
	if want := n - 3; len(ids) != want {
		t.Errorf("%d distinct new events, want %d", len(ids), want)
	}
	for id := range ids {
		if _, err := s.GetEvent(ctx, id); err != nil {
			t.Errorf("event %s answered as published is not stored: %v", id, err)
		}
	}
}

func testQueueReplayWalksEveryMatchingEventInBatches(t *testing.T, b Backend) {
	ctx := context.Background()
	s := b.Open(t, b.DSN(t))
	since := time.Now().UTC().Add(-time.Minute)
	var conv []string
	for range 5 {
		conv = append(conv, Publish(t, s, "conversation.started", "").Event.ID) // before the webhook
	}
	Publish(t, s, "message.received", "")
	w := NewWebhook(t, s, "conversation.started", true)
	pending := Publish(t, s, "conversation.started", "") // already on its way: skipped
	f := store.ReplayFilter{WebhookID: w.ID, Types: w.EventList(), Since: since, Until: time.Now().UTC().Add(time.Second)}

	n, err := s.CountReplay(ctx, f)
	if err != nil || n != 5 {
		t.Fatalf("count %d, %v; want 5", n, err)
	}
	var batches []int
	queued, err := s.QueueReplay(ctx, f, 2, func(n int) { batches = append(batches, n) })
	if err != nil || queued != 5 || !slices.Equal(batches, []int{2, 2, 1}) {
		t.Fatalf("queued %d in %v, err %v", queued, batches, err)
	}
	list, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{WebhookID: w.ID}, models.Page{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range list {
		if d.Status != models.StatusPending || d.EventType != "conversation.started" {
			t.Errorf("replayed delivery %+v", d)
		}
		if d.EventID != pending.Event.ID {
			got = append(got, d.EventID)
		}
	}
	slices.Sort(got)
	slices.Sort(conv)
	if !slices.Equal(got, conv) {
		t.Fatalf("replayed %v, want %v", got, conv)
	}
	if e, _ := s.GetEvent(ctx, conv[0]); e.DeliveryCount != 1 {
		t.Errorf("delivery_count %d after replay, want 1", e.DeliveryCount)
	}
	// Everything is pending now: a second replay finds nothing.
	if n, _ := s.CountReplay(ctx, f); n != 0 {
		t.Errorf("second count %d", n)
	}
	// Only failed: none of these ever failed.
	f.OnlyFailed = true
	if n, _ := s.CountReplay(ctx, f); n != 0 {
		t.Errorf("only-failed count %d", n)
	}
	// A range that ends before the events holds none.
	early := store.ReplayFilter{WebhookID: w.ID, Types: w.EventList(), Since: since.Add(-time.Hour), Until: since}
	if n, _ := s.CountReplay(ctx, early); n != 0 {
		t.Errorf("early range count %d", n)
	}
}

func testQueueReplayStopsWhenTheWebhookIsDisabled(t *testing.T, b Backend) {
	ctx := context.Background()
	s := b.Open(t, b.DSN(t))
	since := time.Now().UTC().Add(-time.Minute)
	for range 3 {
		Publish(t, s, "message.received", "")
	}
	w := NewWebhook(t, s, "message.received", true)
	f := store.ReplayFilter{WebhookID: w.ID, Types: w.EventList(), Since: since, Until: time.Now().UTC().Add(time.Second)}
	// Disabled after the first batch, as an admin might while a long replay runs.
	queued, err := s.QueueReplay(ctx, f, 1, func(int) {
		if err := s.DisableWebhook(ctx, w.ID, "stop"); err != nil {
			t.Error(err)
		}
	})
	if !errors.Is(err, models.ErrConflict) || queued != 1 {
		t.Fatalf("queued %d, err %v; want 1 and a conflict", queued, err)
	}
	if err := s.DeleteWebhook(ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.QueueReplay(ctx, f, 1, nil); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("deleted webhook: %v", err)
	}
}

// The trace context an event is published with comes back wherever an attempt reads it (the
// publish's queued bodies, EventPayloads, GetEvent), so any process continues the trace;
// an event published without one stays NULL. A webhook keeps its trace_context setting.
func testEventsKeepTheirTraceContext(t *testing.T, b Backend) {
	ctx := context.Background()
	s := b.Open(t, b.DSN(t))
	w := NewWebhook(t, s, "message.received", true)
	if _, err := s.ModifyWebhook(ctx, w.ID, func(w *models.Webhook) error { w.TraceContext = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, err := s.WebhooksToSend(ctx, []string{w.ID}); err != nil || !got[w.ID].TraceContext {
		t.Fatalf("webhook to send %+v err %v: want trace_context kept", got[w.ID], err)
	}
	var queued []store.EventBody
	s.OnQueued(func(q store.Queued) {
		for _, b := range q.Payloads {
			queued = append(queued, b)
		}
	})
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	et, _ := models.LookupEventType("message.received")
	now := time.Now()
	out, err := s.Publish(ctx, []store.PublishInput{{Type: et.Name, Payload: et.Example(now), OccurredAt: now, TraceParent: tp},
		{Type: et.Name, Payload: et.Example(now), OccurredAt: now}})
	if err != nil {
		t.Fatal(err)
	}
	traced, plain := out[0].Event.ID, out[1].Event.ID
	if len(queued) != 2 || queued[0].TraceParent+queued[1].TraceParent != tp {
		t.Errorf("queued bodies %+v: want one with traceparent %s, one without", queued, tp)
	}
	bodies, err := s.EventPayloads(ctx, []string{traced, plain})
	if err != nil || bodies[traced].TraceParent != tp || bodies[plain].TraceParent != "" {
		t.Fatalf("event payloads %+v err %v: want %s on %s only", bodies, err, tp, traced)
	}
	if ev, err := s.GetEvent(ctx, traced); err != nil || ev.TraceParent == nil || *ev.TraceParent != tp {
		t.Fatalf("stored event %+v err %v: want traceparent %s", ev, err, tp)
	}
	if ev, err := s.GetEvent(ctx, plain); err != nil || ev.TraceParent != nil {
		t.Fatalf("stored event %+v err %v: want no traceparent", ev, err)
	}
}
