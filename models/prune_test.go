package models_test

import (
	"context"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/models"
)

// Pruning cuts attempts and deliveries by their time-ordered ids: finished work newer than
// the cutoff stays, older goes.
func TestPruneKeepsFinishedWorkNewerThanTheCutoff(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		s := storetest.Open(t, b.DSN(t))
		ctx := context.Background()
		w := newWebhook(t, s, "message.received", true)
		p := publish(t, s, "message.received", "")
		got, _ := claimFor(t, s, time.Now(), models.HookSlots{WebhookID: w.ID, Free: 1})
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
	})
}
