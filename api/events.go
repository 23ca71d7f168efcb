package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/tracing"
)

// EventStore is what publishing one event and reading events need.
type EventStore interface {
	PublishOne(ctx context.Context, in store.PublishInput) (store.Published, error)
	ListEvents(ctx context.Context, eventType string, p models.Page) ([]*models.Event, string, error)
	GetEvent(ctx context.Context, id string) (*models.Event, error)
	ListDeliveries(ctx context.Context, f store.DeliveryFilter, p models.Page) ([]*models.Delivery, string, error)
	EventDeliveryCounts(ctx context.Context, eventIDs []string) (map[string]models.DeliveryCounts, error)
}

// EventInput publishes an event.
type EventInput struct {
	Event     Optional[string] `json:"event" enums:"conversation.started,message.received" example:"conversation.started" validate:"required"`
	Data      json.RawMessage  `json:"data" swaggertype:"object" validate:"required"`
	Timestamp Optional[string] `json:"timestamp" example:"2025-01-15T10:30:00+00:00" extensions:"x-nullable"`
}

// PublishedEvent answers a publish.
type PublishedEvent struct {
	ID         string `json:"id" example:"evt_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f"`
	Event      string `json:"event" example:"conversation.started"`
	Timestamp  string `json:"timestamp" example:"2025-01-15T10:30:00+00:00"`
	Deliveries int    `json:"deliveries" example:"2"`
} // @name PublishedEvent

// Event is a published event.
type Event struct {
	ID            string    `json:"id" example:"evt_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f"`
	Event         string    `json:"event" example:"conversation.started"`
	Timestamp     string    `json:"timestamp" example:"2025-01-15T10:30:00+00:00"`
	CreatedAt     time.Time `json:"created_at"`
	DeliveryCount int       `json:"delivery_count" example:"2"`
	// Deliveries by status now: pending (not finished, retries to come), succeeded, failed
	// (out of attempts or refused) and cancelled (the webhook was disabled or deleted).
	DeliveryCounts models.DeliveryCounts `json:"delivery_counts"`
	Payload        json.RawMessage       `json:"payload,omitempty" swaggertype:"object" extensions:"x-event-payload"`
	Deliveries     []Delivery            `json:"deliveries,omitempty"`
} // @name Event

// EventType describes one event of the catalogue.
type EventType struct {
	Name        string          `json:"name" example:"conversation.started"`
	Description string          `json:"description" example:"A visitor starts a new conversation"`
	Schema      map[string]any  `json:"schema" swaggertype:"object" extensions:"x-example-of=event-schema"`
	Example     json.RawMessage `json:"example" swaggertype:"object" extensions:"x-event-payload"`
} // @name EventType

func eventOut(e *models.Event) Event {
	return Event{ID: e.ID, Event: e.Type, Timestamp: models.FormatTimestamp(e.OccurredAt), CreatedAt: e.CreatedAt,
		DeliveryCount: e.DeliveryCount}
}

// publishEvent validates and publishes an event to every enabled subscribed webhook.
//
//	@Summary		Publish an event
//	@Description	Validates data against the event type (see /event-types), stores the event and one delivery per enabled subscribed webhook in one transaction, and returns at once; deliveries follow asynchronously. Send Idempotency-Key to make retries safe: the same key with the same body returns the first result, with a different body 409.
//	@Tags			events
//	@Accept			json
//	@Produce		json
//	@Security		BearerAuth
//	@Param			Idempotency-Key	header		string		false	"makes retries of this request safe"
//	@Param			body			body		EventInput	true	"the event"
//	@Success		202				{object}	PublishedEvent
//	@Failure		400				{object}	Problem
//	@Failure		401				{object}	Problem
//	@Failure		409				{object}	Problem
//	@Failure		413				{object}	Problem
//	@Failure		415				{object}	Problem
//	@Failure		422				{object}	Problem
//	@x-problem-409		"Idempotency-Key \"conv-123-started\" was used for a different request"
//	@x-problem-422		{"detail":"data.conversation_id: must be a positive integer","errors":[{"field":"data.conversation_id","message":"must be a positive integer"}]}
//	@Router			/api/v1/events [post]
func (s *Server) publishEvent(c *gin.Context) {
	ctx, span := s.cfg.Tracer.StartPublish(c.Request.Context(), c.Request)
	defer endPublish(span, c)
	event, ok := readInput[EventInput](c, false)
	if !ok {
		return
	}
	key, hash, ok := idempotencyKey(c)
	if !ok {
		return
	}
	in, err := buildPublish(&event)
	if err != nil {
		storeProblem(c, err)
		return
	}
	in.IdempotencyKey, in.RequestHash = key, hash
	ctx, enqueue := s.cfg.Tracer.StartEnqueue(ctx)
	in.TraceParent = enqueue.TraceParent()
	// Shares a transaction with concurrent publishes (group commit); answers once it committed.
	p, err := s.events.PublishOne(ctx, in)
	if err == nil {
		enqueue.SetEvents(p.Event.ID)
	}
	enqueue.End(err)
	if err != nil {
		storeProblem(c, err)
		return
	}
	res := []store.Published{p}
	// The store tells the dispatcher what the commit queued (store.Store.OnQueued).
	if p.Replayed {
		c.Header("Idempotent-Replayed", "true")
	}
	s.observePublished(res)
	c.JSON(http.StatusAccepted, PublishedEvent{ID: p.Event.ID, Event: p.Event.Type,
		Timestamp: models.FormatTimestamp(p.Event.OccurredAt), Deliveries: p.Event.DeliveryCount})
}

// endPublish ends a publish span with the status the request was answered with.
func endPublish(span tracing.Span, c *gin.Context) { span.EndHTTP(c.Writer.Status()) }

// idempotencyKey reads the Idempotency-Key header (answering 400 itself when it is too long)
// and the hash of the raw body that tells a retried request from the key reused for another.
// Both are empty without the header.
func idempotencyKey(c *gin.Context) (key, hash string, ok bool) {
	key = strings.TrimSpace(c.GetHeader("Idempotency-Key"))
	if len(key) > 255 {
		problem(c, http.StatusBadRequest, "Idempotency-Key must be at most 255 characters",
			models.FieldError{Field: "Idempotency-Key", Message: "must be at most 255 characters"})
		return "", "", false
	}
	if key == "" {
		return "", "", true
	}
	raw, _ := c.Get("rawBody")
	sum := sha256.Sum256(raw.([]byte))
	return key, hex.EncodeToString(sum[:]), true
}

// buildPublish validates an event into what the store writes; the catalogue judges its data.
func buildPublish(in *EventInput) (store.PublishInput, error) {
	verr := &models.ValidationError{}
	name, given := in.Event.get(verr, "event")
	et, known := models.LookupEventType(name)
	switch {
	case !in.Event.Set:
		verr.Add("event", "is required: one of %s", strings.Join(models.EventTypeNames(), ", "))
	case given && !known:
		verr.Add("event", "unknown event type %q; known: %s", name, strings.Join(models.EventTypeNames(), ", "))
	}
	occurred := time.Now().UTC().Truncate(time.Second)
	if ts, ok := in.Timestamp.get(verr, "timestamp"); ok && !in.Timestamp.Null {
		t, err := models.ParseEventTime(ts)
		if err != nil {
			verr.Add("timestamp", "%s", err.Error())
		} else {
			occurred = t
		}
	}
	if verr.OrNil() != nil || !known {
		if in.Data == nil {
			verr.Add("data", "is required")
		}
		return store.PublishInput{}, verr
	}
	body, err := et.BuildBody(in.Data, occurred)
	if err != nil {
		return store.PublishInput{}, err
	}
	return store.PublishInput{Type: et.Name, Payload: body, OccurredAt: occurred}, nil
}

// listEvents lists published events, newest first.
//
//	@Summary	List events
//	@Tags		events
//	@Produce	json
//	@Security	BearerAuth
//	@Param		event	query		string	false	"only this event type"	Enums(conversation.started, message.received)
//	@Param		limit	query		int		false	"page size (1-200)"	default(50)
//	@Param		cursor	query		string	false	"next_cursor of the previous page"
//	@Success	200		{object}	List[Event]
//	@Failure	400		{object}	Problem
//	@Failure	401		{object}	Problem
//	@Router		/api/v1/events [get]
func (s *Server) listEvents(c *gin.Context) {
	p, ok := page(c)
	if !ok {
		return
	}
	eventType, ok := eventFilter(c)
	if !ok {
		return
	}
	list, next, err := s.events.ListEvents(c.Request.Context(), eventType, p)
	if err != nil {
		storeProblem(c, err)
		return
	}
	ids := make([]string, len(list))
	for i, e := range list {
		ids[i] = e.ID
	}
	counts, err := s.events.EventDeliveryCounts(c.Request.Context(), ids)
	if err != nil {
		storeProblem(c, err)
		return
	}
	out := List[Event]{Data: make([]Event, 0, len(list)), NextCursor: cursor(next)}
	for _, e := range list {
		ev := eventOut(e)
		ev.DeliveryCounts = counts[e.ID]
		out.Data = append(out.Data, ev)
	}
	c.JSON(http.StatusOK, out)
}

// getEvent reads an event with its delivered body and its deliveries (the fan-out).
//
//	@Summary		Get an event
//	@Description	payload is the exact body every json-format webhook receives, byte for byte; deliveries lists the fan-out, one per webhook (empty when no webhook listened).
//	@Tags			events
//	@Produce		json
//	@Security		BearerAuth
//	@Param			id	path		string	true	"event id"
//	@Success		200	{object}	Event
//	@Failure		401	{object}	Problem
//	@Failure		404	{object}	Problem
//	@Router			/api/v1/events/{id} [get]
func (s *Server) getEvent(c *gin.Context) {
	e, err := s.events.GetEvent(c.Request.Context(), c.Param("id"))
	if err != nil {
		storeProblem(c, err)
		return
	}
	ds, _, err := s.events.ListDeliveries(c.Request.Context(), store.DeliveryFilter{EventID: e.ID}, models.Page{Limit: 1000})
	if err != nil {
		storeProblem(c, err)
		return
	}
	out := eventDetail{Event: eventOut(e), Deliveries: make([]Delivery, 0, len(ds))}
	out.Payload = e.Payload
	for _, d := range ds {
		out.Deliveries = append(out.Deliveries, deliveryOut(d))
		out.DeliveryCounts.Add(d.Status)
	}
	// PureJSON: the default encoder would rewrite <, > and & in the payload as \u003c…, and
	// the payload must read exactly as the bytes the webhooks receive.
	c.PureJSON(http.StatusOK, out)
}

// eventDetail is an Event whose deliveries are always listed, even when there are none.
type eventDetail struct {
	Event
	Deliveries []Delivery `json:"deliveries"`
}

// listEventTypes returns the event catalogue.
//
//	@Summary	List event types
//	@Tags		events
//	@Produce	json
//	@Security	BearerAuth
//	@Success	200	{object}	List[EventType]
//	@Failure	401	{object}	Problem
//	@Router		/api/v1/event-types [get]
func (s *Server) listEventTypes(c *gin.Context) {
	out := List[EventType]{Data: make([]EventType, 0, len(models.Catalogue))}
	at, _ := time.Parse(models.TimestampLayout, "2025-01-15T10:30:00+00:00")
	for i, et := range models.Catalogue {
		out.Data = append(out.Data, EventType{Name: et.Name, Description: et.Description, Schema: et.JSONSchema(),
			Example: et.Example(at.Add(time.Duration(i) * time.Minute))})
	}
	c.JSON(http.StatusOK, out)
}
