package delivery

import (
	"context"
	"fmt"
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
	// Room for one body: every body read back evicts the one before.
	d.payloads = newPayloadCache(len(in[0].Payload) + len(models.NewID("evt")))
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

func TestPayloadCacheEvictsOldestByBytes(t *testing.T) {
	body := func(n int) []byte { return make([]byte, n) }
	c := newPayloadCache(3 * (100 + 4)) // three 100-byte bodies with 4-byte ids
	for _, id := range []string{"ev01", "ev02", "ev03"} {
		c.put(id, body(100))
	}
	c.put("ev02", body(100)) // already held: neither counted twice nor moved
	c.put("ev04", body(100))
	if c.get("ev01") != nil {
		t.Error("ev01 is still held after a fourth body: the oldest should go first")
	}
	for _, id := range []string{"ev02", "ev03", "ev04"} {
		if c.get(id) == nil {
			t.Errorf("%s was evicted; only the oldest should be", id)
		}
	}
	c.put("huge", body(1000))
	if c.get("huge") != nil || c.get("ev02") == nil {
		t.Error("a body larger than the whole cache displaced the others instead of being skipped")
	}
	// Long churn: the held bytes and ids stay within the bound and agree with each other.
	for i := range 10000 {
		c.put(fmt.Sprintf("e%03d", i%1000), body(10+i%150))
		if c.bytes > c.maxBytes {
			t.Fatalf("after %d puts the cache holds %d bytes, over its %d", i, c.bytes, c.maxBytes)
		}
	}
	sum := 0
	for id, b := range c.m {
		sum += len(id) + len(b)
	}
	if sum != c.bytes || len(c.m) != len(c.fifo)-c.head {
		t.Errorf("bookkeeping drifted: %d bytes held, %d counted; %d ids, %d queued", sum, c.bytes, len(c.m), len(c.fifo)-c.head)
	}
}
