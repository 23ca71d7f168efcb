package delivery

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/models"
)

// Bodies read back for a claim are kept for its attempts even when the shared cache, which
// concurrent publishes keep filling, evicts them before the attempts start.
func TestClaimedDeliveriesKeepTheirBodiesWhenTheCacheEvictsThem(t *testing.T) {
	ctx := context.Background()
	store, err := models.Open(ctx, filepath.Join(t.TempDir(), "start.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	t.Cleanup(rc.Close)
	w := &models.Webhook{Name: "r", URL: rc.URL, Events: models.EventConversationStarted, Enabled: true}
	if err := store.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	et, _ := models.LookupEventType(models.EventConversationStarted)
	now := time.Now().UTC().Truncate(time.Second)
	in := []models.PublishInput{{Type: et.Name, Payload: et.Example(now), OccurredAt: now},
		{Type: et.Name, Payload: et.Example(now), OccurredAt: now}, {Type: et.Name, Payload: et.Example(now), OccurredAt: now}}
	if _, err := store.Publish(ctx, in); err != nil {
		t.Fatal(err)
	}
	sender := NewSender(SenderConfig{Timeout: 5 * time.Second, AllowPrivate: true, Version: "test"})
	t.Cleanup(sender.CloseIdleConnections)
	d := New(Config{Store: store, Sender: sender, Workers: 8, RetrySchedule: DefaultRetrySchedule})
	d.payloads = newPayloadCache(1) // every body read back evicts the one before
	claimed, _, err := store.ClaimFor(ctx, models.ClaimForRequest{Owner: "t", Now: time.Now(), Lease: time.Minute,
		Hooks: []models.HookSlots{{WebhookID: w.ID, Free: 8}}})
	if err != nil || len(claimed) != 3 {
		t.Fatalf("claimed %d, %v; want 3", len(claimed), err)
	}
	d.start(ctx, ctx, claimed)
	d.sends.Wait()
	for range claimed {
		if r := <-d.results; r.Status != models.StatusSucceeded {
			t.Errorf("delivery %s ended %s, want succeeded: its body was lost", r.DeliveryID, r.Status)
		}
	}
}
