package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

func TestModifyWebhookSavesOnlyWhatChangeAccepts(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		s := storetest.Open(t, b.DSN(t))
		w := newWebhook(t, s, "message.received", true)
		p := publish(t, s, "message.received", "")

		if _, err := s.ModifyWebhook(ctx, "wh_missing", func(*models.Webhook) error { return nil }); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("missing webhook: %v", err)
		}
		verr := &models.ValidationError{}
		verr.Add("name", "is required")
		_, err := s.ModifyWebhook(ctx, w.ID, func(w *models.Webhook) error { w.Name = "lost"; return verr })
		var got *models.ValidationError
		if !errors.As(err, &got) {
			t.Fatalf("validation error not passed through: %v", err)
		}
		if cur, _ := s.GetWebhook(ctx, w.ID); cur.Name != "w" {
			t.Fatalf("an aborted change was saved: %q", cur.Name)
		}

		before, _ := s.GetWebhook(ctx, w.ID)
		out, err := s.ModifyWebhook(ctx, w.ID, func(w *models.Webhook) error { w.Name, w.Enabled = "off", false; return nil })
		if err != nil || out.Name != "off" || out.Enabled {
			t.Fatalf("modify: %+v %v", out, err)
		}
		after, _ := s.GetWebhook(ctx, w.ID)
		if after.Name != "off" || after.Enabled || !after.CreatedAt.Equal(before.CreatedAt) || !after.UpdatedAt.After(before.UpdatedAt) {
			t.Fatalf("stored after modify: %+v (before %+v)", after, before)
		}
		d, err := s.GetDelivery(ctx, p.Deliveries[0].ID)
		if err != nil || d.Status != models.StatusCancelled {
			t.Fatalf("pending delivery after disable: %+v %v", d, err)
		}
	})
}

func TestQueueReplayWalksEveryMatchingEventInBatches(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		s := storetest.Open(t, b.DSN(t))
		since := time.Now().UTC().Add(-time.Minute)
		var conv []string
		for range 5 {
			conv = append(conv, publish(t, s, "conversation.started", "").Event.ID) // before the webhook
		}
		publish(t, s, "message.received", "")
		w := newWebhook(t, s, "conversation.started", true)
		pending := publish(t, s, "conversation.started", "") // already on its way: skipped
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
	})
}

func TestQueueReplayStopsWhenTheWebhookIsDisabled(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		s := storetest.Open(t, b.DSN(t))
		since := time.Now().UTC().Add(-time.Minute)
		for range 3 {
			publish(t, s, "message.received", "")
		}
		w := newWebhook(t, s, "message.received", true)
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
	})
}

func TestSessionsEndWithTheirCredential(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		s := storetest.Open(t, b.DSN(t))
		k, _, err := s.CreateAPIKey(ctx, "ui")
		if err != nil {
			t.Fatal(err)
		}
		keyCookie, _, err := s.CreateSession(ctx, time.Hour, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		admin := models.AdminCredential(models.HashToken("admin-token-0123456789"))
		adminCookie, _, err := s.CreateSession(ctx, time.Hour, admin)
		if err != nil {
			t.Fatal(err)
		}
		if ss, err := s.FindSession(ctx, adminCookie); err != nil || ss.Credential != admin {
			t.Fatalf("admin session %+v %v", ss, err)
		}
		if err := s.DeleteAPIKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.FindSession(ctx, keyCookie); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("session of a revoked key: %v", err)
		}
		if _, err := s.FindSession(ctx, adminCookie); err != nil {
			t.Errorf("unrelated session ended: %v", err)
		}
		if _, _, err := s.CreateSession(ctx, time.Hour, k.ID); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("session for a revoked key: %v", err)
		}
		expired, _, err := s.CreateSession(ctx, -time.Second, admin)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.FindSession(ctx, expired); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("expired session found: %v", err)
		}
	})
}
