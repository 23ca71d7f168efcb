package delivery_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/models"
)

func openStore(t *testing.T) *models.Store {
	t.Helper()
	s, err := models.Open(context.Background(), filepath.Join(t.TempDir(), "queue.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func queueEvent(t *testing.T, s *models.Store) {
	t.Helper()
	et, _ := models.LookupEventType(models.EventConversationStarted)
	now := time.Now().UTC().Truncate(time.Second)
	if _, err := s.Publish(context.Background(), []models.PublishInput{{Type: et.Name, Payload: et.Example(now), OccurredAt: now}}); err != nil {
		t.Fatal(err)
	}
}

// The dispatcher sleeps until NextDue when a claim finds nothing. A leased (in-flight) row
// or one of a saturated webhook cannot be claimed however overdue it is; reporting it as due
// would make the dispatcher poll the database in a tight loop for as long as it stays so.
func TestNextDueSkipsLeasedAndSaturatedDeliveries(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	a := &models.Webhook{Name: "a", URL: "https://a.example/", Events: models.EventConversationStarted, Enabled: true}
	if err := s.CreateWebhook(ctx, a); err != nil {
		t.Fatal(err)
	}
	queueEvent(t, s)

	now := time.Now()
	if next, err := s.NextDue(ctx, now, nil); err != nil || next == 0 || next > now.UnixMilli() {
		t.Fatalf("NextDue with one due delivery = %d, %v; want a time at or before now (%d)", next, err, now.UnixMilli())
	}
	if next, err := s.NextDue(ctx, now, []string{a.ID}); err != nil || next != 0 {
		t.Errorf("NextDue excluding the only webhook = %d, %v; want 0", next, err)
	}
	claimed, err := s.ClaimDue(ctx, models.ClaimRequest{Owner: "test", Now: now, Lease: time.Minute, Limit: 10})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("ClaimDue = %d rows, %v; want 1", len(claimed), err)
	}
	if claimed[0].WebhookID != a.ID || claimed[0].EventType != models.EventConversationStarted || claimed[0].LockedBy != "test" {
		t.Errorf("claimed row = %+v, want the full leased delivery", claimed[0])
	}
	if next, err := s.NextDue(ctx, time.Now(), nil); err != nil || next != 0 {
		t.Errorf("NextDue with the only delivery in flight = %d, %v; want 0", next, err)
	}
	if again, err := s.ClaimDue(ctx, models.ClaimRequest{Owner: "other", Now: time.Now(), Lease: time.Minute, Limit: 10}); err != nil || len(again) != 0 {
		t.Errorf("a leased delivery was claimed again: %d rows, %v", len(again), err)
	}
	// Past the lease (a dead claimer), it is due and claimable again.
	later := now.Add(2 * time.Minute)
	if next, err := s.NextDue(ctx, later, nil); err != nil || next == 0 {
		t.Errorf("NextDue after the lease expired = %d, %v; want the overdue delivery", next, err)
	}
	if again, err := s.ClaimDue(ctx, models.ClaimRequest{Owner: "other", Now: later, Lease: time.Minute, Limit: 10}); err != nil || len(again) != 1 {
		t.Errorf("an expired lease was not claimable: %d rows, %v", len(again), err)
	}
}

func TestClaimDueSharesTheBatchBetweenWebhooks(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	busy := &models.Webhook{Name: "busy", URL: "https://busy.example/", Events: models.EventConversationStarted, Enabled: true}
	if err := s.CreateWebhook(ctx, busy); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		queueEvent(t, s)
	}
	quiet := &models.Webhook{Name: "quiet", URL: "https://quiet.example/", Events: models.EventConversationStarted, Enabled: true}
	if err := s.CreateWebhook(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	queueEvent(t, s) // one delivery each for busy and quiet, queued after busy's twenty

	// The dispatcher's loop: claim with each webhook's free slots; once busy is saturated it
	// is excluded, and the next claim reaches quiet's delivery behind busy's backlog.
	slots := map[string]int{busy.ID: 2, quiet.ID: 4}
	got := map[string]int{}
	for _, exclude := range [][]string{nil, {busy.ID}} {
		claimed, err := s.ClaimDue(ctx, models.ClaimRequest{Owner: "test", Now: time.Now(), Lease: time.Minute, Limit: 10,
			Exclude: exclude, PerHook: func(id string) int { return slots[id] - got[id] }})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range claimed {
			got[c.WebhookID]++
		}
	}
	if got[busy.ID] != 2 || got[quiet.ID] != 1 {
		t.Errorf("claimed %d of busy (2 free slots) and %d of quiet; want 2 and 1", got[busy.ID], got[quiet.ID])
	}
}
