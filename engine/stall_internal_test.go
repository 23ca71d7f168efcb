package engine

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/delivery"
	"github.com/hookrelay/hookrelay/models"
)

// A webhook is stalled by its receiver's silence only: deliveries claimed and waiting for
// their bodies count in flight but not on the wire, and an answer, whatever it says, ends
// the silence.
func TestStallCountsOnlyRequestsOnTheWire(t *testing.T) {
	tb := newTable(8, func(int) {})
	ds := []*models.Delivery{{ID: "d1", WebhookID: "wh"}, {ID: "d2", WebhookID: "wh"}}
	tb.started(ds)
	w := tb.get("wh")
	later := time.Now().Add(time.Hour)
	if w.stalled(later, stallAfter) {
		t.Fatal("stalled with two claimed and none sent")
	}

	tb.sending("wh")
	tb.sending("wh")
	if w.sending != 2 || w.stalled(time.Now(), stallAfter) {
		t.Fatalf("sending %d, stalled at once", w.sending)
	}
	if !w.stalled(w.sendingSince.Add(stallAfter), stallAfter) {
		t.Fatal("not stalled after stallAfter with two on the wire and no answer")
	}

	tb.adjust("wh", &delivery.Response{TimedOut: true}, 0)
	if w.sending != 1 || w.stalled(w.lastAnswer.Add(stallAfter-time.Millisecond), stallAfter) {
		t.Fatalf("sending %d; stalled though an answer came back within stallAfter", w.sending)
	}
	if !w.stalled(w.lastAnswer.Add(stallAfter), stallAfter) {
		t.Fatal("not stalled after stallAfter of silence with one on the wire")
	}
	tb.adjust("wh", &delivery.Response{Status: 200}, 0)
	if w.sending != 0 || w.stalled(later, stallAfter) {
		t.Fatalf("sending %d, stalled with nothing on the wire", w.sending)
	}
}

// A timeout rests the webhook for the jitter's share of restAfterTimeout of the time the
// request waited, so endpoints that time out together send their next requests apart; a
// success ends the rest, and any other answer leaves it as it was.
func TestATimeoutRestsTheWebhookForAJitteredShareOfItsWait(t *testing.T) {
	tb := newTable(8, func(int) {})
	tb.started([]*models.Delivery{{ID: "d1", WebhookID: "wh"}, {ID: "d2", WebhookID: "wh"}, {ID: "d3", WebhookID: "wh"}, {ID: "d4", WebhookID: "wh"}})
	w := tb.get("wh")

	before := time.Now()
	tb.adjust("wh", &delivery.Response{TimedOut: true, Duration: 2 * time.Second}, 0.5)
	after := time.Now()
	rest := time.Duration(0.5 * restAfterTimeout * float64(2*time.Second))
	if w.restUntil < before.Add(rest).UnixMilli() || w.restUntil > after.Add(rest).UnixMilli() {
		t.Fatalf("rest until %d, want %s after %d", w.restUntil, rest, before.UnixMilli())
	}
	resting := w.restUntil

	tb.adjust("wh", &delivery.Response{Status: 503, Duration: 2 * time.Second}, 0.9)
	if w.restUntil != resting {
		t.Fatalf("a 503 moved the rest to %d from %d", w.restUntil, resting)
	}
	tb.adjust("wh", &delivery.Response{Status: 200, Duration: time.Millisecond}, 0.9)
	if w.restUntil != 0 {
		t.Fatalf("a success left the rest until %d", w.restUntil)
	}
	tb.adjust("wh", &delivery.Response{TimedOut: true, Duration: 2 * time.Second}, 0)
	if w.restUntil > time.Now().UnixMilli() {
		t.Fatalf("a jitter of 0 rests until %d, after now", w.restUntil)
	}
}

// A dead endpoint's next request waits out the rest after its timeout: with the jitter at
// its top, a quarter of the time the first request waited, so the second comes at least that
// long after the first timed out. (Without the rest it comes as soon as the first is recorded.)
func TestADeadEndpointsNextRequestWaitsOutTheRest(t *testing.T) {
	const timeout = 300 * time.Millisecond
	arrived := make(chan time.Time, 4)
	dead := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		arrived <- time.Now()
		io.Copy(io.Discard, r.Body) // the server notices the client's hang-up only after the body
		<-r.Context().Done()
	}))
	t.Cleanup(dead.Close)
	db, _, _ := publishedTo(t, dead.URL, 2)
	sender := delivery.NewSender(delivery.SenderConfig{Timeout: timeout, AllowPrivate: true, Version: "test"})
	t.Cleanup(sender.CloseIdleConnections)
	d := New(Config{Store: db, Sender: sender, Workers: 8, PerWebhook: 1, RetrySchedule: []time.Duration{time.Hour},
		Jitter: func() float64 { return 0.99 }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()

	var at [2]time.Time
	for i := range at {
		select {
		case at[i] = <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatalf("request %d never arrived", i+1)
		}
	}
	// The first request waited at least the timeout: its rest is at least 0.99 of a quarter
	// of that, 74 ms. Allow the first request's own way to the endpoint (a dial) out of it.
	if gap, least := at[1].Sub(at[0]), timeout+time.Duration(0.99*restAfterTimeout*float64(timeout))-25*time.Millisecond; gap < least {
		t.Errorf("the second request came %s after the first, want at least %s (the timeout and the rest)", gap, least)
	}
}
