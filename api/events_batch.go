package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strconv"

	"github.com/gin-gonic/gin"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/tracing"
)

// BatchStore is what publishing a batch of events needs.
type BatchStore interface {
	Publish(ctx context.Context, in []store.PublishInput) ([]store.Published, error)
}

// MaxBatchEvents bounds one batch publish.
const MaxBatchEvents = 1000

// BatchInput publishes several events at once. Events is nil when absent or null; an item that
// is not an object, or has unknown keys, reports so with its get.
type BatchInput struct {
	Events []Optional[EventInput] `json:"events"`
}

// PublishedBatch answers a batch publish: one result per event, in request order.
type PublishedBatch struct {
	Events     []PublishedEvent `json:"events"`
	Deliveries int              `json:"deliveries" example:"4"` // in all
} // @name PublishedBatch

// publishEventBatch validates and publishes up to MaxBatchEvents events in one transaction.
//
//	@Summary		Publish a batch of events
//	@Description	Publishes up to 1000 events at once, each validated as by POST /events (errors name the item: events[3].data.content). All or nothing: one invalid event rejects the batch, and the whole batch is stored in one transaction, which is how a publisher gets well past the single-request rate. The 1 MiB body limit applies to the whole batch. Idempotency-Key covers the batch: the same key with the same body returns the first results; with a different body, 409.
//	@Tags			events
//	@Accept			json
//	@Produce		json
//	@Security		BearerAuth
//	@Param			Idempotency-Key	header		string		false	"makes retries of this request safe"
//	@Param			body			body		BatchInput	true	"the events"
//	@Success		202				{object}	PublishedBatch
//	@Failure		400				{object}	Problem
//	@Failure		401				{object}	Problem
//	@Failure		409				{object}	Problem
//	@Failure		413				{object}	Problem
//	@Failure		415				{object}	Problem
//	@Failure		422				{object}	Problem
//	@x-request-examples	{"both":{"summary":"A conversation starts and its first message arrives","value":{"events":[{"event":"conversation.started","data":{"conversation_id":123,"visitor_name":"John Doe","visitor_email":"john@example.com","visitor_phone":"+1234567890","visitor_ip":"192.168.1.100","current_url":"https://example.com/products","status":"open","created_at":"2025-01-15T10:30:00+00:00"}},{"event":"message.received","data":{"message_id":456,"content":"Hello, I need help with my order.","is_from_admin":false,"admin_name":null,"conversation_id":123,"visitor_name":"John Doe","visitor_email":"john@example.com","visitor_phone":"+1234567890","visitor_ip":"192.168.1.100","current_url":"https://example.com/products","status":"open","created_at":"2025-01-15T10:31:00+00:00"}}]}}}
//	@x-problem-409		"Idempotency-Key \"import-2025-01-15\" was used for a different request"
//	@x-problem-422		{"detail":"events[1].data.content: must be a non-empty string","errors":[{"field":"events[1].data.content","message":"must be a non-empty string"}]}
//	@Router			/api/v1/events/batch [post]
func (s *Server) publishEventBatch(c *gin.Context) {
	ctx, span := s.cfg.Tracer.StartPublish(c.Request.Context(), c.Request)
	defer endPublish(span, c)
	raw, ok := readBody(c, false)
	if !ok {
		return
	}
	in, quick := quickBatch(raw)
	var batch BatchInput
	if !quick {
		// Something is wrong with the batch: the general path finds what, and names it.
		if batch, ok = decodeInput[BatchInput](c, raw, false); !ok {
			return
		}
	}
	key, hash, ok := idempotencyKey(c)
	if !ok {
		return
	}
	if !quick {
		var err error
		if in, err = buildBatch(batch); err != nil {
			storeProblem(c, err)
			return
		}
	}
	if key != "" {
		// The store keys idempotency per event; the batch's key plus the item's position
		// makes one per item, all sharing the batch's hash, so a retried batch replays as a
		// whole and a different batch under the same key conflicts.
		for i := range in {
			in[i].IdempotencyKey, in[i].RequestHash = key+"#"+strconv.Itoa(i), hash
		}
	}
	// One enqueue span for the batch, as it is one transaction: every event of it stores
	// the same trace context.
	ctx, enqueue := s.cfg.Tracer.StartEnqueue(ctx)
	if tp := enqueue.TraceParent(); tp != "" {
		for i := range in {
			in[i].TraceParent = tp
		}
	}
	res, err := s.batches.Publish(ctx, in)
	enqueue.SetEvents(eventIDs(enqueue, res)...)
	enqueue.End(err)
	if key != "" && errors.Is(err, models.ErrConflict) {
		// The store names the per-item key; the client knows only the batch's.
		problem(c, http.StatusConflict, "Idempotency-Key "+strconv.Quote(key)+" was used for a different request")
		return
	}
	if err != nil {
		storeProblem(c, err)
		return
	}
	out := PublishedBatch{Events: make([]PublishedEvent, len(res))}
	replayed := false
	for i, p := range res {
		if p.Replayed {
			replayed = true
		}
		out.Events[i] = PublishedEvent{ID: p.Event.ID, Event: p.Event.Type,
			Timestamp: models.FormatTimestamp(p.Event.OccurredAt), Deliveries: p.Event.DeliveryCount}
		out.Deliveries += p.Event.DeliveryCount
	}
	if replayed {
		c.Header("Idempotent-Replayed", "true")
	}
	s.observePublished(res)
	c.JSON(http.StatusAccepted, out)
}

// eventIDs lists the events a traced enqueue span published (none when it is not traced).
func eventIDs(span tracing.Span, res []store.Published) []string {
	if !span.Recording() {
		return nil
	}
	ids := make([]string, len(res))
	for i, p := range res {
		ids[i] = p.Event.ID
	}
	return ids
}

// quickBatch decodes and validates a well-formed batch in one pass over the body, where
// parseInput takes three (the body, the array, each item) before the data objects: a batch of
// 100 events spent as long in those as in its transaction. It reports false for anything it
// does not accept, without saying why; the general path then finds the same result, or the
// problem to answer.
func quickBatch(raw []byte) ([]store.PublishInput, bool) {
	// A map, not a struct: struct fields match keys case-insensitively, and "Events" must be
	// refused as unknown, as the general path does.
	var body map[string][]object
	if json.Unmarshal(raw, &body) != nil || len(body) != 1 {
		return nil, false
	}
	items, ok := body["events"]
	if !ok || len(items) == 0 || len(items) > MaxBatchEvents {
		return nil, false
	}
	in := make([]store.PublishInput, len(items))
	refused := &models.ValidationError{}
	for i, o := range items {
		var item EventInput
		if o == nil {
			return nil, false
		}
		if decodeFields(o, reflect.ValueOf(&item).Elem(), "", refused); refused.Errors != nil {
			return nil, false
		}
		p, err := buildPublish(&item)
		if err != nil {
			return nil, false
		}
		in[i] = p
	}
	return in, true
}

// buildBatch validates every item of a batch; field errors are prefixed "events[i].".
func buildBatch(batch BatchInput) ([]store.PublishInput, error) {
	verr := &models.ValidationError{}
	switch n := len(batch.Events); {
	case batch.Events == nil:
		verr.Add("events", "is required: an array of 1 to %d events", MaxBatchEvents)
	case n == 0 || n > MaxBatchEvents:
		verr.Add("events", "must hold 1 to %d events, not %d", MaxBatchEvents, n)
	}
	if err := verr.OrNil(); err != nil {
		return nil, err
	}
	in := make([]store.PublishInput, len(batch.Events))
	for i := range batch.Events {
		prefix := "events[" + strconv.Itoa(i) + "]"
		item, ok := batch.Events[i].get(verr, prefix)
		if !ok {
			continue
		}
		p, err := buildPublish(&item)
		var ierr *models.ValidationError
		switch {
		case errors.As(err, &ierr):
			for _, fe := range ierr.Errors {
				verr.Add(prefix+"."+fe.Field, "%s", fe.Message)
			}
		case err != nil:
			return nil, err
		default:
			in[i] = p
		}
	}
	if err := verr.OrNil(); err != nil {
		return nil, err
	}
	return in, nil
}

// observePublished tells the metrics and the change stream about newly published events
// (replays are not news).
func (s *Server) observePublished(res []store.Published) {
	s.notePublished(res)
	if s.cfg.Metrics == nil {
		return
	}
	for _, p := range res {
		if !p.Replayed {
			s.cfg.Metrics.Published(p.Event.Type, p.Event.DeliveryCount)
		}
	}
}
