package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

// ReplayStore is what replaying a webhook's events needs.
type ReplayStore interface {
	CountReplay(ctx context.Context, f store.ReplayFilter) (int64, error)
	QueueReplay(ctx context.Context, f store.ReplayFilter, batch int, afterBatch func(n int)) (int, error)
}

// replayBatch is how many events one replay transaction queues: small enough that the
// single SQLite writer is free again within milliseconds, so publishing is not held up.
const replayBatch = 500

// ReplayInput chooses the past events to send again.
type ReplayInput struct {
	Since      Optional[string] `json:"since" example:"2025-01-15T00:00:00+00:00" validate:"required"`
	Until      Optional[string] `json:"until" example:"2025-01-16T00:00:00+00:00" extensions:"x-nullable"`
	OnlyFailed Optional[bool]   `json:"only_failed" example:"false"`
}

// ReplayQueued answers a replay.
type ReplayQueued struct {
	Queued int64 `json:"queued" example:"42"`
} // @name ReplayQueued

// replayWebhook queues past events to a webhook again.
//
//	@Summary		Replay past events
//	@Description	Queues again, as new deliveries, every published event of the webhook's event types accepted from since (inclusive) to until (exclusive, default now), including events from before the webhook existed, with no cap. Events with a delivery to this webhook still pending are skipped. With only_failed, only events whose deliveries to this webhook all failed or were cancelled are queued. The deliveries are created in the background, in batches, and sent like any other (same body and X-Webhook-Id as the original event); queued is the number of events found when the request was made. 409 when the webhook is disabled.
//	@Tags			webhooks
//	@Accept			json
//	@Produce		json
//	@Security		BearerAuth
//	@Param			id		path		string		true	"webhook id"
//	@Param			body	body		ReplayInput	true	"time range"
//	@Success		202		{object}	ReplayQueued
//	@Failure		400		{object}	Problem
//	@Failure		401		{object}	Problem
//	@Failure		404		{object}	Problem
//	@Failure		409		{object}	Problem
//	@Failure		413		{object}	Problem
//	@Failure		415		{object}	Problem
//	@Failure		422		{object}	Problem
//	@Router			/api/v1/webhooks/{id}/replay [post]
func (s *Server) replayWebhook(c *gin.Context) {
	w, ok := s.loadWebhook(c)
	if !ok {
		return
	}
	in, ok := readInput[ReplayInput](c, false)
	if !ok {
		return
	}
	f, err := buildReplay(&in, w, time.Now().UTC())
	if err != nil {
		storeProblem(c, err)
		return
	}
	if !w.Enabled {
		problem(c, http.StatusConflict, "the webhook is disabled: enable it before replaying")
		return
	}
	n, err := s.replays.CountReplay(c.Request.Context(), f)
	if err != nil {
		storeProblem(c, err)
		return
	}
	if n > 0 {
		go s.runReplay(context.WithoutCancel(c.Request.Context()), f)
	}
	c.JSON(http.StatusAccepted, ReplayQueued{Queued: n})
}

// buildReplay validates a replay body against the webhook.
func buildReplay(in *ReplayInput, w *models.Webhook, now time.Time) (store.ReplayFilter, error) {
	verr := &models.ValidationError{}
	f := store.ReplayFilter{WebhookID: w.ID, Types: w.EventList(), Until: now}
	since, given := in.Since.get(verr, "since")
	switch {
	case !in.Since.Set:
		verr.Add("since", "is required: an RFC 3339 time such as 2025-01-15T00:00:00+00:00")
	case given:
		t, err := time.Parse(time.RFC3339Nano, since)
		if err != nil {
			verr.Add("since", "must be an RFC 3339 time such as 2025-01-15T00:00:00+00:00")
		}
		f.Since = t.UTC()
	}
	if until, ok := in.Until.get(verr, "until"); ok && !in.Until.Null {
		t, err := time.Parse(time.RFC3339Nano, until)
		switch {
		case err != nil:
			verr.Add("until", "must be an RFC 3339 time such as 2025-01-16T00:00:00+00:00")
		case given && !t.After(f.Since):
			verr.Add("until", "must be later than since")
		default:
			f.Until = t.UTC()
		}
	}
	f.OnlyFailed, _ = in.OnlyFailed.get(verr, "only_failed")
	return f, verr.OrNil()
}

// runReplay queues the deliveries in the background; each committed batch reaches the
// dispatcher through the store, so sending starts while the rest is still being queued.
func (s *Server) runReplay(ctx context.Context, f store.ReplayFilter) {
	start := time.Now()
	n, err := s.replays.QueueReplay(ctx, f, replayBatch, nil)
	switch {
	case errors.Is(err, models.ErrNotFound) || errors.Is(err, models.ErrConflict):
		s.cfg.Logger.Warn("replay stopped: the webhook was disabled or deleted", "webhook", f.WebhookID, "queued", n)
	case err != nil:
		s.cfg.Logger.Error("replay", "webhook", f.WebhookID, "queued", n, "err", err)
	default:
		s.cfg.Logger.Info("replay queued", "webhook", f.WebhookID, "queued", n, "duration", time.Since(start))
	}
}
