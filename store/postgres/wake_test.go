package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store/postgres"
	"github.com/hookrelay/hookrelay/store/storedriver"
)

// Another replica hears of a publish, over a real LISTEN connection, only once the publish
// has committed: whatever the notification names, a fresh connection can already read.
func TestAnotherReplicaIsWokenAfterThePublishCommits(t *testing.T) {
	requirePostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn := storetest.PostgresDSN(t)
	publisher, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer publisher.Close()
	listener, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()

	w := &models.Webhook{Name: "w", URL: "https://example.com/h", Events: "message.received", Enabled: true, Secret: "s"}
	if err := publisher.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	type wake struct {
		payload string
		events  int64 // readable by a fresh connection when the notification came
	}
	heard := make(chan wake, 64)
	listening := make(chan struct{}, 1)
	go listener.Listen(ctx, storedriver.ChannelWake, func(payload string) {
		if payload == "" { // sent once on connecting
			select {
			case listening <- struct{}{}:
			default:
			}
			return
		}
		h := wake{payload: payload}
		if err := listener.Reader.WithContext(ctx).Raw(`SELECT count(*) FROM events`).Scan(&h.events).Error; err != nil {
			t.Error(err)
		}
		heard <- h
	})
	select {
	case <-listening:
	case <-ctx.Done():
		t.Fatal("the listener never connected")
	}
	et, _ := models.LookupEventType("message.received")
	now := time.Now().UTC()
	if _, err := publisher.Publish(ctx, []storedriver.PublishInput{{Type: et.Name, Payload: et.Example(now), OccurredAt: now}}); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-heard:
		if got.payload != w.ID || got.events != 1 {
			t.Fatalf("heard %q with %d events readable, want the webhook %s with its event readable", got.payload, got.events, w.ID)
		}
	case <-ctx.Done():
		t.Fatal("the other replica was never woken")
	}
}
