package maintenance_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/maintenance"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

func TestMaintenanceAutoDisablesLongFailingWebhooks(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		s := storetest.Open(t, b.DSN(t))
		ctx := context.Background()
		failing := &models.Webhook{Name: "failing", URL: "https://example.com/a", Events: "message.received", Enabled: true}
		recent := &models.Webhook{Name: "recent", URL: "https://example.com/b", Events: "message.received", Enabled: true}
		for _, w := range []*models.Webhook{failing, recent} {
			if err := s.CreateWebhook(ctx, w); err != nil {
				t.Fatal(err)
			}
		}
		longAgo := time.Now().UTC().Add(-6 * 24 * time.Hour)
		yesterday := time.Now().UTC().Add(-24 * time.Hour)
		failing.FailingSince, recent.FailingSince = &longAgo, &yesterday
		for _, w := range []*models.Webhook{failing, recent} {
			if err := s.UpdateWebhook(ctx, w); err != nil {
				t.Fatal(err)
			}
		}
		et, _ := models.LookupEventType("message.received")
		pub, err := s.Publish(ctx, []store.PublishInput{{Type: et.Name, Payload: et.Example(time.Now()), OccurredAt: time.Now()}})
		if err != nil {
			t.Fatal(err)
		}

		var told []string // what the admin change stream is told
		m := &maintenance.Jobs{Store: s, AutoDisableAfter: 5 * 24 * time.Hour, Logger: slog.Default(),
			Changed: func(ids []string, _ bool) { told = append(told, ids...) }}
		m.Once(ctx)
		if !slices.Equal(told, []string{failing.ID}) {
			t.Fatalf("the change stream was told %v, want the disabled webhook %s", told, failing.ID)
		}

		got, _ := s.GetWebhook(ctx, failing.ID)
		if got.Enabled || !strings.Contains(got.DisabledReason, "disabled automatically") {
			t.Fatalf("long-failing webhook: enabled=%v reason=%q", got.Enabled, got.DisabledReason)
		}
		if got, _ := s.GetWebhook(ctx, recent.ID); !got.Enabled {
			t.Fatal("webhook failing for one day was disabled")
		}
		for _, d := range pub[0].Deliveries {
			dd, _ := s.GetDelivery(ctx, d.ID)
			want := models.StatusPending
			if d.WebhookID == failing.ID {
				want = models.StatusCancelled
			}
			if dd.Status != want {
				t.Errorf("delivery to %s: status %s, want %s", d.WebhookID, dd.Status, want)
			}
		}
	})
}
