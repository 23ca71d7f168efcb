package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/conformance"
)

func TestPublishOneHonoursACancelledRequest(t *testing.T) {
	s := storetest.Open(t, storetest.SQLiteDSN(t))
	conformance.NewWebhook(t, s, "message.received", true)
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
