package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hookrelay/hookrelay/delivery"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

// DeliveryStore is what the delivery handlers need.
type DeliveryStore interface {
	GetDelivery(ctx context.Context, id string) (*models.Delivery, error)
	ListDeliveries(ctx context.Context, f store.DeliveryFilter, p models.Page) ([]*models.Delivery, string, error)
	ListAttempts(ctx context.Context, deliveryID string) ([]*models.Attempt, error)
	GetEvent(ctx context.Context, id string) (*models.Event, error)
	RequeueDelivery(ctx context.Context, id string) (*models.Delivery, error)
	GetWebhook(ctx context.Context, id string) (*models.Webhook, error)
}

// Delivery is one event owed to one webhook.
type Delivery struct {
	ID             string     `json:"id" example:"dlv_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f"`
	EventID        string     `json:"event_id" example:"evt_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f"`
	WebhookID      string     `json:"webhook_id" example:"wh_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f"`
	Event          string     `json:"event" example:"conversation.started"`
	Status         string     `json:"status" enums:"pending,succeeded,failed,cancelled" example:"succeeded"`
	AttemptCount   int        `json:"attempt_count" example:"1"`
	NextAttemptAt  *time.Time `json:"next_attempt_at"`
	LastStatusCode *int       `json:"last_status_code" example:"200"`
	LastError      *string    `json:"last_error"`
	Test           bool       `json:"test" example:"false"`
	// ReplayID names the replay job (GET /api/v1/replays/{id}) that queued this delivery;
	// null for a delivery of a publish.
	ReplayID *string `json:"replay_id" example:"rpl_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f" extensions:"x-nullable,x-example-of=null"`
	// Spilled is true while the delivery waits in its webhook's spill: the webhook fell
	// behind, so its newer events are sent in order as the endpoint catches up. Such a
	// delivery is pending with no attempts yet; it keeps its id once attempted.
	Spilled   bool      `json:"spilled" example:"false"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Attempts  []Attempt `json:"attempts,omitempty"`
} // @name Delivery

// Attempt is one HTTP request made for a delivery, as the attempt log keeps it.
type Attempt struct {
	ID             string            `json:"id" example:"att_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f"`
	DeliveryID     string            `json:"delivery_id" example:"dlv_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f"`
	Number         int               `json:"number" example:"1"`
	StartedAt      time.Time         `json:"started_at"`
	DurationMs     int64             `json:"duration_ms" example:"42"`
	RequestHeaders map[string]string `json:"request_headers" extensions:"x-example-of=delivery-headers"`
	// Format is the body format the request was sent in (the webhook's at the time); empty
	// for attempts recorded before it was kept.
	Format string `json:"format" enums:"json,slack,discord," example:"json"`
	// RequestBody is the exact body sent, rebuilt from the event's stored body in Format;
	// null when that is not known (an older attempt, or an event pruned since).
	RequestBody     *string           `json:"request_body" extensions:"x-nullable,x-example-of=delivery-body"`
	ResponseStatus  *int              `json:"response_status" example:"200"`
	ResponseHeaders map[string]string `json:"response_headers" example:"Content-Type:application/json"`
	ResponseBody    string            `json:"response_body" example:"{\"ok\":true}"`
	Error           *string           `json:"error"`
	Outcome         string            `json:"outcome" enums:"succeeded,failed" example:"succeeded"`
} // @name Attempt

func deliveryOut(d *models.Delivery) Delivery {
	out := Delivery{ID: d.ID, EventID: d.EventID, WebhookID: d.WebhookID, Event: d.EventType, Status: d.Status,
		AttemptCount: d.AttemptCount, LastStatusCode: d.LastStatusCode, LastError: d.LastError, Test: d.Test,
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, Spilled: d.Owed != nil}
	if d.ReplayID != "" {
		id := d.ReplayID
		out.ReplayID = &id
	}
	if d.Status == models.StatusPending && d.NextAttemptAt > 0 {
		t := time.UnixMilli(d.NextAttemptAt).UTC()
		out.NextAttemptAt = &t
	}
	return out
}

// attemptOut shows an attempt; eventBody is its event's stored body (nil when gone), from
// which the request body is rebuilt in the attempt's format, as the dispatcher built it.
func attemptOut(a *models.Attempt, eventBody []byte) Attempt {
	out := Attempt{ID: a.ID, DeliveryID: a.DeliveryID, Number: a.Number, StartedAt: a.StartedAt, DurationMs: a.DurationMs, Format: a.Format,
		ResponseStatus: a.ResponseStatus, ResponseBody: a.ResponseBody, Error: a.Error, Outcome: a.Outcome,
		RequestHeaders: map[string]string{}, ResponseHeaders: map[string]string{}}
	_ = json.Unmarshal([]byte(a.RequestHeaders), &out.RequestHeaders)
	_ = json.Unmarshal([]byte(a.ResponseHeaders), &out.ResponseHeaders)
	if a.Format != "" && eventBody != nil {
		body := string(delivery.BodyFor(a.Format, eventBody))
		out.RequestBody = &body
	}
	return out
}

// eventBody reads the stored body of a delivery's event; nil when the event is gone.
func eventBody(ctx context.Context, s interface {
	GetEvent(ctx context.Context, id string) (*models.Event, error)
}, eventID string) ([]byte, error) {
	e, err := s.GetEvent(ctx, eventID)
	if errors.Is(err, models.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return e.Payload, nil
}

var deliveryStatuses = []string{models.StatusPending, models.StatusSucceeded, models.StatusFailed, models.StatusCancelled}

// listDeliveries lists deliveries, newest first.
//
//	@Summary	List deliveries
//	@Tags		deliveries
//	@Produce	json
//	@Security	BearerAuth
//	@Param		webhook_id	query		string	false	"only this webhook's"
//	@Param		status		query		string	false	"only this status"	Enums(pending, succeeded, failed, cancelled)
//	@Param		event		query		string	false	"only this event type"	Enums(conversation.started, message.received)
//	@Param		tests		query		string	false	"exclude leaves out the test action's deliveries"	Enums(include, exclude)	default(include)
//	@Param		limit		query		int		false	"page size (1-200)"	default(50)
//	@Param		cursor		query		string	false	"next_cursor of the previous page"
//	@Success	200			{object}	List[Delivery]
//	@Failure	400			{object}	Problem
//	@Failure	401			{object}	Problem
//	@Router		/api/v1/deliveries [get]
func (s *Server) listDeliveries(c *gin.Context) {
	p, ok := page(c)
	if !ok {
		return
	}
	eventType, ok := eventFilter(c)
	if !ok {
		return
	}
	f := store.DeliveryFilter{WebhookID: c.Query("webhook_id"), Status: c.Query("status"), EventType: eventType}
	if f.Status != "" && !slices.Contains(deliveryStatuses, f.Status) {
		problem(c, http.StatusBadRequest, "status must be pending, succeeded, failed or cancelled",
			models.FieldError{Field: "status", Message: "must be pending, succeeded, failed or cancelled"})
		return
	}
	switch c.Query("tests") {
	case "", "include":
	case "exclude":
		f.NoTests = true
	default:
		problem(c, http.StatusBadRequest, "tests must be include or exclude",
			models.FieldError{Field: "tests", Message: "must be include or exclude"})
		return
	}
	list, next, err := s.deliveries.ListDeliveries(c.Request.Context(), f, p)
	if err != nil {
		storeProblem(c, err)
		return
	}
	out := List[Delivery]{Data: make([]Delivery, 0, len(list)), NextCursor: cursor(next)}
	for _, d := range list {
		out.Data = append(out.Data, deliveryOut(d))
	}
	c.JSON(http.StatusOK, out)
}

// getDelivery reads a delivery with all its attempts.
//
//	@Summary	Get a delivery
//	@Tags		deliveries
//	@Produce	json
//	@Security	BearerAuth
//	@Param		id	path		string	true	"delivery id"
//	@Success	200	{object}	Delivery
//	@Failure	401	{object}	Problem
//	@Failure	404	{object}	Problem
//	@Router		/api/v1/deliveries/{id} [get]
func (s *Server) getDelivery(c *gin.Context) {
	d, err := s.deliveries.GetDelivery(c.Request.Context(), c.Param("id"))
	if err != nil {
		storeProblem(c, err)
		return
	}
	attempts, err := s.deliveries.ListAttempts(c.Request.Context(), d.ID)
	if err != nil {
		storeProblem(c, err)
		return
	}
	body, err := eventBody(c.Request.Context(), s.deliveries, d.EventID)
	if err != nil {
		storeProblem(c, err)
		return
	}
	out := deliveryOut(d)
	out.Attempts = make([]Attempt, 0, len(attempts))
	for _, a := range attempts {
		out.Attempts = append(out.Attempts, attemptOut(a, body))
	}
	// PureJSON: request bodies read as the bytes sent, without <, > and & escaped.
	c.PureJSON(http.StatusOK, out)
}

// retryDelivery queues a delivery for a new attempt now.
//
//	@Summary		Redeliver
//	@Description	Queues a new attempt now with the same body and the same X-Webhook-Id. 409 when the webhook is disabled, the delivery is a test, or it is being attempted right now.
//	@Tags			deliveries
//	@Produce		json
//	@Security		BearerAuth
//	@Param			id	path		string	true	"delivery id"
//	@Success		202	{object}	Delivery
//	@Failure		401	{object}	Problem
//	@Failure		404	{object}	Problem
//	@Failure		409	{object}	Problem
//	@x-problem-409		"the webhook is disabled: enable it before redelivering"
//	@Router			/api/v1/deliveries/{id}/retry [post]
func (s *Server) retryDelivery(c *gin.Context) {
	d, err := s.deliveries.GetDelivery(c.Request.Context(), c.Param("id"))
	if err != nil {
		storeProblem(c, err)
		return
	}
	w, err := s.deliveries.GetWebhook(c.Request.Context(), d.WebhookID)
	if err != nil {
		storeProblem(c, err)
		return
	}
	if !w.Enabled {
		problem(c, http.StatusConflict, "the webhook is disabled: enable it before redelivering")
		return
	}
	d, err = s.deliveries.RequeueDelivery(c.Request.Context(), d.ID)
	if err != nil {
		storeProblem(c, err)
		return
	}
	c.JSON(http.StatusAccepted, deliveryOut(d))
}
