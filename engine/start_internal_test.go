package engine

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/delivery"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

// Bodies read back for a claim are kept for its attempts even when the shared cache, which
// concurrent publishes keep filling, evicts them before the attempts start.
func TestClaimedDeliveriesKeepTheirBodiesWhenTheCacheEvictsThem(t *testing.T) {
	ctx := context.Background()
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	t.Cleanup(rc.Close)
	db, w, in := publishedTo(t, rc.URL, 3)
	d := newTestDispatcher(t, db)
	// Room for one body: the others are read back but not kept.
	d.payloads = newPayloadCache(len(in[0].Payload) + len(models.NewID("evt")))
	claimed, _, err := db.ClaimFor(ctx, store.ClaimForRequest{Owner: "t", Now: time.Now(), Lease: time.Minute,
		Hooks: []store.WebhookQuota{{WebhookID: w.ID, Free: 8}}})
	if err != nil || len(claimed) != 3 {
		t.Fatalf("claimed %d, %v; want 3", len(claimed), err)
	}
	d.start(ctx, ctx, claimed, time.Now(), false)
	d.sends.Wait()
	for range claimed {
		if r := <-d.rec.in; r.Status != models.StatusSucceeded {
			t.Errorf("delivery %s ended %s, want succeeded: its body was lost", r.DeliveryID, r.Status)
		}
	}
}

// A body leaves once its whole fan-out has taken it, and a full cache refuses the newest body
// rather than evict older ones still to be sent; only bodies that look abandoned (taken by
// part of the fan-out and then waiting, or never taken for long) make room.
func TestPayloadCacheKeepsTheQueuesHead(t *testing.T) {
	body := func(n int) []byte { return make([]byte, n) }
	c := newPayloadCache(3 * (100 + 4)) // three 100-byte bodies with 4-byte ids
	clock := time.Unix(1_000_000, 0)
	c.now = func() time.Time { return clock }
	for _, id := range []string{"ev01", "ev02", "ev03"} {
		c.put(id, body(100), "", 2)
	}
	c.put("ev04", body(100), "", 2)
	if takeBody(c, "ev04", 1) != nil {
		t.Error("a full cache of fresh, untaken bodies took a fourth: it should refuse the newest")
	}
	for delivery := range 2 {
		if takeBody(c, "ev01", 1) == nil {
			t.Fatalf("ev01 was not held for delivery %d of its 2", delivery+1)
		}
	}
	if takeBody(c, "ev01", 1) != nil {
		t.Error("ev01 is still held after its whole fan-out took it")
	}
	c.put("ev04", body(100), "", 2) // ev01's room
	c.put("ev02", body(100), "", 9) // already held: neither counted twice nor replaced
	if got := c.m["ev02"].left; got != 2 {
		t.Errorf("ev02 expects %d more takes after a second put, want 2", got)
	}
	if takeBody(c, "ev02", 1) == nil {
		t.Fatal("ev02 lost")
	}
	// ev02 waits on the rest of its fan-out; past waitedAfter it gives way to a new body.
	clock = clock.Add(waitedAfter)
	c.put("ev05", body(100), "", 1)
	if c.m["ev02"] != nil || c.m["ev05"] == nil {
		t.Error("a body taken by part of its fan-out and then left waiting was not evicted for a new one")
	}
	// ev03 was never taken: it stays until staleAfter, then goes too.
	c.put("ev06", body(100), "", 1)
	if c.m["ev03"] == nil || c.m["ev06"] != nil {
		t.Error("an untaken body younger than staleAfter was evicted for a newer one")
	}
	clock = clock.Add(staleAfter)
	c.put("ev06", body(100), "", 1)
	if c.m["ev03"] != nil || c.m["ev06"] == nil {
		t.Error("an untaken body older than staleAfter kept a new one out")
	}
	c.put("huge", body(1000), "", 1)
	c.put("none", body(10), "", 0)
	if c.m["huge"] != nil || c.m["none"] != nil {
		t.Error("held a body larger than the cache, or one no delivery will take")
	}
	// Long churn: the held bytes, ids and queue stay bounded and agree with each other.
	for i := range 20000 {
		id := fmt.Sprintf("e%04d", i)
		c.put(id, body(10+i%150), "", 1+i%3)
		if i%4 != 0 {
			c.take(id, 3)
		}
		clock = clock.Add(time.Millisecond)
		if c.bytes > c.maxBytes {
			t.Fatalf("after %d puts the cache holds %d bytes, over its %d", i, c.bytes, c.maxBytes)
		}
	}
	sum := 0
	for id, e := range c.m {
		sum += len(id) + len(e.b)
	}
	if sum != c.bytes || len(c.m) != len(c.fifo)-c.head-c.dead {
		t.Errorf("bookkeeping drifted: %d bytes held, %d counted; %d ids, %d queued, %d dead", sum, c.bytes, len(c.m), len(c.fifo)-c.head, c.dead)
	}
	if len(c.fifo) > 2048+2*len(c.m) {
		t.Errorf("the queue kept %d slots for %d bodies: taken bodies pin their slots", len(c.fifo), len(c.m))
	}
}

func takeBody(c *payloadCache, id string, n int) []byte {
	b, _ := c.take(id, n)
	return b
}

// A dispatcher stopped before its loop began (a server shut down as soon as it started) has
// claimed nothing and returns no error; the deliveries it would have sent are still due for
// the next run.
func TestADispatcherStoppedBeforeItBeganReturnsNoErrorAndLeavesItsWork(t *testing.T) {
	ctx := context.Background()
	db, w, _ := publishedTo(t, "http://127.0.0.1:1/", 1)
	d := newTestDispatcher(t, db)
	stopped, cancel := context.WithCancel(ctx)
	cancel()
	if err := d.Run(stopped); err != nil {
		t.Fatalf("Run stopped before it began = %v, want nil", err)
	}
	due, _, err := db.ClaimFor(ctx, store.ClaimForRequest{Owner: "next run", Now: time.Now(), Lease: time.Minute,
		Hooks: []store.WebhookQuota{{WebhookID: w.ID, Free: 8}}})
	if err != nil || len(due) != 1 {
		t.Fatalf("the next run finds %d due, %v; want the one delivery", len(due), err)
	}
}

// publishedTo opens a SQLite store with one webhook to url and n events published to it.
func publishedTo(t *testing.T, url string, n int) (*store.Store, *models.Webhook, []store.PublishInput) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "start.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w := &models.Webhook{Name: "r", URL: url, Events: models.EventConversationStarted, Enabled: true}
	if err := db.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	et, _ := models.LookupEventType(models.EventConversationStarted)
	now := time.Now().UTC().Truncate(time.Second)
	in := make([]store.PublishInput, n)
	for i := range in {
		in[i] = store.PublishInput{Type: et.Name, Payload: et.Example(now), OccurredAt: now}
	}
	if _, err := db.Publish(ctx, in); err != nil {
		t.Fatal(err)
	}
	return db, w, in
}

func newTestDispatcher(t *testing.T, db *store.Store) *Dispatcher {
	t.Helper()
	sender := delivery.NewSender(delivery.SenderConfig{Timeout: 5 * time.Second, AllowPrivate: true, Version: "test"})
	t.Cleanup(sender.CloseIdleConnections)
	d := New(Config{Store: db, Sender: sender, Workers: 8, RetrySchedule: delivery.DefaultRetrySchedule})
	t.Cleanup(d.senders.close) // Run, which ends them otherwise, does not run here
	return d
}
