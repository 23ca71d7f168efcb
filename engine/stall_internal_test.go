package engine

import (
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

	tb.adjust("wh", &delivery.Response{TimedOut: true})
	if w.sending != 1 || w.stalled(w.lastAnswer.Add(stallAfter-time.Millisecond), stallAfter) {
		t.Fatalf("sending %d; stalled though an answer came back within stallAfter", w.sending)
	}
	if !w.stalled(w.lastAnswer.Add(stallAfter), stallAfter) {
		t.Fatal("not stalled after stallAfter of silence with one on the wire")
	}
	tb.adjust("wh", &delivery.Response{Status: 200})
	if w.sending != 0 || w.stalled(later, stallAfter) {
		t.Fatalf("sending %d, stalled with nothing on the wire", w.sending)
	}
}
