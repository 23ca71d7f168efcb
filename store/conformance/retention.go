package conformance

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

func testPruneKeepsPendingWork(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	w := NewWebhook(t, s, "message.received", true)
	p := Publish(t, s, "message.received", "")
	if _, err := s.Prune(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetDelivery(ctx, p.Deliveries[0].ID); err != nil {
		t.Fatalf("pending delivery pruned: %v", err)
	}
	if _, err := s.GetEvent(ctx, p.Event.ID); err != nil {
		t.Fatalf("event of a pending delivery pruned: %v", err)
	}
	// A failed attempt of a delivery still retrying stays with it.
	got, _ := ClaimFor(t, s, time.Now(), store.WebhookQuota{WebhookID: w.ID, Free: 10})
	err := s.RecordResults(ctx, []models.Result{{DeliveryID: got[0].ID, WebhookID: got[0].WebhookID, Status: models.StatusPending,
		NextAttemptAt: time.Now().UnixMilli(), Attempt: &models.Attempt{ID: models.NewID("att"), DeliveryID: got[0].ID,
			WebhookID: got[0].WebhookID, Number: 1, StartedAt: time.Now().UTC(), Outcome: models.OutcomeFailed}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prune(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if a, err := s.ListAttempts(ctx, got[0].ID); err != nil || len(a) != 1 {
		t.Fatalf("attempts of a retrying delivery after pruning past them: %d, %v; want its 1", len(a), err)
	}
	// Finished work older than the cutoff goes.
	got, _ = ClaimFor(t, s, time.Now(), store.WebhookQuota{WebhookID: w.ID, Free: 10})
	err = s.RecordResults(ctx, []models.Result{{DeliveryID: got[0].ID, WebhookID: got[0].WebhookID, Status: models.StatusSucceeded,
		Succeeded: true, Attempt: &models.Attempt{ID: models.NewID("att"), DeliveryID: got[0].ID, WebhookID: got[0].WebhookID,
			Number: 1, StartedAt: time.Now().UTC(), Outcome: models.OutcomeSucceeded}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prune(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetEvent(ctx, p.Event.ID); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("finished event not pruned: %v", err)
	}
	if a, err := s.ListAttempts(ctx, got[0].ID); err != nil || len(a) != 0 {
		t.Fatalf("attempts of a finished delivery after pruning past it: %d, %v; want none", len(a), err)
	}
}

// Pruning cuts attempts and deliveries by their time-ordered ids: finished work newer than
// the cutoff stays, older goes.
func testPruneKeepsFinishedWorkNewerThanTheCutoff(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	w := NewWebhook(t, s, "message.received", true)
	p := Publish(t, s, "message.received", "")
	got, _ := ClaimFor(t, s, time.Now(), store.WebhookQuota{WebhookID: w.ID, Free: 1})
	if len(got) != 1 {
		t.Fatalf("claimed %d", len(got))
	}
	err := s.RecordResults(ctx, []models.Result{{DeliveryID: got[0].ID, WebhookID: w.ID, Status: models.StatusSucceeded,
		Succeeded: true, Attempt: &models.Attempt{ID: models.NewID("att"), DeliveryID: got[0].ID, WebhookID: w.ID,
			Number: 1, StartedAt: time.Now().UTC(), Outcome: models.OutcomeSucceeded}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prune(ctx, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetDelivery(ctx, p.Deliveries[0].ID); err != nil {
		t.Errorf("a delivery from a moment ago was pruned with a cutoff an hour back: %v", err)
	}
	if a, err := s.ListAttempts(ctx, p.Deliveries[0].ID); err != nil || len(a) != 1 {
		t.Errorf("attempts after pruning an hour back: %d, %v; want the 1", len(a), err)
	}
	if _, err := s.Prune(ctx, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if a, err := s.ListAttempts(ctx, p.Deliveries[0].ID); err != nil || len(a) != 0 {
		t.Errorf("attempts after pruning past them: %d, %v; want none", len(a), err)
	}
}
