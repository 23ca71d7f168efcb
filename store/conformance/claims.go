package conformance

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

func testClaimForTakesAtMostTheFreeSlotsAndNeverALeasedDelivery(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	w := NewWebhook(t, s, "message.received", true)
	for range 5 {
		Publish(t, s, "message.received", "")
	}
	now := time.Now()
	first, next := ClaimFor(t, s, now, store.WebhookQuota{WebhookID: w.ID, Free: 2})
	if len(first) != 2 {
		t.Fatalf("claimed %d with 2 free slots, want 2", len(first))
	}
	if _, ok := next[w.ID]; ok {
		t.Errorf("next = %v after a partial claim; the webhook has more due work and must stay listed", next)
	}
	rest, next := ClaimFor(t, s, now, store.WebhookQuota{WebhookID: w.ID, Free: 10})
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
	if again, _ := ClaimFor(t, s, now, store.WebhookQuota{WebhookID: w.ID, Free: 10}); len(again) != 0 {
		t.Errorf("%d leased deliveries claimed again", len(again))
	}
	// A lease that ran out (its holder died, or its result could not be recorded) is
	// claimable again.
	if later, _ := ClaimFor(t, s, now.Add(2*time.Minute), store.WebhookQuota{WebhookID: w.ID, Free: 10}); len(later) != 5 {
		t.Errorf("after the lease ran out claimed %d, want 5", len(later))
	}
}

func testClaimForReportsWhenAWebhooksNextDeliveryIsDue(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	w := NewWebhook(t, s, "message.received", true)
	Publish(t, s, "message.received", "")
	got, _ := ClaimFor(t, s, time.Now(), store.WebhookQuota{WebhookID: w.ID, Free: 1})
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
	none, next := ClaimFor(t, s, time.Now(), store.WebhookQuota{WebhookID: w.ID, Free: 4})
	if len(none) != 0 || next[w.ID] != retryAt {
		t.Errorf("claim before the retry is due = %d rows, next %v; want none and %d", len(none), next, retryAt)
	}
	if due, _ := ClaimFor(t, s, time.UnixMilli(retryAt), store.WebhookQuota{WebhookID: w.ID, Free: 4}); len(due) != 1 || due[0].AttemptCount != 1 {
		t.Errorf("claim at the retry time = %+v, want the delivery with 1 attempt made", due)
	}
}

// The isolation the dispatcher relies on: a webhook's claim reads its own queue only, so a
// healthy webhook's delivery queued behind thousands of a saturated webhook's is claimed at
// once, and what the saturated webhook holds is untouched.
func testClaimForReachesAHealthyWebhookBehindAnotherWebhooksBacklog(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	busy := NewWebhook(t, s, "conversation.started", true)
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
	healthy := NewWebhook(t, s, "message.received", true)
	p := Publish(t, s, "message.received", "")

	got, next := ClaimFor(t, s, time.Now(), store.WebhookQuota{WebhookID: healthy.ID, Free: 8})
	if len(got) != 1 || got[0].ID != p.Deliveries[0].ID {
		t.Fatalf("claimed %+v for the healthy webhook, want its one delivery", got)
	}
	if next[healthy.ID] != 0 {
		t.Errorf("next = %v, want 0 for the healthy webhook: nothing else pending", next)
	}
	// A lease written in the row (PostgreSQL) keeps its delivery out of the rescan while it
	// holds: no claim could take it. SQLite's leases are in its claim's memory, and its rescan
	// reports the row.
	pending, err := s.PendingByWebhook(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, healthyListed := pending[healthy.ID]
	if _, ok := pending[busy.ID]; !ok || healthyListed != (b.Name == "sqlite") {
		t.Errorf("PendingByWebhook = %v while the healthy webhook's delivery is leased, want %s, and the healthy one on SQLite only", pending, busy.ID)
	}
	// Once the lease has run out (its holder died), the rescan finds the delivery again.
	if err := s.ExecSQL(ctx, `UPDATE deliveries SET locked_until = ? WHERE id = ?`, time.Now().Add(-time.Second).UnixMilli(), got[0].ID); err != nil {
		t.Fatal(err)
	}
	if pending, err = s.PendingByWebhook(ctx); err != nil {
		t.Fatal(err)
	}
	if len(pending) != 2 {
		t.Errorf("PendingByWebhook = %v after the lease ran out, want both webhooks", pending)
	}
}

func testRedeliveryOfADeliveryInFlightIsRefused(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	w := NewWebhook(t, s, "message.received", true)
	Publish(t, s, "message.received", "")
	got, _ := ClaimFor(t, s, time.Now(), store.WebhookQuota{WebhookID: w.ID, Free: 1})
	if len(got) != 1 {
		t.Fatalf("claimed %d", len(got))
	}
	if _, err := s.RequeueDelivery(context.Background(), got[0].ID); !errors.Is(err, models.ErrConflict) {
		t.Errorf("requeue of a leased delivery = %v, want a conflict", err)
	}
}

// The claim the dispatcher uses: concurrent claimers (goroutines of one process on SQLite,
// separate pools like separate replicas on PostgreSQL) never lease one delivery twice.
func testConcurrentClaimForNeverSharesADelivery(t *testing.T, b Backend) {
	dsn := b.DSN(t)
	s := b.Open(t, dsn)
	var hooks []store.WebhookQuota
	for range 3 {
		hooks = append(hooks, store.WebhookQuota{WebhookID: NewWebhook(t, s, "message.received", true).ID, Free: 5})
	}
	for range 100 {
		Publish(t, s, "message.received", "")
	}
	stores := []*store.Store{s}
	if b.Name == "postgres" {
		stores = append(stores, b.Open(t, dsn), b.Open(t, dsn))
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
}
