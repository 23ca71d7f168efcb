package postgres_test

import (
	"context"
	"sync"
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

// A replica does not hear its own wakes, which its dispatcher was told of already, but hears
// every other replica's. Notifications reach a listener in commit order, so had a replica's
// own wake come through, it would hear that before the other's that followed it.
func TestAReplicaHearsOtherReplicasWakesAndNotItsOwn(t *testing.T) {
	requirePostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn := storetest.PostgresDSN(t)
	var replicas [2]*postgres.Driver
	var heard [2]chan string
	for i := range replicas {
		d, err := postgres.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		replicas[i], heard[i] = d, make(chan string, 64)
		listening := make(chan struct{})
		var once sync.Once
		go d.Listen(ctx, storedriver.ChannelWake, func(payload string) {
			if payload == "" { // sent once on connecting
				once.Do(func() { close(listening) })
				return
			}
			heard[i] <- payload
		})
		select {
		case <-listening:
		case <-ctx.Done():
			t.Fatalf("replica %d never listened", i)
		}
	}
	a, b := replicas[0], replicas[1]
	hooks := map[string]*models.Webhook{}
	for _, typ := range []string{"message.received", "conversation.started"} {
		w := &models.Webhook{Name: typ, URL: "https://example.com/h", Events: typ, Enabled: true, Secret: "s"}
		if err := a.CreateWebhook(ctx, w); err != nil {
			t.Fatal(err)
		}
		hooks[typ] = w
	}
	publish := func(d *postgres.Driver, typ string) {
		t.Helper()
		et, _ := models.LookupEventType(typ)
		now := time.Now().UTC()
		if _, err := d.Publish(ctx, []storedriver.PublishInput{{Type: et.Name, Payload: et.Example(now), OccurredAt: now}}); err != nil {
			t.Fatal(err)
		}
	}
	next := func(i int) string {
		t.Helper()
		select {
		case p := <-heard[i]:
			return p
		case <-ctx.Done():
			t.Fatalf("replica %d heard nothing", i)
			return ""
		}
	}
	publish(a, "message.received")
	if got, want := next(1), hooks["message.received"].ID; got != want {
		t.Fatalf("B heard %q, want A's wake for %s", got, want)
	}
	publish(b, "conversation.started")
	if got, want := next(0), hooks["conversation.started"].ID; got != want {
		t.Fatalf("A heard %q first, want B's wake for %s: %s is A's own", got, want, hooks["message.received"].ID)
	}
	publish(a, "message.received")
	if got, want := next(1), hooks["message.received"].ID; got != want {
		t.Fatalf("B heard %q next, want A's second wake for %s: %s is B's own", got, want, hooks["conversation.started"].ID)
	}
}
