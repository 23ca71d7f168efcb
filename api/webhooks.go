package api

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hookrelay/hookrelay/delivery"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

// WebhookStore is what the webhook handlers need.
type WebhookStore interface {
	CreateWebhook(ctx context.Context, w *models.Webhook) error
	GetWebhook(ctx context.Context, id string) (*models.Webhook, error)
	ListWebhooks(ctx context.Context, p models.Page) ([]*models.Webhook, string, error)
	ModifyWebhook(ctx context.Context, id string, change func(w *models.Webhook) error) (*models.Webhook, error)
	DeleteWebhook(ctx context.Context, id string) error
	WebhookActivity(ctx context.Context, ids []string, now time.Time) (map[string][]models.WebhookStats, map[string]*models.LastDelivery, error)
	Backlogs(ctx context.Context, ids []string, count bool) (map[string]*store.Backlog, error)
	PendingCounts(ctx context.Context, ids []string) (map[string]int64, error)
}

// Webhook is a webhook as the API shows it. The secret appears only on create, rotate and
// reveal.
type Webhook struct {
	ID      string   `json:"id" example:"wh_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f"`
	Name    string   `json:"name" example:"Slack Notifications"`
	URL     string   `json:"url" example:"https://example.com/hooks/chat"`
	Events  []string `json:"events" example:"message.received,conversation.started"`
	Format  string   `json:"format" enums:"json,slack,discord" example:"json"`
	Enabled bool     `json:"enabled" example:"true"`
	// Attempts carry a W3C traceparent header continuing the event's trace (only when the
	// server exports traces, --otlp-endpoint).
	TraceContext   bool                 `json:"trace_context" example:"false"`
	HasSecret      bool                 `json:"has_secret" example:"true"`
	DisabledReason *string              `json:"disabled_reason"`
	CreatedAt      time.Time            `json:"created_at"`
	UpdatedAt      time.Time            `json:"updated_at"`
	LastDelivery   *models.LastDelivery `json:"last_delivery"`
	// Attempt outcomes per clock hour (UTC), 24 of them, oldest first; the last is this hour.
	Stats24h []models.WebhookStats `json:"stats_24h"`
	// Deliveries not finished yet: in flight, due, waiting for a retry, or waiting in the
	// webhook's spill. GET /deliveries?webhook_id=…&status=pending lists every one of them.
	PendingDeliveries int64 `json:"pending_deliveries" example:"1204"`
	// Set while the webhook is spilled: it fell behind, and its newer events wait to be sent
	// in order as the endpoint catches up (they count in pending_deliveries).
	Backlog *WebhookBacklog `json:"backlog"`
	// The signing secret's rotation state (never a secret).
	SecretRotation SecretRotation `json:"secret_rotation"`
	// Set while the webhook is enabled and every attempt since this time failed.
	FailingSince *time.Time `json:"failing_since"`
	// When the server disables the webhook if no attempt succeeds before (failing_since plus
	// --auto-disable-after; the check runs every minute); null when not failing or when the
	// server never disables.
	DisableAt *time.Time `json:"disable_at"`
	Secret    string     `json:"secret,omitempty" example:"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"`
} // @name Webhook

// WebhookBacklog is what a spilled webhook still owes.
type WebhookBacklog struct {
	SpilledSince time.Time `json:"spilled_since"`
	// Events published since then that it still owes; counted when one webhook is read, null
	// in lists (pending_deliveries counts them always).
	OwedEvents *int64 `json:"owed_events" example:"1200"`
} // @name WebhookBacklog

// WebhookInput creates or (partially) updates a webhook.
type WebhookInput struct {
	Name           Optional[string]   `json:"name" example:"Slack Notifications"`
	URL            Optional[string]   `json:"url" example:"https://example.com/hooks/chat"`
	Secret         Optional[string]   `json:"secret" example:"your-webhook-secret" extensions:"x-nullable"`
	GenerateSecret Optional[bool]     `json:"generate_secret" example:"false"`
	Events         Optional[[]string] `json:"events" example:"message.received"`
	Format         Optional[string]   `json:"format" enums:"json,slack,discord" example:"json"`
	Enabled        Optional[bool]     `json:"enabled" example:"true"`
	// Send a W3C traceparent header with each attempt, continuing the event's trace (only
	// when the server exports traces); default false.
	TraceContext Optional[bool] `json:"trace_context" example:"false"`
}

// Secret is a webhook's signing secret.
type Secret struct {
	// The secret X-Webhook-Signature is signed with now; empty when the webhook has none.
	Secret string `json:"secret" example:"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"`
	// The pending secret of a rotation under way (it already signs webhook-signature); absent
	// otherwise.
	NextSecret string `json:"next_secret,omitempty" example:"whsec_9xQm2WcLrT0bV7yKpN4sHdJf6gA1eZuC"`
}

// TestInput chooses the event of a test action.
type TestInput struct {
	Event Optional[string] `json:"event" example:"conversation.started"`
}

// webhookActivity is what webhookOut shows beside a webhook's settings.
type webhookActivity struct {
	stats    map[string][]models.WebhookStats
	last     map[string]*models.LastDelivery
	backlogs map[string]*store.Backlog
	pending  map[string]int64
}

// activity reads the activity of the given webhooks; countOwed counts what spilled ones owe
// (one webhook's read, not lists). It answers the problem itself on failure.
func (s *Server) activity(c *gin.Context, ids []string, countOwed bool) (webhookActivity, bool) {
	var a webhookActivity
	var err error
	a.stats, a.last, err = s.webhooks.WebhookActivity(c.Request.Context(), ids, time.Now().UTC())
	if err == nil {
		a.backlogs, err = s.webhooks.Backlogs(c.Request.Context(), ids, countOwed)
	}
	if err == nil {
		a.pending, err = s.webhooks.PendingCounts(c.Request.Context(), ids)
	}
	if err != nil {
		storeProblem(c, err)
		return a, false
	}
	return a, true
}

func (s *Server) webhookOut(w *models.Webhook, a webhookActivity) Webhook {
	out := Webhook{ID: w.ID, Name: w.Name, URL: w.URL, Events: w.EventList(), Format: w.Format, Enabled: w.Enabled,
		TraceContext: w.TraceContext, HasSecret: w.Secret != "", CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt, LastDelivery: a.last[w.ID],
		Stats24h: a.stats[w.ID], PendingDeliveries: a.pending[w.ID]}
	if b := a.backlogs[w.ID]; b != nil {
		out.Backlog = &WebhookBacklog{SpilledSince: b.SpilledSince.UTC(), OwedEvents: b.OwedEvents}
	}
	if w.DisabledReason != "" && !w.Enabled {
		r := w.DisabledReason
		out.DisabledReason = &r
	}
	out.SecretRotation = rotationOut(w, time.Now().UTC())
	if w.Enabled && w.FailingSince != nil {
		out.FailingSince = utcPtr(w.FailingSince)
		if s.cfg.AutoDisableAfter > 0 {
			at := out.FailingSince.Add(s.cfg.AutoDisableAfter)
			out.DisableAt = &at
		}
	}
	if out.Stats24h == nil {
		out.Stats24h = make([]models.WebhookStats, 24)
	}
	return out
}

// NewSecret returns a Standard Webhooks style secret: whsec_ + base64 of 24 random bytes.
func NewSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// applyWebhookInput validates the given fields onto w. For create, the required ones must be
// present.
func (s *Server) applyWebhookInput(in *WebhookInput, w *models.Webhook, create bool) error {
	verr := &models.ValidationError{}
	if name, ok := in.Name.get(verr, "name"); ok || (create && !in.Name.Set) {
		switch name = strings.TrimSpace(name); {
		case name == "":
			verr.Add("name", "is required")
		case len([]rune(name)) > 100:
			verr.Add("name", "must be at most 100 characters")
		default:
			w.Name = name
		}
	}
	if u, ok := in.URL.get(verr, "url"); ok || (create && !in.URL.Set) {
		if msg := s.checkURL(strings.TrimSpace(u)); msg != "" {
			verr.Add("url", "%s", msg)
		} else {
			w.URL = strings.TrimSpace(u)
		}
	}
	if events, ok := in.Events.get(verr, "events"); in.Events.Null {
		verr.Add("events", "must be an array of strings")
	} else if ok || (create && !in.Events.Set) {
		if msg := checkEvents(events); msg != "" {
			verr.Add("events", "%s", msg)
		} else {
			w.Events = models.JoinEvents(events)
		}
	}
	if format, ok := in.Format.get(verr, "format"); ok {
		if !slices.Contains([]string{models.FormatJSON, models.FormatSlack, models.FormatDiscord}, format) {
			verr.Add("format", "must be json, slack or discord")
		} else {
			w.Format = format
		}
	}
	if enabled, ok := in.Enabled.get(verr, "enabled"); ok {
		if enabled && !w.Enabled {
			w.DisabledReason = ""
			w.FailingSince = nil
		}
		w.Enabled = enabled
	} else if create {
		w.Enabled = true
	}
	if tc, ok := in.TraceContext.get(verr, "trace_context"); in.TraceContext.Null {
		verr.Add("trace_context", "must be true or false")
	} else if ok {
		w.TraceContext = tc
	}
	gen, _ := in.GenerateSecret.get(verr, "generate_secret")
	if in.Secret.Set || gen {
		// Setting the secret outright replaces it at once and ends any rotation under way.
		w.NextSecret, w.NextSecretSince, w.NextSecretFrom = "", nil, nil
	}
	switch {
	case in.Secret.Null:
		w.Secret, w.PrevSecret, w.PrevSecretUntil = "", "", nil
		if gen {
			verr.Add("generate_secret", "give either \"secret\": null or generate_secret, not both")
		}
	case in.Secret.Set:
		if sec, ok := in.Secret.get(verr, "secret"); ok {
			if msg := checkSecret(sec); msg != "" {
				verr.Add("secret", "%s", msg)
			} else {
				w.Secret = sec
			}
		}
		if gen {
			verr.Add("generate_secret", "give either secret or generate_secret, not both")
		}
	case gen:
		w.Secret = NewSecret()
	}
	return verr.OrNil()
}

func checkSecret(sec string) string {
	switch {
	case sec == "":
		return "must not be empty (send null to remove the secret)"
	case len(sec) > 200:
		return "must be at most 200 characters"
	case strings.TrimSpace(sec) != sec:
		return "must not start or end with spaces"
	}
	return ""
}

func checkEvents(events []string) string {
	if len(events) == 0 {
		return "choose at least one of " + strings.Join(models.EventTypeNames(), ", ")
	}
	seen := map[string]bool{}
	for _, e := range events {
		if _, ok := models.LookupEventType(e); !ok {
			return "unknown event type " + `"` + e + `"` + "; known: " + strings.Join(models.EventTypeNames(), ", ")
		}
		if seen[e] {
			return `"` + e + `" is listed twice`
		}
		seen[e] = true
	}
	return ""
}

// checkURL applies the endpoint rules: absolute https (http with --allow-http), and no literal
// internal address unless --allow-private-targets. Hostnames are checked again at connect
// time, after DNS. The server's own /inspect/ URLs are always accepted.
func (s *Server) checkURL(raw string) string {
	if raw == "" {
		return "is required"
	}
	if len(raw) > 2000 {
		return "must be at most 2000 characters"
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Hostname() == "" {
		return "must be an absolute URL such as https://example.com/webhook"
	}
	if u.User != nil {
		// Kept in the URL, a password would show wherever webhooks are listed; receivers
		// authenticate Hookrelay by its signatures.
		return "must not contain credentials (user:password@); receivers verify the signature headers instead"
	}
	if delivery.OwnInspectorURL(s.cfg.PublicURL, raw) {
		return ""
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !s.cfg.AllowHTTP {
			return "must use https:// (start the server with --allow-http to accept http://)"
		}
	default:
		return "must use https://"
	}
	if u.Fragment != "" {
		return "must not contain a #fragment"
	}
	if !s.cfg.AllowPrivate {
		host := u.Hostname()
		if ip, err := netip.ParseAddr(host); err == nil {
			if reason := delivery.BlockReason(ip); reason != "" {
				return host + " is a " + reason + " address (start the server with --allow-private-targets to allow it)"
			}
		} else if h := strings.ToLower(strings.TrimSuffix(host, ".")); h == "localhost" || strings.HasSuffix(h, ".localhost") {
			return "localhost is a loopback address (start the server with --allow-private-targets to allow it)"
		}
	}
	return ""
}

// listWebhooks lists webhooks, newest first, with their last delivery and 24 h activity.
//
//	@Summary	List webhooks
//	@Tags		webhooks
//	@Produce	json
//	@Security	BearerAuth
//	@Param		limit	query		int		false	"page size (1-200)"	default(50)
//	@Param		cursor	query		string	false	"next_cursor of the previous page"
//	@Success	200		{object}	List[Webhook]
//	@Failure	400		{object}	Problem
//	@Failure	401		{object}	Problem
//	@Router		/api/v1/webhooks [get]
func (s *Server) listWebhooks(c *gin.Context) {
	p, ok := page(c)
	if !ok {
		return
	}
	list, next, err := s.webhooks.ListWebhooks(c.Request.Context(), p)
	if err != nil {
		storeProblem(c, err)
		return
	}
	ids := make([]string, len(list))
	for i, w := range list {
		ids[i] = w.ID
	}
	act, ok := s.activity(c, ids, false)
	if !ok {
		return
	}
	out := List[Webhook]{Data: make([]Webhook, 0, len(list)), NextCursor: cursor(next)}
	for _, w := range list {
		out.Data = append(out.Data, s.webhookOut(w, act))
	}
	c.JSON(http.StatusOK, out)
}

// createWebhook creates a webhook.
//
//	@Summary		Create a webhook
//	@Description	The secret is returned in this response (and by reveal and rotate) only. Send generate_secret to have one made.
//	@Tags			webhooks
//	@Accept			json
//	@Produce		json
//	@Security		BearerAuth
//	@Param			body	body		WebhookInput	true	"the webhook"
//	@Success		201		{object}	Webhook
//	@Failure		400		{object}	Problem
//	@Failure		401		{object}	Problem
//	@Failure		413		{object}	Problem
//	@Failure		415		{object}	Problem
//	@Failure		422		{object}	Problem
//	@x-problem-422		{"detail":"url: must use https:// (start the server with --allow-http to accept http://)","errors":[{"field":"url","message":"must use https:// (start the server with --allow-http to accept http://)"}]}
//	@Router			/api/v1/webhooks [post]
func (s *Server) createWebhook(c *gin.Context) {
	in, ok := readInput[WebhookInput](c, false)
	if !ok {
		return
	}
	w := &models.Webhook{Format: models.FormatJSON}
	if err := s.applyWebhookInput(&in, w, true); err != nil {
		storeProblem(c, err)
		return
	}
	if err := s.webhooks.CreateWebhook(c.Request.Context(), w); err != nil {
		storeProblem(c, err)
		return
	}
	out := s.webhookOut(w, webhookActivity{})
	out.Secret = w.Secret
	c.Header("Location", "/api/v1/webhooks/"+w.ID)
	c.JSON(http.StatusCreated, out)
}

// loadWebhook reads the :id webhook or answers 404.
func (s *Server) loadWebhook(c *gin.Context) (*models.Webhook, bool) {
	w, err := s.webhooks.GetWebhook(c.Request.Context(), c.Param("id"))
	if err != nil {
		storeProblem(c, err)
		return nil, false
	}
	return w, true
}

// webhookInput answers 404 for a missing :id webhook before reading the body, so a wrong id
// is reported as such whatever the body holds; then it reads the body as readInput does.
func webhookInput[T any](s *Server, c *gin.Context, emptyOK bool) (T, bool) {
	if _, ok := s.loadWebhook(c); !ok {
		var zero T
		return zero, false
	}
	return readInput[T](c, emptyOK)
}

// modifyWebhook applies change to the :id webhook in one transaction and returns it as the API
// shows it, with the stored webhook; it answers the problem itself on failure.
func (s *Server) modifyWebhook(c *gin.Context, change func(w *models.Webhook) error) (Webhook, *models.Webhook, bool) {
	w, err := s.webhooks.ModifyWebhook(c.Request.Context(), c.Param("id"), change)
	if err != nil {
		storeProblem(c, err)
		return Webhook{}, nil, false
	}
	act, ok := s.activity(c, []string{w.ID}, true)
	if !ok {
		return Webhook{}, nil, false
	}
	return s.webhookOut(w, act), w, true
}

// getWebhook reads a webhook.
//
//	@Summary	Get a webhook
//	@Tags		webhooks
//	@Produce	json
//	@Security	BearerAuth
//	@Param		id	path		string	true	"webhook id"
//	@Success	200	{object}	Webhook
//	@Failure	401	{object}	Problem
//	@Failure	404	{object}	Problem
//	@Router		/api/v1/webhooks/{id} [get]
func (s *Server) getWebhook(c *gin.Context) {
	w, ok := s.loadWebhook(c)
	if !ok {
		return
	}
	act, ok := s.activity(c, []string{w.ID}, true)
	if !ok {
		return
	}
	c.JSON(http.StatusOK, s.webhookOut(w, act))
}

// updateWebhook changes the given fields. Disabling cancels pending deliveries; nothing is
// deleted.
//
//	@Summary		Update a webhook
//	@Description	Partial update: only the fields sent change. Send "secret": null to remove the secret, or "generate_secret": true for a new one (returned in this response only). Disabling cancels pending deliveries; nothing is deleted.
//	@Tags			webhooks
//	@Accept			json
//	@Produce		json
//	@Security		BearerAuth
//	@Param			id		path		string			true	"webhook id"
//	@Param			body	body		WebhookInput	true	"fields to change"
//	@Success		200		{object}	Webhook
//	@Failure		400		{object}	Problem
//	@Failure		401		{object}	Problem
//	@Failure		404		{object}	Problem
//	@Failure		413		{object}	Problem
//	@Failure		415		{object}	Problem
//	@Failure		422		{object}	Problem
//	@x-problem-422		{"detail":"events[0]: unknown event type \"message.sent\"; known: conversation.started, message.received","errors":[{"field":"events[0]","message":"unknown event type \"message.sent\"; known: conversation.started, message.received"}]}
//	@Router			/api/v1/webhooks/{id} [patch]
func (s *Server) updateWebhook(c *gin.Context) {
	in, ok := webhookInput[WebhookInput](s, c, false)
	if !ok {
		return
	}
	out, w, ok := s.modifyWebhook(c, func(w *models.Webhook) error { return s.applyWebhookInput(&in, w, false) })
	if !ok {
		return
	}
	// The caller needs a secret the server generated; one it sent or removed it already knows,
	// and any other change must not reveal the stored one.
	if in.GenerateSecret.value {
		out.Secret = w.Secret
	}
	c.JSON(http.StatusOK, out)
}

// deleteWebhook deletes a webhook with its deliveries.
//
//	@Summary	Delete a webhook
//	@Tags		webhooks
//	@Security	BearerAuth
//	@Param		id	path	string	true	"webhook id"
//	@Success	204
//	@Failure	401	{object}	Problem
//	@Failure	404	{object}	Problem
//	@Router		/api/v1/webhooks/{id} [delete]
func (s *Server) deleteWebhook(c *gin.Context) {
	if err := s.webhooks.DeleteWebhook(c.Request.Context(), c.Param("id")); err != nil {
		storeProblem(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// testWebhook sends the event type's sample payload now, with X-Webhook-Test: true.
//
//	@Summary		Test a webhook
//	@Description	Sends a sample payload for one of the webhook's events (the first by default) synchronously, also when the webhook is disabled, and returns the attempt. A failing receiver is not an API error: look at outcome.
//	@Tags			webhooks
//	@Accept			json
//	@Produce		json
//	@Security		BearerAuth
//	@Param			id		path		string		true	"webhook id"
//	@Param			body	body		TestInput	false	"event to send"
//	@Success		200		{object}	Attempt
//	@Failure		400		{object}	Problem
//	@Failure		401		{object}	Problem
//	@Failure		404		{object}	Problem
//	@Failure		422		{object}	Problem
//	@x-problem-422		{"detail":"event: the webhook does not listen to \"conversation.started\"; it listens to message.received","errors":[{"field":"event","message":"the webhook does not listen to \"conversation.started\"; it listens to message.received"}]}
//	@Router			/api/v1/webhooks/{id}/test [post]
func (s *Server) testWebhook(c *gin.Context) {
	w, ok := s.loadWebhook(c)
	if !ok {
		return
	}
	in, ok := readInput[TestInput](c, true)
	if !ok {
		return
	}
	verr := &models.ValidationError{}
	event, given := in.Event.get(verr, "event")
	if !in.Event.Set {
		event = w.EventList()[0]
	} else if given && !w.Subscribes(event) {
		verr.Add("event", "the webhook does not listen to %q; it listens to %s", event, strings.Join(w.EventList(), ", "))
	}
	if verr.OrNil() != nil {
		storeProblem(c, verr)
		return
	}
	// The attempt is bounded by the delivery timeout; a client that stops waiting must not
	// turn it into a "cancelled" failure in the log.
	a, err := s.cfg.Dispatcher.SendTest(context.WithoutCancel(c.Request.Context()), w, event)
	if err != nil {
		storeProblem(c, err)
		return
	}
	body, err := s.testBody(c.Request.Context(), a)
	if err != nil {
		storeProblem(c, err)
		return
	}
	c.PureJSON(http.StatusOK, attemptOut(a, body))
}

// testBody reads the stored body of a test attempt's event.
func (s *Server) testBody(ctx context.Context, a *models.Attempt) ([]byte, error) {
	d, err := s.deliveries.GetDelivery(ctx, a.DeliveryID)
	if err != nil {
		return nil, err
	}
	return eventBody(ctx, s.deliveries, d.EventID)
}

// revealSecret returns a webhook's secret.
//
//	@Summary		Reveal the secret
//	@Description	The current secret and, while a rotation is pending, the next one.
//	@Tags			webhooks
//	@Produce		json
//	@Security		BearerAuth
//	@Param			id	path		string	true	"webhook id"
//	@Success		200	{object}	Secret
//	@Failure		401	{object}	Problem
//	@Failure		404	{object}	Problem
//	@Router			/api/v1/webhooks/{id}/secret [get]
func (s *Server) revealSecret(c *gin.Context) {
	w, ok := s.loadWebhook(c)
	if !ok {
		return
	}
	w.ApplyDueRotation(time.Now().UTC()) // a scheduled activation that has come counts as done
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, Secret{Secret: w.Secret, NextSecret: w.NextSecret})
}

// rotateSecret is the one-step rotation of earlier versions, now a start: API clients keep
// working, and X-Webhook-Signature no longer switches under receivers that were not told.
//
//	@Summary		Rotate the secret (start a rotation)
//	@Description	Starts a rotation as POST …/secret/rotation does: the new secret is returned and is pending; X-Webhook-Signature keeps the current secret until it is activated (POST …/secret/rotation/activate). With activate=now the new secret takes over X-Webhook-Signature at once, as this endpoint did before, and the previous one signs webhook-signature for 24 hours (previous_expires_at). 409 when a rotation is already pending.
//	@Tags			webhooks
//	@Produce		json
//	@Security		BearerAuth
//	@Param			id			path		string	true	"webhook id"
//	@Param			activate	query		string	false	"now: switch X-Webhook-Signature at once"	Enums(now)
//	@Success		200			{object}	RotationStarted
//	@Failure		401			{object}	Problem
//	@Failure		404			{object}	Problem
//	@Failure		409			{object}	Problem
//	@Failure		422			{object}	Problem
//	@Router			/api/v1/webhooks/{id}/secret/rotate [post]
func (s *Server) rotateSecret(c *gin.Context) {
	now := time.Now().UTC()
	var from *time.Time
	switch c.Query("activate") {
	case "":
	case "now":
		from = &now
	default:
		verr := &models.ValidationError{}
		verr.Add("activate", "must be now or absent")
		storeProblem(c, verr)
		return
	}
	if _, ok := s.loadWebhook(c); !ok {
		return
	}
	s.answerRotation(c, now, from)
}
