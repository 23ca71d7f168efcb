// Package tracing gives Hookrelay its OpenTelemetry spans: publish and enqueue in the API,
// claim, send and record in the engine. The trace of an event crosses the outbox: the
// enqueue span's W3C traceparent is stored with the event, and every attempt, however
// much later and in whichever process, starts its spans from it.
//
// Tracing is off unless a Tracer is built, and off means a nil *Tracer: every method
// returns at once on nil, without allocating, so the publish and attempt paths cost what
// they did before tracing existed. The global OpenTelemetry provider is never used, so
// nothing else in the process can switch it on behind the server's back (only the SDK's
// error handler is global, as the SDK offers no other).
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Tracer starts Hookrelay's spans. A nil *Tracer is tracing switched off.
type Tracer struct {
	tracer   trace.Tracer
	shutdown func(context.Context) error
}

// New traces through tp (tests hand in a provider with an in-memory exporter).
func New(tp trace.TracerProvider) *Tracer {
	return &Tracer{tracer: tp.Tracer("github.com/hookrelay/hookrelay")}
}

// NewOTLP traces to an OTLP/HTTP collector at endpoint (http://host:4318; a URL without a
// path gets the standard /v1/traces). Spans are exported in batches, off the request path;
// a failed export is logged to logger (nil: slog's default), in the server's log format,
// and the spans are dropped: tracing never holds up deliveries.
func NewOTLP(ctx context.Context, endpoint, version string, logger *slog.Logger) (*Tracer, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) URL such as http://localhost:4318", endpoint)
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(endpoint)}
	if strings.Trim(u.Path, "/") == "" {
		opts = append(opts, otlptracehttp.WithURLPath("/v1/traces"))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	// The SDK reports export failures only through this process-wide handler.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { logger.Warn("export traces", "err", err) }))
	res := resource.NewSchemaless(attribute.String("service.name", "hookrelay"), attribute.String("service.version", version))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	t := New(tp)
	t.shutdown = tp.Shutdown
	return t, nil
}

// Shutdown exports what is still buffered. Safe on nil.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil || t.shutdown == nil {
		return nil
	}
	return t.shutdown(ctx)
}

// Span is one started span; its zero value (what a nil Tracer hands out) does nothing.
type Span struct{ s trace.Span }

// End ends the span, marking it failed when err is not nil.
func (s Span) End(err error) {
	if s.s == nil {
		return
	}
	if err != nil {
		s.s.SetStatus(codes.Error, err.Error())
	}
	s.s.End()
}

// EndHTTP ends a server span with the status the request was answered with.
func (s Span) EndHTTP(status int) {
	if s.s == nil {
		return
	}
	s.s.SetAttributes(attribute.Int("http.response.status_code", status))
	if status >= 500 {
		s.s.SetStatus(codes.Error, http.StatusText(status))
	}
	s.s.End()
}

// Recording reports whether the span records what it is told (it is traced and sampled).
func (s Span) Recording() bool { return s.s != nil && s.s.IsRecording() }

// TraceParent is the span's context as a W3C traceparent header value, "" for no span.
func (s Span) TraceParent() string {
	if s.s == nil {
		return ""
	}
	return format(s.s.SpanContext())
}

// SetEvents names the events the span carries.
func (s Span) SetEvents(ids ...string) {
	if s.s == nil || len(ids) == 0 {
		return
	}
	if len(ids) == 1 {
		s.s.SetAttributes(attribute.String("hookrelay.event.id", ids[0]))
	} else {
		s.s.SetAttributes(attribute.Int("hookrelay.event.count", len(ids)))
	}
}

var propagator = propagation.TraceContext{}

// StartPublish starts the server span of a publish request, continuing the caller's trace
// when the request carries a W3C traceparent (and tracestate).
func (t *Tracer) StartPublish(ctx context.Context, r *http.Request) (context.Context, Span) {
	if t == nil {
		return ctx, Span{}
	}
	ctx = propagator.Extract(ctx, propagation.HeaderCarrier(r.Header))
	ctx, s := t.tracer.Start(ctx, "publish", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path)))
	return ctx, Span{s}
}

// StartEnqueue starts the span of writing events to the outbox; its traceparent is what
// the events store, so every attempt descends from it.
func (t *Tracer) StartEnqueue(ctx context.Context) (context.Context, Span) {
	if t == nil {
		return ctx, Span{}
	}
	ctx, s := t.tracer.Start(ctx, "enqueue", trace.WithSpanKind(trace.SpanKindProducer))
	return ctx, Span{s}
}

// Delivery names an attempt in its spans.
type Delivery struct {
	DeliveryID, WebhookID, EventID string
	Attempt                        int
}

func (d Delivery) attributes() trace.SpanStartEventOption {
	return trace.WithAttributes(attribute.String("hookrelay.delivery.id", d.DeliveryID),
		attribute.String("hookrelay.webhook.id", d.WebhookID), attribute.String("hookrelay.event.id", d.EventID),
		attribute.Int("hookrelay.attempt", d.Attempt))
}

// Attempt is one delivery attempt's send span, started under its claim span.
type Attempt struct{ send trace.Span }

// StartAttempt records the claim of a delivery (from claimedAt until now) and starts its
// send span, both under the event's stored traceparent. An event stored without one (it
// was published with tracing off) is not traced.
func (t *Tracer) StartAttempt(eventTraceParent string, claimedAt time.Time, d Delivery) Attempt {
	if t == nil || eventTraceParent == "" {
		return Attempt{}
	}
	parent, ok := parse(eventTraceParent)
	if !ok {
		return Attempt{}
	}
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), parent)
	attrs := d.attributes()
	ctx, claim := t.tracer.Start(ctx, "claim", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithTimestamp(claimedAt), attrs)
	claim.End()
	_, send := t.tracer.Start(ctx, "send", trace.WithSpanKind(trace.SpanKindClient), attrs)
	return Attempt{send}
}

// TraceParent is the send span's context, for the receiver's traceparent header and for
// the record span; "" when not traced.
func (a Attempt) TraceParent() string {
	if a.send == nil {
		return ""
	}
	return format(a.send.SpanContext())
}

// End ends the send span with the receiver's answer: status (0 when none) or err, and the
// delivery's outcome. An attempt that sent nothing (the webhook was disabled meanwhile) is
// not an error.
func (a Attempt) End(status int, err error, outcome string) {
	if a.send == nil {
		return
	}
	if status != 0 {
		a.send.SetAttributes(attribute.Int("http.response.status_code", status))
	}
	a.send.SetAttributes(attribute.String("hookrelay.delivery.status", outcome))
	switch {
	case err != nil:
		a.send.SetStatus(codes.Error, err.Error())
	case status != 0 && (status < 200 || status > 299):
		a.send.SetStatus(codes.Error, http.StatusText(status))
	}
	a.send.End()
}

// Recorded adds the record span of an attempt: from handedAt, when its result went to the
// recorder, until now, when the batch holding it committed (err nil) or was given up.
func (t *Tracer) Recorded(sendTraceParent string, handedAt time.Time, batch int, err error) {
	if t == nil || sendTraceParent == "" {
		return
	}
	parent, ok := parse(sendTraceParent)
	if !ok {
		return
	}
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), parent)
	_, s := t.tracer.Start(ctx, "record", trace.WithTimestamp(handedAt),
		trace.WithAttributes(attribute.Int("hookrelay.record.batch", batch)))
	if err != nil {
		s.SetStatus(codes.Error, err.Error())
	}
	s.End()
}

// format writes a span context as a version 00 traceparent.
func format(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

// parse reads a traceparent written by format (or by anyone following W3C Trace Context).
func parse(traceParent string) (trace.SpanContext, bool) {
	ctx := propagator.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceParent})
	sc := trace.SpanContextFromContext(ctx)
	return sc, sc.IsValid()
}
