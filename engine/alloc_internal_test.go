package engine

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/delivery"
	"github.com/hookrelay/hookrelay/internal/race"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/tracing"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// attemptAllocsBefore is what one attempt (send to a keep-alive receiver, decide, hand the
// result over) allocated before tracing existed, at ccfc25a with Go 1.26, counting the
// receiver's side too (the httptest server runs in this process).
const attemptAllocsBefore = 77

// One attempt allocates no more with tracing off than it did before tracing existed: the
// nil Tracer's calls cost nothing, and a webhook's trace_context is not even looked at.
func TestAttemptAllocatesAsBeforeWithTracingOff(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector's instrumentation allocates unevenly; the budget is for normal builds")
	}
	off := attemptAllocs(t, nil, false)
	offAsked := attemptAllocs(t, nil, true)
	tr := tracing.New(sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewNoopExporter())))
	on := attemptAllocs(t, tr, true)
	t.Logf("allocations per attempt: before tracing %d, tracing off %.0f (webhook asking for trace context %.0f), tracing on %.0f",
		attemptAllocsBefore, off, offAsked, on)
	if off > attemptAllocsBefore || offAsked > attemptAllocsBefore {
		t.Errorf("tracing off: %.0f and %.0f allocations per attempt, want at most %d as before tracing", off, offAsked, attemptAllocsBefore)
	}
}

func attemptAllocs(t *testing.T, tr *tracing.Tracer, traceContext bool) float64 {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "alloc.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer rc.Close()
	wh := &models.Webhook{ID: "wh_alloc", Name: "r", URL: rc.URL, Events: models.EventConversationStarted, Enabled: true,
		Format: models.FormatJSON, Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", TraceContext: traceContext}
	sender := delivery.NewSender(delivery.SenderConfig{Timeout: 5 * time.Second, AllowPrivate: true, Version: "test"})
	defer sender.CloseIdleConnections()
	d := New(Config{Store: db, Sender: sender, Workers: 8, RetrySchedule: delivery.DefaultRetrySchedule, Tracer: tr})
	et, _ := models.LookupEventType(models.EventConversationStarted)
	payload := et.Example(time.Now())
	dl := &models.Delivery{ID: "dlv_alloc", EventID: "evt_alloc", WebhookID: wh.ID, EventType: et.Name, Status: models.StatusPending}
	stored := ""
	if tr != nil {
		_, enq := tr.StartEnqueue(ctx)
		stored = enq.TraceParent()
		enq.End(nil)
	}
	// The least of several rounds: the receiver's and the connection pool's goroutines now
	// and then allocate in the middle of a round, which says nothing about the attempt.
	const rounds, runs = 5, 100
	allocs := math.Inf(1)
	for range rounds {
		allocs = min(allocs, testing.AllocsPerRun(runs, func() {
			d.sends.Add(1)
			d.attempt(ctx, dl, wh, payload, stored, time.Now())
		}))
	}
	for range rounds * (runs + 1) {
		if r := <-d.rec.in; r.Status != models.StatusSucceeded {
			t.Fatalf("attempt %s, want succeeded", r.Status)
		}
	}
	return allocs
}
