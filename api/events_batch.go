package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

// BatchStore is what publishing a batch of events needs.
type BatchStore interface {
	Publish(ctx context.Context, in []store.PublishInput) ([]store.Published, error)
}

// MaxBatchEvents bounds one batch publish.
const MaxBatchEvents = 1000

// BatchInput publishes several events at once.
type BatchInput struct {
	Events []EventInput `json:"events"`
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
//	@Router			/api/v1/events/batch [post]
func (s *Server) publishEventBatch(c *gin.Context) {
	raw, ok := readBody(c, false)
	if !ok {
		return
	}
	in, quick := quickBatch(raw)
	var obj object
	if !quick {
		// Something is wrong with the batch: the general path finds what, and names it.
		if obj, ok = decodeObject(c, raw, false, "events"); !ok {
			return
		}
	}
	key, hash, ok := idempotencyKey(c)
	if !ok {
		return
	}
	if !quick {
		var err error
		if in, err = buildBatch(obj); err != nil {
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
	res, err := s.batches.Publish(c.Request.Context(), in)
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
			Timestamp: models.FormatSeedTime(p.Event.OccurredAt), Deliveries: p.Event.DeliveryCount}
		out.Deliveries += p.Event.DeliveryCount
	}
	if replayed {
		c.Header("Idempotent-Replayed", "true")
	}
	s.observePublished(res)
	c.JSON(http.StatusAccepted, out)
}

// quickBatch decodes and validates a well-formed batch in one pass over the body, where
// decodeObject and buildBatch take three (the body, the array, each item) before the data
// objects: a batch of 100 events spent as long in those as in its transaction. It reports
// false for anything it does not accept, without saying why; the general path then finds the
// same result, or the problem to answer.
func quickBatch(raw []byte) ([]store.PublishInput, bool) {
	// A map, not a struct: struct fields match keys case-insensitively, and "Events" or an
	// item's "Data" must be refused as unknown, as the general path does.
	var body map[string][]object
	if json.Unmarshal(raw, &body) != nil || len(body) != 1 {
		return nil, false
	}
	items, ok := body["events"]
	if !ok || len(items) == 0 || len(items) > MaxBatchEvents {
		return nil, false
	}
	in := make([]store.PublishInput, len(items))
	for i, o := range items {
		if o == nil {
			return nil, false
		}
		for k := range o {
			if k != "event" && k != "data" && k != "timestamp" {
				return nil, false
			}
		}
		p, err := buildPublish(o)
		if err != nil {
			return nil, false
		}
		in[i] = p
	}
	return in, true
}

// buildBatch validates every item of a batch; field errors are prefixed "events[i].".
func buildBatch(obj object) ([]store.PublishInput, error) {
	verr := &models.ValidationError{}
	raw, given := obj["events"]
	var items []json.RawMessage
	switch {
	case !given || bytes.Equal(bytes.TrimSpace(raw), []byte("null")):
		verr.Add("events", "is required: an array of 1 to %d events", MaxBatchEvents)
	case json.Unmarshal(raw, &items) != nil:
		verr.Add("events", "must be an array of events")
	case len(items) == 0 || len(items) > MaxBatchEvents:
		verr.Add("events", "must hold 1 to %d events, not %d", MaxBatchEvents, len(items))
	}
	if err := verr.OrNil(); err != nil {
		return nil, err
	}
	in := make([]store.PublishInput, len(items))
	for i, item := range items {
		prefix := "events[" + strconv.Itoa(i) + "]"
		var o object
		if err := json.Unmarshal(item, &o); err != nil || o == nil {
			verr.Add(prefix, "must be an object with event, data and an optional timestamp")
			continue
		}
		unknown := false
		for k := range o {
			if k != "event" && k != "data" && k != "timestamp" {
				verr.Add(prefix+"."+k, "unknown field")
				unknown = true
			}
		}
		if unknown {
			continue
		}
		p, err := buildPublish(o)
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

// observePublished tells the metrics about newly published events (replays are not news).
func (s *Server) observePublished(res []store.Published) {
	if s.cfg.Metrics == nil {
		return
	}
	for _, p := range res {
		if !p.Replayed {
			s.cfg.Metrics.Published(p.Event.Type, p.Event.DeliveryCount)
		}
	}
}
