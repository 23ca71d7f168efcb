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

func claimFor(t *testing.T, s *store.Store, now time.Time, hooks ...store.HookSlots) ([]*models.Delivery, map[string]int64) {
	t.Helper()
	got, next, err := s.ClaimFor(context.Background(), store.ClaimForRequest{Owner: "test", Now: now, Lease: time.Minute, Hooks: hooks})
	if err != nil {
		t.Fatal(err)
	}
	return got, next
}

func TestClaimForTakesAtMostTheFreeSlotsAndNeverALeasedDelivery(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		s := storetest.Open(t, b.DSN(t))
		w := newWebhook(t, s, "message.received", true)
		for range 5 {
			publish(t, s, "message.received", "")
		}
		now := time.Now()
		first, next := claimFor(t, s, now, store.HookSlots{WebhookID: w.ID, Free: 2})
		if len(first) != 2 {
			t.Fatalf("claimed %d with 2 free slots, want 2", len(first))
		}
		if _, ok := next[w.ID]; ok {
			t.Errorf("next = %v after a partial claim; the webhook has more due work and must stay listed", next)
		}
		rest, next := claimFor(t, s, now, store.HookSlots{WebhookID: w.ID, Free: 10})
		if len(rest) != 3 {
			t.Fatalf("second claim took %d, want the 3 not leased", len(rest))
		}
		if at, ok := next[w.ID]; !ok || at != 0 {
			t.Errorf("next = %v once every pending delivery is leased, want %s: 0 (nothing later)", next, w.ID)
		}
		seen := map[string]bool{}
		for _, d := range append(first, rest...) {
			if seen[d.ID] {
				t.Errorf("delivery %s claimed twice", d.ID)
			}
			seen[d.ID] = true
			if d.WebhookID != w.ID || d.EventType != "message.received" || d.EventID == "" || d.LockedBy != "test" {
				t.Errorf("claimed row %+v lacks what the dispatcher needs", d)
			}
		}
		if again, _ := claimFor(t, s, now, store.HookSlots{WebhookID: w.ID, Free: 10}); len(again) != 0 {
			t.Errorf("%d leased deliveries claimed again", len(again))
		}
		// A lease that ran out (its holder died, or its result could not be recorded) is
		// claimable again.
		if later, _ := claimFor(t, s, now.Add(2*time.Minute), store.HookSlots{WebhookID: w.ID, Free: 10}); len(later) != 5 {
			t.Errorf("after the lease ran out claimed %d, want 5", len(later))
		}
	})
}

func TestClaimForReportsWhenAWebhooksNextDeliveryIsDue(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		s := storetest.Open(t, b.DSN(t))
		ctx := context.Background()
		w := newWebhook(t, s, "message.received", true)
		publish(t, s, "message.received", "")
		got, _ := claimFor(t, s, time.Now(), store.HookSlots{WebhookID: w.ID, Free: 1})
		if len(got) != 1 {
			t.Fatalf("claimed %d", len(got))
		}
		retryAt := time.Now().Add(time.Hour).UnixMilli()
		status := 500
		err := s.RecordResults(ctx, []models.Result{{DeliveryID: got[0].ID, WebhookID: w.ID, Status: models.StatusPending,
			NextAttemptAt: retryAt, Attempt: &models.Attempt{ID: models.NewID("att"), DeliveryID: got[0].ID, WebhookID: w.ID,
				Number: 1, StartedAt: time.Now().UTC(), ResponseStatus: &status, Outcome: models.OutcomeFailed}}})
		if err != nil {
			t.Fatal(err)
		}
		none, next := claimFor(t, s, time.Now(), store.HookSlots{WebhookID: w.ID, Free: 4})
		if len(none) != 0 || next[w.ID] != retryAt {
			t.Errorf("claim before the retry is due = %d rows, next %v; want none and %d", len(none), next, retryAt)
		}
		if due, _ := claimFor(t, s, time.UnixMilli(retryAt), store.HookSlots{WebhookID: w.ID, Free: 4}); len(due) != 1 || due[0].AttemptCount != 1 {
			t.Errorf("claim at the retry time = %+v, want the delivery with 1 attempt made", due)
		}
	})
}

// The isolation the dispatcher relies on: a webhook's claim reads its own queue only, so a
// healthy webhook's delivery queued behind thousands of a saturated webhook's is claimed at
// once, and what the saturated webhook holds is untouched.
func TestClaimForReachesAHealthyWebhookBehindAnotherWebhooksBacklog(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		s := storetest.Open(t, b.DSN(t))
		ctx := context.Background()
		busy := newWebhook(t, s, "conversation.started", true)
		et, _ := models.LookupEventType(models.EventConversationStarted)
		now := time.Now().UTC().Truncate(time.Second)
		in := make([]store.PublishInput, 1000)
		for i := range in {
			in[i] = store.PublishInput{Type: et.Name, Payload: et.Example(now), OccurredAt: now}
		}
		for range 3 {
			if _, err := s.Publish(ctx, in); err != nil {
				t.Fatal(err)
			}
		}
		healthy := newWebhook(t, s, "message.received", true)
		p := publish(t, s, "message.received", "")

		got, next := claimFor(t, s, time.Now(), store.HookSlots{WebhookID: healthy.ID, Free: 8})
		if len(got) != 1 || got[0].ID != p.Deliveries[0].ID {
			t.Fatalf("claimed %+v for the healthy webhook, want its one delivery", got)
		}
		if next[healthy.ID] != 0 {
			t.Errorf("next = %v, want 0 for the healthy webhook: nothing else pending", next)
		}
		pending, err := s.PendingByWebhook(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := pending[busy.ID]; !ok || len(pending) != 2 {
			t.Errorf("PendingByWebhook = %v, want both webhooks (the healthy one's delivery is leased, not done)", pending)
		}
	})
}

func TestQueuedIsToldWhatAPublishQueued(t *testing.T) {
	s := storetest.Open(t, storetest.SQLiteDSN(t))
	var mu sync.Mutex
	var got []store.Queued
	s.OnQueued(func(q store.Queued) {
		mu.Lock()
		got = append(got, q)
		mu.Unlock()
	})
	a := newWebhook(t, s, "message.received", true)
	b := newWebhook(t, s, "message.received", true)
	newWebhook(t, s, "conversation.started", true)
	p := publish(t, s, "message.received", "")
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("told %d times about one publish, want once", len(got))
	}
	q := got[0]
	if len(q.Due) != 2 || q.Due[a.ID] == 0 || q.Due[b.ID] == 0 {
		t.Errorf("Due = %v, want the two subscribed webhooks", q.Due)
	}
	if b := q.Payloads[p.Event.ID]; string(b.Payload) != string(p.Event.Payload) || b.Deliveries != p.Event.DeliveryCount {
		t.Errorf("Payloads = %v, want the event's body", q.Payloads)
	}
}

func TestSubscriberCacheSeesEveryWebhookChange(t *testing.T) {
	s := storetest.Open(t, storetest.SQLiteDSN(t))
	ctx := context.Background()
	fanout := func() int {
		t.Helper()
		return len(publish(t, s, "message.received", "").Deliveries)
	}
	a := newWebhook(t, s, "message.received", true)
	if n := fanout(); n != 1 {
		t.Fatalf("fan-out %d, want 1", n)
	}
	b := newWebhook(t, s, "message.received", true)
	if n := fanout(); n != 2 {
		t.Fatalf("after a create, fan-out %d, want 2", n)
	}
	if err := s.DisableWebhook(ctx, a.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if n := fanout(); n != 1 {
		t.Fatalf("after a disable, fan-out %d, want 1", n)
	}
	if _, err := s.ModifyWebhook(ctx, b.ID, func(w *models.Webhook) error { w.Events = "conversation.started"; return nil }); err != nil {
		t.Fatal(err)
	}
	if n := fanout(); n != 0 {
		t.Fatalf("after unsubscribing, fan-out %d, want 0", n)
	}
	if _, err := s.ModifyWebhook(ctx, a.ID, func(w *models.Webhook) error { w.Enabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteWebhook(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if n := fanout(); n != 0 {
		t.Fatalf("after a delete, fan-out %d, want 0", n)
	}
}

func TestRedeliveryOfADeliveryInFlightIsRefused(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		s := storetest.Open(t, b.DSN(t))
		w := newWebhook(t, s, "message.received", true)
		publish(t, s, "message.received", "")
		got, _ := claimFor(t, s, time.Now(), store.HookSlots{WebhookID: w.ID, Free: 1})
		if len(got) != 1 {
			t.Fatalf("claimed %d", len(got))
		}
		if _, err := s.RequeueDelivery(context.Background(), got[0].ID); !errors.Is(err, models.ErrConflict) {
			t.Errorf("requeue of a leased delivery = %v, want a conflict", err)
		}
	})
}

// The claim the dispatcher uses: concurrent claimers (goroutines of one process on SQLite,
// separate pools like separate replicas on PostgreSQL) never lease one delivery twice.
func TestConcurrentClaimForNeverSharesADelivery(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		dsn := b.DSN(t)
		s := storetest.Open(t, dsn)
		var hooks []store.HookSlots
		for range 3 {
			hooks = append(hooks, store.HookSlots{WebhookID: newWebhook(t, s, "message.received", true).ID, Free: 5})
		}
		for range 100 {
			publish(t, s, "message.received", "")
		}
		stores := []*store.Store{s}
		if b.Name == "postgres" {
			stores = append(stores, storetest.Open(t, dsn), storetest.Open(t, dsn))
		}
		var mu sync.Mutex
		seen := map[string]string{}
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				owner := string(rune('a' + i))
				for {
					got, _, err := stores[i%len(stores)].ClaimFor(context.Background(), store.ClaimForRequest{
						Owner: owner, Now: time.Now(), Lease: time.Minute, Hooks: hooks})
					if err != nil {
						t.Error(err)
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, d := range got {
						if prev, dup := seen[d.ID]; dup {
							t.Errorf("delivery %s claimed by %s and %s", d.ID, prev, owner)
						}
						seen[d.ID] = owner
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(seen) != 300 {
			t.Fatalf("claimed %d distinct deliveries, want 300", len(seen))
		}
	})
}
