package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

// ReplayStore is what replaying a webhook's events needs.
type ReplayStore interface {
	CountReplay(ctx context.Context, f store.ReplayFilter) (int64, error)
	CreateReplayJob(ctx context.Context, j *models.ReplayJob) error
	GetReplayJob(ctx context.Context, id string) (*models.ReplayJob, error)
	ListReplayJobs(ctx context.Context, webhookID string, limit int) ([]*models.ReplayJob, error)
}

// ReplayRunner runs stored replay jobs in the background (package replay).
type ReplayRunner interface {
	Run(id string)
}

// ReplayJob is a replay as the API shows it: its progress, and how it ended.
type ReplayJob struct {
	ID         string     `json:"id" example:"rpl_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f"`
	WebhookID  string     `json:"webhook_id" example:"wh_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f"`
	Since      time.Time  `json:"since" example:"2025-01-14T00:00:00Z"`
	Until      time.Time  `json:"until" example:"2025-01-15T00:00:00Z"`
	OnlyFailed bool       `json:"only_failed" example:"false"`
	Status     string     `json:"status" enums:"running,done,stopped" example:"running"`
	Total      int64      `json:"total" example:"42"`  // events found when the replay was asked for
	Queued     int64      `json:"queued" example:"20"` // deliveries queued so far
	Error      string     `json:"error,omitempty" example:"the webhook was disabled" extensions:"x-example-of=absent"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at" extensions:"x-nullable"`
} // @name ReplayJob

func replayJobOut(j *models.ReplayJob) ReplayJob {
	return ReplayJob{ID: j.ID, WebhookID: j.WebhookID, Since: j.Since.UTC(), Until: j.Until.UTC(), OnlyFailed: j.OnlyFailed,
		Status: j.Status, Total: j.Total, Queued: j.Queued, Error: j.Error, CreatedAt: j.CreatedAt.UTC(), FinishedAt: j.FinishedAt}
}

// ReplayInput chooses the past events to send again.
type ReplayInput struct {
	Since      Optional[string] `json:"since" example:"2025-01-15T00:00:00+00:00" validate:"required"`
	Until      Optional[string] `json:"until" example:"2025-01-16T00:00:00+00:00" extensions:"x-nullable"`
	OnlyFailed Optional[bool]   `json:"only_failed" example:"false"`
}

// ReplayQueued answers a replay.
type ReplayQueued struct {
	Queued int64     `json:"queued" example:"42"` // events found, to be queued
	Job    ReplayJob `json:"job"`
} // @name ReplayQueued

// replayWebhook queues past events to a webhook again.
//
//	@Summary		Replay past events
//	@Description	Queues again, as new deliveries, every published event of the webhook's event types accepted from since (inclusive) to until (exclusive, default now), including events from before the webhook existed, with no cap. Events with a delivery to this webhook still pending are skipped. With only_failed, only events whose deliveries to this webhook all failed or were cancelled are queued. The deliveries are created in the background, in batches, and sent like any other (same body and X-Webhook-Id as the original event); queued is the number of events found when the request was made. The replay is a stored job (job, and GET /api/v1/replays/{id}): a restart resumes it where it stopped, with no event queued twice or skipped, and each delivery it queues names it (replay_id). POST /api/v1/webhooks/{id}/replay/preview counts the same events without queuing them. 409 when the webhook is disabled.
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
//	@x-problem-409		"the webhook is disabled: enable it before replaying"
//	@Router			/api/v1/webhooks/{id}/replay [post]
func (s *Server) replayWebhook(c *gin.Context) {
	f, n, ok := s.countReplay(c)
	if !ok {
		return
	}
	j := &models.ReplayJob{WebhookID: f.WebhookID, Types: strings.Join(f.Types, ","), Since: f.Since, Until: f.Until,
		OnlyFailed: f.OnlyFailed, Total: n}
	if err := s.replays.CreateReplayJob(c.Request.Context(), j); err != nil {
		storeProblem(c, err)
		return
	}
	if s.cfg.Replays != nil {
		s.cfg.Replays.Run(j.ID)
	}
	c.JSON(http.StatusAccepted, ReplayQueued{Queued: n, Job: replayJobOut(j)})
}

// ReplayPreview tells what a replay would queue, before it is asked for.
type ReplayPreview struct {
	// Events is how many events the replay would queue now: one new delivery to this webhook
	// each.
	Events     int64     `json:"events" example:"42"`
	Since      time.Time `json:"since" example:"2025-01-14T00:00:00Z"`
	Until      time.Time `json:"until" example:"2025-01-15T00:00:00Z"`
	OnlyFailed bool      `json:"only_failed" example:"false"`
} // @name ReplayPreview

// previewReplay counts what a replay would queue, queuing nothing.
//
//	@Summary		Preview a replay
//	@Description	Takes the body of POST /api/v1/webhooks/{id}/replay and answers how many events that replay would queue now (one new delivery each), without queuing anything, so a client can ask for confirmation first. The count can change before the replay is made (events published, deliveries finished). 409 when the webhook is disabled, as the replay itself would be.
//	@Tags			webhooks
//	@Accept			json
//	@Produce		json
//	@Security		BearerAuth
//	@Param			id		path		string		true	"webhook id"
//	@Param			body	body		ReplayInput	true	"time range"
//	@Success		200		{object}	ReplayPreview
//	@Failure		400		{object}	Problem
//	@Failure		401		{object}	Problem
//	@Failure		404		{object}	Problem
//	@Failure		409		{object}	Problem
//	@Failure		413		{object}	Problem
//	@Failure		415		{object}	Problem
//	@Failure		422		{object}	Problem
//	@Router			/api/v1/webhooks/{id}/replay/preview [post]
func (s *Server) previewReplay(c *gin.Context) {
	f, n, ok := s.countReplay(c)
	if !ok {
		return
	}
	c.JSON(http.StatusOK, ReplayPreview{Events: n, Since: f.Since, Until: f.Until, OnlyFailed: f.OnlyFailed})
}

// countReplay reads a replay request for the webhook in the path and counts the events it
// matches; it answers the problem itself when ok is false.
func (s *Server) countReplay(c *gin.Context) (f store.ReplayFilter, n int64, ok bool) {
	w, ok := s.loadWebhook(c)
	if !ok {
		return f, 0, false
	}
	in, ok := readInput[ReplayInput](c, false)
	if !ok {
		return f, 0, false
	}
	f, err := buildReplay(&in, w, time.Now().UTC())
	if err != nil {
		storeProblem(c, err)
		return f, 0, false
	}
	if !w.Enabled {
		problem(c, http.StatusConflict, "the webhook is disabled: enable it before replaying")
		return f, 0, false
	}
	if n, err = s.replays.CountReplay(c.Request.Context(), f); err != nil {
		storeProblem(c, err)
		return f, 0, false
	}
	return f, n, true
}

// listReplays lists a webhook's most recent replays.
//
//	@Summary	List a webhook's replays
//	@Tags		webhooks
//	@Produce	json
//	@Security	BearerAuth
//	@Param		id	path		string	true	"webhook id"
//	@Success	200	{object}	List[ReplayJob]
//	@Failure	404	{object}	Problem
//	@Router		/api/v1/webhooks/{id}/replays [get]
func (s *Server) listReplays(c *gin.Context) {
	w, ok := s.loadWebhook(c)
	if !ok {
		return
	}
	list, err := s.replays.ListReplayJobs(c.Request.Context(), w.ID, 20)
	if err != nil {
		storeProblem(c, err)
		return
	}
	out := List[ReplayJob]{Data: make([]ReplayJob, 0, len(list))}
	for _, j := range list {
		out.Data = append(out.Data, replayJobOut(j))
	}
	c.JSON(http.StatusOK, out)
}

// getReplay reads one replay: how far it got.
//
//	@Summary	Get a replay
//	@Tags		webhooks
//	@Produce	json
//	@Security	BearerAuth
//	@Param		id	path		string	true	"replay id"
//	@Success	200	{object}	ReplayJob
//	@Failure	404	{object}	Problem
//	@Router		/api/v1/replays/{id} [get]
func (s *Server) getReplay(c *gin.Context) {
	j, err := s.replays.GetReplayJob(c.Request.Context(), c.Param("id"))
	if err != nil {
		storeProblem(c, err)
		return
	}
	c.JSON(http.StatusOK, replayJobOut(j))
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
