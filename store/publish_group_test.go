package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

// Concurrent single publishes share transactions, yet each request gets its own outcome: a
// reused Idempotency-Key fails only its own request, a retry replays only its own event, and
// every accepted event is stored with its deliveries.
func TestPublishOneGivesEachConcurrentRequestItsOwnOutcome(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		s := storetest.Open(t, b.DSN(t))
		ctx := context.Background()
		newWebhook(t, s, "message.received", true)
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
	})
}

func TestPublishOneHonoursACancelledRequest(t *testing.T) {
	s := storetest.Open(t, storetest.SQLiteDSN(t))
	newWebhook(t, s, "message.received", true)
	et, _ := models.LookupEventType(models.EventMessageReceived)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	now := time.Now().UTC()
	if _, err := s.PublishOne(ctx, store.PublishInput{Type: et.Name, Payload: et.Example(now), OccurredAt: now}); !errors.Is(err, context.Canceled) {
		t.Fatalf("publish with a cancelled context = %v, want context.Canceled", err)
	}
	list, _, err := s.ListEvents(context.Background(), "", models.Page{Limit: 10})
	if err != nil || len(list) != 0 {
		t.Errorf("events after a cancelled publish: %d, %v; want none", len(list), err)
	}
}
