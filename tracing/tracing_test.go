package tracing_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testsrv"
	"github.com/hookrelay/hookrelay/tracing"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// Tracing off is a nil *Tracer: nothing it is asked to do may allocate, so the publish and
// attempt paths cost exactly what they cost without tracing.
func TestNilTracerAllocatesNothing(t *testing.T) {
	var tr *tracing.Tracer
	req := httptest.NewRequest(http.MethodPost, "/api/v1/events", nil)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	ctx := context.Background()
	now := time.Now()
	d := tracing.Delivery{DeliveryID: "dlv_1", WebhookID: "wh_1", EventID: "evt_1", Attempt: 1}
	stored := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	errBoom := errors.New("boom")
	allocs := testing.AllocsPerRun(1000, func() {
		pctx, pub := tr.StartPublish(ctx, req)
		_, enq := tr.StartEnqueue(pctx)
		if enq.TraceParent() != "" || enq.Recording() {
			t.Fatal("a nil tracer gave a span")
		}
		enq.SetEvents("evt_1")
		enq.End(nil)
		pub.EndHTTP(202)
		a := tr.StartAttempt(stored, now, d)
		if a.TraceParent() != "" {
			t.Fatal("a nil tracer gave a traceparent")
		}
		a.End(500, errBoom, "pending")
		tr.Recorded(a.TraceParent(), now, 1, nil)
		if err := tr.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("a nil tracer allocated %.1f times per publish and attempt, want 0", allocs)
	}
}

// An event published untraced (tracing was off then) stays untraced when a traced process
// sends it: there is no trace to continue.
func TestAttemptOfAnUntracedEventIsNotTraced(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tr := tracing.New(sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)))
	for _, stored := range []string{"", "not a traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"} {
		a := tr.StartAttempt(stored, time.Now(), tracing.Delivery{Attempt: 1})
		if a.TraceParent() != "" {
			t.Errorf("stored %q: attempt traced as %q", stored, a.TraceParent())
		}
		a.End(200, nil, "succeeded")
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("%d spans for untraced events, want none", n)
	}
}

// NewOTLP exports over real HTTP to an OTLP/HTTP endpoint: what is buffered goes out at
// Shutdown, as protobuf POSTed to /v1/traces when the URL has no path.
func TestOTLPExportPostsSpansToTheCollector(t *testing.T) {
	collector := testsrv.NewCollector(t, http.StatusOK)
	tr, err := tracing.NewOTLP(context.Background(), collector.URL, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/api/v1/events", nil)
	ctx, pub := tr.StartPublish(context.Background(), req)
	_, enq := tr.StartEnqueue(ctx)
	stored := enq.TraceParent()
	enq.End(nil)
	pub.EndHTTP(202)
	a := tr.StartAttempt(stored, time.Now(), tracing.Delivery{DeliveryID: "dlv_1", WebhookID: "wh_1", EventID: "evt_1", Attempt: 1})
	a.End(200, nil, "succeeded")
	tr.Recorded(a.TraceParent(), time.Now(), 1, nil)
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := collector.Exports(); len(got) == 0 || got[0] != "POST /v1/traces application/x-protobuf" {
		t.Fatalf("collector got %v, want a POST /v1/traces of protobuf", got)
	}
	body := collector.Spans()
	for _, name := range []string{"publish", "enqueue", "claim", "send", "record", "hookrelay"} {
		if !strings.Contains(string(body), name) {
			t.Errorf("exported spans lack %q", name)
		}
	}
}

func TestNewOTLPRefusesWhatIsNotAnHTTPURL(t *testing.T) {
	for _, bad := range []string{"localhost:4318", "grpc://collector:4317", "http://"} {
		if _, err := tracing.NewOTLP(context.Background(), bad, "test", nil); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The record span says which batch committed the attempt and fails with the batch.
func TestRecordSpanHangsFromTheSendSpan(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tr := tracing.New(sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)))
	_, enq := tr.StartEnqueue(context.Background())
	enq.End(nil)
	a := tr.StartAttempt(enq.TraceParent(), time.Now(), tracing.Delivery{Attempt: 1})
	a.End(0, errors.New("connection refused"), "pending")
	handed := time.Now().Add(-time.Millisecond)
	tr.Recorded(a.TraceParent(), handed, 7, errors.New("database is locked"))
	var send, rec tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		switch s.Name {
		case "send":
			send = s
		case "record":
			rec = s
		}
	}
	if rec.Parent.SpanID() != send.SpanContext.SpanID() || !rec.StartTime.Equal(handed) {
		t.Errorf("record span: parent %s start %v, want send %s and %v", rec.Parent.SpanID(), rec.StartTime, send.SpanContext.SpanID(), handed)
	}
	if rec.Status.Code.String() != "Error" || send.Status.Code.String() != "Error" {
		t.Errorf("statuses: send %v, record %v; want both errors", send.Status, rec.Status)
	}
	found := false
	for _, kv := range rec.Attributes {
		if kv.Key == "hookrelay.record.batch" && kv.Value == attribute.IntValue(7) {
			found = true
		}
	}
	if !found {
		t.Errorf("record span attributes %v lack the batch size", rec.Attributes)
	}
}

// A collector that refuses the spans costs a warning in the server's log, nothing more.
func TestFailedExportIsLogged(t *testing.T) {
	collector := testsrv.NewCollector(t, http.StatusBadRequest)
	var logged strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logged.Write(p)
	}), nil))
	tr, err := tracing.NewOTLP(context.Background(), collector.URL+"/v1/traces", "test", logger)
	if err != nil {
		t.Fatal(err)
	}
	_, enq := tr.StartEnqueue(context.Background())
	enq.End(nil)
	_ = tr.Shutdown(context.Background())
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logged.String(), "level=WARN msg=\"export traces\"") {
		t.Errorf("log %q: want a warning about the failed export", logged.String())
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
