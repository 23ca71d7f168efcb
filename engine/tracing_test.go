package engine_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/api"
	"github.com/hookrelay/hookrelay/engine"
	"github.com/hookrelay/hookrelay/internal/testsrv"
	"github.com/hookrelay/hookrelay/internal/wait"
	"github.com/hookrelay/hookrelay/tracing"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// newTracer traces into memory: each span is exported as it ends.
func newTracer(t *testing.T) (*tracing.Tracer, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tracing.New(tp), exp
}

// spansOf waits until the exporter holds want spans named name (record spans end just after
// the commit that the API already shows) and returns all spans.
func spansOf(t *testing.T, exp *tracetest.InMemoryExporter, name string, want int) tracetest.SpanStubs {
	t.Helper()
	var spans tracetest.SpanStubs
	ok := wait.For(func() bool {
		spans = exp.GetSpans()
		return len(named(spans, name)) >= want
	})
	if !ok {
		t.Fatalf("%d %q spans after %s, want %d; have %v", len(named(spans, name)), name, wait.Timeout, want, spanNames(spans))
	}
	return spans
}

func named(spans tracetest.SpanStubs, name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func spanNames(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

func attr(s tracetest.SpanStub, key string) attribute.Value {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value
		}
	}
	return attribute.Value{}
}

// byID returns the span with the given id.
func byID(t *testing.T, spans tracetest.SpanStubs, id trace.SpanID) tracetest.SpanStub {
	t.Helper()
	for _, s := range spans {
		if s.SpanContext.SpanID() == id {
			return s
		}
	}
	t.Fatalf("no span %s among %v", id, spanNames(spans))
	return tracetest.SpanStub{}
}

// childOf fails unless s is a child of parent in the same trace.
func childOf(t *testing.T, s, parent tracetest.SpanStub) {
	t.Helper()
	if s.Parent.TraceID() != parent.SpanContext.TraceID() || s.Parent.SpanID() != parent.SpanContext.SpanID() {
		t.Errorf("%s span's parent is %s/%s, want the %s span %s/%s", s.Name, s.Parent.TraceID(), s.Parent.SpanID(),
			parent.Name, parent.SpanContext.TraceID(), parent.SpanContext.SpanID())
	}
}

// parseTraceParent reads a traceparent header as a receiver would.
func parseTraceParent(t *testing.T, h http.Header) trace.SpanContext {
	t.Helper()
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(h))
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		t.Fatalf("traceparent %q does not parse", h.Get("traceparent"))
	}
	return sc
}

func publishWithHeader(t *testing.T, s *testsrv.Server, h http.Header) api.PublishedEvent {
	t.Helper()
	status, raw, err := s.Request(context.Background(), http.MethodPost, "/api/v1/events",
		map[string]any{"event": "conversation.started", "data": conversation}, h)
	if err != nil || status != http.StatusAccepted {
		t.Fatalf("publish: %d %s %v", status, raw, err)
	}
	var p api.PublishedEvent
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// One event to two webhooks gives one trace: publish → enqueue → per webhook claim → send →
// record. Only the webhook with trace_context gets a traceparent, and it names its send span.
func TestTraceFollowsAnEventToEachWebhook(t *testing.T) {
	tracer, exp := newTracer(t)
	withCtx := testsrv.NewReceiver(t, nil)
	without := testsrv.NewReceiver(t, nil)
	s := testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true, Tracer: tracer})
	on := s.CreateWebhook(t, map[string]any{"name": "traced", "url": withCtx.URL, "events": []string{"conversation.started"},
		"trace_context": true})
	if !on.TraceContext || !s.GetWebhook(t, on.ID).TraceContext {
		t.Fatal("trace_context: true was not kept")
	}
	off := s.CreateWebhook(t, map[string]any{"name": "plain", "url": without.URL, "events": []string{"conversation.started"}})
	if off.TraceContext {
		t.Fatal("trace_context defaults to true, want false")
	}
	pub := s.Publish(t, "conversation.started", conversation, "")
	spans := spansOf(t, exp, "record", 2)
	publish, enqueue := named(spans, "publish"), named(spans, "enqueue")
	if len(publish) != 1 || len(enqueue) != 1 {
		t.Fatalf("%d publish and %d enqueue spans, want one each", len(publish), len(enqueue))
	}
	if publish[0].Parent.IsValid() {
		t.Errorf("publish span has parent %s without an incoming traceparent", publish[0].Parent.SpanID())
	}
	childOf(t, enqueue[0], publish[0])
	if got := attr(enqueue[0], "hookrelay.event.id").AsString(); got != pub.ID {
		t.Errorf("enqueue span names event %q, want %q", got, pub.ID)
	}
	sends := map[string]tracetest.SpanStub{}
	for _, send := range named(spans, "send") {
		claim := byID(t, spans, send.Parent.SpanID())
		if claim.Name != "claim" {
			t.Errorf("send span's parent is %q, want claim", claim.Name)
		}
		childOf(t, claim, enqueue[0])
		if got := attr(send, "hookrelay.event.id").AsString(); got != pub.ID {
			t.Errorf("send span names event %q, want %q", got, pub.ID)
		}
		if got := attr(send, "http.response.status_code").AsInt64(); got != 200 {
			t.Errorf("send span status code %d, want 200", got)
		}
		sends[attr(send, "hookrelay.webhook.id").AsString()] = send
	}
	if len(sends) != 2 || sends[on.ID].Name == "" || sends[off.ID].Name == "" {
		t.Fatalf("send spans for webhooks %v, want one for each of %s and %s", keys(sends), on.ID, off.ID)
	}
	for _, rec := range named(spans, "record") {
		if send := byID(t, spans, rec.Parent.SpanID()); send.Name != "send" {
			t.Errorf("record span's parent is %q, want send", send.Name)
		}
	}

	got := withCtx.Captures()
	if len(got) != 1 {
		t.Fatalf("traced receiver got %d requests, want 1", len(got))
	}
	sc := parseTraceParent(t, got[0].Header)
	if sc.TraceID() != publish[0].SpanContext.TraceID() {
		t.Errorf("traceparent carries trace %s, want the event's %s", sc.TraceID(), publish[0].SpanContext.TraceID())
	}
	if sc.SpanID() != sends[on.ID].SpanContext.SpanID() {
		t.Errorf("traceparent names span %s, want the send span %s", sc.SpanID(), sends[on.ID].SpanContext.SpanID())
	}
	for _, c := range without.Captures() {
		if v := c.Header.Values("traceparent"); len(v) > 0 {
			t.Errorf("webhook without trace_context got traceparent %q", v)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// failFirst answers the first request with status, the others 200.
func failFirst(status int) testsrv.Respond {
	return func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.WriteHeader(status)
			return
		}
		w.WriteHeader(http.StatusOK)
	}
}

// A retry is a second claim → send → record under the same enqueue span; each send span
// carries its answer, and each attempt's traceparent names its own send span.
func TestTraceShowsEachAttemptOfARetry(t *testing.T) {
	tracer, exp := newTracer(t)
	rc := testsrv.NewReceiver(t, failFirst(http.StatusInternalServerError))
	s := testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true, Tracer: tracer,
		RetrySchedule: []time.Duration{50 * time.Millisecond}})
	s.CreateWebhook(t, map[string]any{"name": "flaky", "url": rc.URL, "events": []string{"conversation.started"},
		"trace_context": true})
	pub := s.Publish(t, "conversation.started", conversation, "")
	d := s.WaitDelivery(t, s.EventDelivery(t, pub.ID).ID, 10*time.Second, testsrv.Finished)
	if d.Status != "succeeded" || d.AttemptCount != 2 {
		t.Fatalf("delivery %s after %d attempts, want succeeded after 2", d.Status, d.AttemptCount)
	}
	spans := spansOf(t, exp, "record", 2)
	enqueue := named(spans, "enqueue")
	if len(enqueue) != 1 {
		t.Fatalf("%d enqueue spans, want 1", len(enqueue))
	}
	sends := named(spans, "send")
	if len(sends) != 2 {
		t.Fatalf("%d send spans, want 2", len(sends))
	}
	slices.SortFunc(sends, func(a, b tracetest.SpanStub) int {
		return int(attr(a, "hookrelay.attempt").AsInt64() - attr(b, "hookrelay.attempt").AsInt64())
	})
	caps := rc.Captures()
	if len(caps) != 2 {
		t.Fatalf("receiver got %d requests, want 2", len(caps))
	}
	for i, want := range []int64{500, 200} {
		send := sends[i]
		if n := attr(send, "hookrelay.attempt").AsInt64(); n != int64(i+1) {
			t.Errorf("send span %d is attempt %d", i+1, n)
		}
		if got := attr(send, "http.response.status_code").AsInt64(); got != want {
			t.Errorf("attempt %d's send span has status code %d, want %d", i+1, got, want)
		}
		if failed := send.Status.Code.String() == "Error"; failed != (want == 500) {
			t.Errorf("attempt %d's send span status %v", i+1, send.Status)
		}
		childOf(t, byID(t, spans, send.Parent.SpanID()), enqueue[0])
		if sc := parseTraceParent(t, caps[i].Header); sc.SpanID() != send.SpanContext.SpanID() ||
			sc.TraceID() != enqueue[0].SpanContext.TraceID() {
			t.Errorf("attempt %d's traceparent %q does not name its send span %s", i+1, caps[i].Header.Get("traceparent"),
				send.SpanContext.SpanID())
		}
	}
	if sends[0].SpanContext.SpanID() == sends[1].SpanContext.SpanID() {
		t.Error("both attempts share one send span")
	}
}

// A publisher's own trace continues: the publish span is the child of the incoming
// traceparent, and every span of the event, down to the receiver's header, is in its trace.
func TestPublishHonoursAnIncomingTraceParent(t *testing.T) {
	tracer, exp := newTracer(t)
	rc := testsrv.NewReceiver(t, nil)
	s := testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true, Tracer: tracer})
	s.CreateWebhook(t, map[string]any{"name": "traced", "url": rc.URL, "events": []string{"conversation.started"},
		"trace_context": true})
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	pub := publishWithHeader(t, s, http.Header{"Traceparent": {"00-" + traceID + "-" + parentID + "-01"},
		"Tracestate": {"vendor=opaque"}})
	s.WaitDelivery(t, s.EventDelivery(t, pub.ID).ID, 10*time.Second, testsrv.Finished)
	spans := spansOf(t, exp, "record", 1)
	publish := named(spans, "publish")
	if len(publish) != 1 {
		t.Fatalf("%d publish spans, want 1", len(publish))
	}
	if got := publish[0].Parent.SpanID().String(); got != parentID || !publish[0].Parent.IsRemote() {
		t.Errorf("publish span's parent is %s (remote %v), want the caller's %s", got, publish[0].Parent.IsRemote(), parentID)
	}
	if got := publish[0].SpanContext.TraceState().Get("vendor"); got != "opaque" {
		t.Errorf("publish span's tracestate vendor=%q, want the caller's opaque", got)
	}
	for _, sp := range spans {
		if sp.SpanContext.TraceID().String() != traceID {
			t.Errorf("%s span is in trace %s, want the caller's %s", sp.Name, sp.SpanContext.TraceID(), traceID)
		}
	}
	if sc := parseTraceParent(t, rc.Captures()[0].Header); sc.TraceID().String() != traceID {
		t.Errorf("receiver's traceparent is in trace %s, want %s", sc.TraceID(), traceID)
	}
}

// A malformed traceparent is not the publisher's trace: the event is accepted and delivered
// as without one, in a trace of its own that the receiver still gets.
func TestPublishWithAMalformedTraceParentStartsATraceOfItsOwn(t *testing.T) {
	tracer, exp := newTracer(t)
	rc := testsrv.NewReceiver(t, nil)
	s := testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true, Tracer: tracer})
	s.CreateWebhook(t, map[string]any{"name": "traced", "url": rc.URL, "events": []string{"conversation.started"},
		"trace_context": true})
	pub := publishWithHeader(t, s, http.Header{"Traceparent": {"00-not-a-trace-01"}, "Tracestate": {"vendor=opaque"}})
	s.WaitDelivery(t, s.EventDelivery(t, pub.ID).ID, 10*time.Second, testsrv.Finished)
	spans := spansOf(t, exp, "record", 1)
	publish := named(spans, "publish")
	if len(publish) != 1 {
		t.Fatalf("%d publish spans, want 1", len(publish))
	}
	if publish[0].Parent.IsValid() {
		t.Errorf("publish span has parent %s from a malformed traceparent", publish[0].Parent.SpanID())
	}
	if sc := parseTraceParent(t, rc.Captures()[0].Header); sc.TraceID() != publish[0].SpanContext.TraceID() {
		t.Errorf("receiver's traceparent is in trace %s, want the event's own %s", sc.TraceID(), publish[0].SpanContext.TraceID())
	}
}

// The trace context is stored with the event, so a process that starts later on the same
// database (here: after the first stopped without sending anything) continues the trace its
// predecessor began.
func TestTraceContinuesAcrossARestart(t *testing.T) {
	tracer1, exp1 := newTracer(t)
	rc := testsrv.NewReceiver(t, nil)
	first := testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true, Tracer: tracer1, NoDispatch: true})
	first.CreateWebhook(t, map[string]any{"name": "traced", "url": rc.URL, "events": []string{"conversation.started"},
		"trace_context": true})
	pub := first.Publish(t, "conversation.started", conversation, "")
	first.Stop(t)
	enqueue := named(exp1.GetSpans(), "enqueue")
	if len(enqueue) != 1 {
		t.Fatalf("%d enqueue spans before the restart, want 1", len(enqueue))
	}
	if n := len(rc.Captures()); n != 0 {
		t.Fatalf("receiver got %d requests before the restart, want none", n)
	}

	tracer2, exp2 := newTracer(t)
	second := testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true, Tracer: tracer2, DBPath: first.DBPath})
	second.WaitDelivery(t, second.EventDelivery(t, pub.ID).ID, 10*time.Second, testsrv.Finished)
	spans := spansOf(t, exp2, "record", 1)
	claims := named(spans, "claim")
	if len(claims) != 1 {
		t.Fatalf("%d claim spans after the restart, want 1", len(claims))
	}
	if claims[0].Parent.SpanID() != enqueue[0].SpanContext.SpanID() || claims[0].Parent.TraceID() != enqueue[0].SpanContext.TraceID() {
		t.Errorf("claim after the restart hangs from %s/%s, want the first process's enqueue span %s/%s",
			claims[0].Parent.TraceID(), claims[0].Parent.SpanID(), enqueue[0].SpanContext.TraceID(), enqueue[0].SpanContext.SpanID())
	}
	if sc := parseTraceParent(t, rc.Captures()[0].Header); sc.TraceID() != enqueue[0].SpanContext.TraceID() {
		t.Errorf("receiver's traceparent is in trace %s, want the publish's %s", sc.TraceID(), enqueue[0].SpanContext.TraceID())
	}
}

// With tracing off no traceparent goes out, even to a webhook that asks for one, and the
// event stores none.
func TestNoTraceParentWithTracingOff(t *testing.T) {
	rc := testsrv.NewReceiver(t, nil)
	s := testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true})
	s.CreateWebhook(t, map[string]any{"name": "traced", "url": rc.URL, "events": []string{"conversation.started"},
		"trace_context": true})
	pub := publishWithHeader(t, s, http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}})
	s.WaitDelivery(t, s.EventDelivery(t, pub.ID).ID, 10*time.Second, testsrv.Finished)
	for _, c := range rc.Captures() {
		for k := range c.Header {
			if strings.EqualFold(k, "traceparent") || strings.EqualFold(k, "tracestate") {
				t.Errorf("tracing off, yet the receiver got %s: %q", k, c.Header.Get(k))
			}
		}
	}
	ev, err := s.Store.GetEvent(context.Background(), pub.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ev.TraceParent != nil {
		t.Errorf("tracing off, yet the event stored traceparent %q", *ev.TraceParent)
	}
}

// A batch is one transaction, so one enqueue span: each of its events' attempts hangs from it.
func TestBatchPublishSharesOneEnqueueSpan(t *testing.T) {
	tracer, exp := newTracer(t)
	rc := testsrv.NewReceiver(t, nil)
	s := testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true, Tracer: tracer})
	s.CreateWebhook(t, map[string]any{"name": "traced", "url": rc.URL, "events": []string{"conversation.started"},
		"trace_context": true})
	events := make([]map[string]any, 3)
	for i := range events {
		events[i] = map[string]any{"event": "conversation.started", "data": map[string]any{"conversation_id": i + 1, "visitor_name": "Ann"}}
	}
	s.Do(t, http.MethodPost, "/api/v1/events/batch", map[string]any{"events": events}, http.StatusAccepted, nil)
	spans := spansOf(t, exp, "record", 3)
	publish, enqueue := named(spans, "publish"), named(spans, "enqueue")
	if len(publish) != 1 || len(enqueue) != 1 {
		t.Fatalf("%d publish and %d enqueue spans for one batch, want one each", len(publish), len(enqueue))
	}
	childOf(t, enqueue[0], publish[0])
	if n := attr(enqueue[0], "hookrelay.event.count").AsInt64(); n != 3 {
		t.Errorf("enqueue span counts %d events, want 3", n)
	}
	claims := named(spans, "claim")
	if len(claims) != 3 {
		t.Fatalf("%d claim spans, want 3", len(claims))
	}
	seen := map[string]bool{}
	for _, c := range claims {
		childOf(t, c, enqueue[0])
		seen[attr(c, "hookrelay.event.id").AsString()] = true
	}
	if len(seen) != 3 {
		t.Errorf("claim spans name events %v, want three different ones", keys(seen))
	}
	for _, c := range rc.Captures() {
		if sc := parseTraceParent(t, c.Header); sc.TraceID() != publish[0].SpanContext.TraceID() {
			t.Errorf("receiver's traceparent is in trace %s, want the batch's %s", sc.TraceID(), publish[0].SpanContext.TraceID())
		}
	}
}

// A redelivery, however long after, joins the event's original trace: the context is the
// event's, not the request's that asked for it.
func TestRedeliveryJoinsTheOriginalTrace(t *testing.T) {
	tracer, exp := newTracer(t)
	rc := testsrv.NewReceiver(t, failFirst(http.StatusBadRequest))
	s := testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true, Tracer: tracer, RetrySchedule: []time.Duration{}})
	s.CreateWebhook(t, map[string]any{"name": "traced", "url": rc.URL, "events": []string{"conversation.started"},
		"trace_context": true})
	pub := s.Publish(t, "conversation.started", conversation, "")
	d := s.WaitDelivery(t, s.EventDelivery(t, pub.ID).ID, 10*time.Second, testsrv.Finished)
	if d.Status != "failed" {
		t.Fatalf("first attempt left the delivery %s, want failed", d.Status)
	}
	// The API shows the outcome once it is committed; the lease goes just after, and until
	// then the redelivery is refused as under way.
	wait.Until(t, "the redelivery is accepted", func() bool {
		status, _, err := s.Request(context.Background(), http.MethodPost, "/api/v1/deliveries/"+d.ID+"/retry", nil, nil)
		return err == nil && status == http.StatusAccepted
	})
	s.WaitDelivery(t, d.ID, 10*time.Second, func(d api.Delivery) bool { return d.Status == "succeeded" })
	spans := spansOf(t, exp, "record", 2)
	enqueue := named(spans, "enqueue")
	claims := named(spans, "claim")
	if len(enqueue) != 1 || len(claims) != 2 {
		t.Fatalf("%d enqueue and %d claim spans, want 1 and 2", len(enqueue), len(claims))
	}
	for _, c := range claims {
		childOf(t, c, enqueue[0])
	}
}

// A spilled webhook's events get no delivery rows at publish (they are owed, and taken from
// the spill later): their attempts still continue each event's trace, as those of the events
// published before the spill do.
func TestSpilledEventsContinueTheirTraces(t *testing.T) {
	tracer, exp := newTracer(t)
	release := make(chan struct{})
	rc := testsrv.NewReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		select {
		case <-release:
		case <-time.After(wait.Timeout):
		}
		w.WriteHeader(http.StatusOK)
	})
	s := testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true, Tracer: tracer})
	wh := s.CreateWebhook(t, map[string]any{"name": "spilled", "url": rc.URL, "events": []string{"conversation.started"},
		"trace_context": true})
	// The webhook's first window is held at the receiver before it is spilled, so no take
	// can start until release and the spill lasts until then on either store. (On
	// PostgreSQL a take that leaves nothing owed ends the spill, requests in flight or not:
	// a take between the publishes below ended it.)
	var ids []string
	for range engine.SlowStart {
		ids = append(ids, s.Publish(t, "conversation.started", conversation, "").ID)
	}
	rc.WaitFor(t, engine.SlowStart, wait.Timeout)
	s.Store.RequestSpill([]string{wh.ID}) // applied by the next publish
	for range 3 {
		ids = append(ids, s.Publish(t, "conversation.started", conversation, "").ID)
	}
	spilled, err := s.Store.SpilledWebhooks(context.Background())
	if err != nil || !slices.Contains(spilled, wh.ID) {
		t.Fatalf("spilled webhooks %v (%v): want %s, its requests are held", spilled, err, wh.ID)
	}
	close(release)
	spans := spansOf(t, exp, "record", len(ids))
	enqueues := map[string]tracetest.SpanStub{} // by event id
	for _, e := range named(spans, "enqueue") {
		enqueues[attr(e, "hookrelay.event.id").AsString()] = e
	}
	for _, c := range named(spans, "claim") {
		ev := attr(c, "hookrelay.event.id").AsString()
		if !slices.Contains(ids, ev) {
			t.Fatalf("claim span for event %q, not one published here", ev)
		}
		childOf(t, c, enqueues[ev])
	}
	if n := len(named(spans, "claim")); n != len(ids) {
		t.Errorf("%d claim spans, want one per event", n)
	}
	for _, c := range rc.Captures() {
		sc := parseTraceParent(t, c.Header)
		want := enqueues[c.Header.Get("X-Webhook-Id")].SpanContext.TraceID()
		if sc.TraceID() != want {
			t.Errorf("event %s reached the receiver in trace %s, want its own %s", c.Header.Get("X-Webhook-Id"), sc.TraceID(), want)
		}
	}
}
