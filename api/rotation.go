package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hookrelay/hookrelay/models"
)

// A secret rotation has two steps because X-Webhook-Signature holds one signature: it keeps
// the current secret while the next one is pending (webhook-signature carries both), and
// switches when the rotation is activated, now or at the time chosen when it started. The
// activation time is stored and compared with the clock wherever a secret signs, so nothing
// has to run at that moment (models.Webhook.SecretsAt); writes fold a due activation in.

// maxActivateAhead bounds a scheduled activation: a date further away is almost surely a typo.
const maxActivateAhead = 90 * 24 * time.Hour

// RotationInput starts a rotation.
type RotationInput struct {
	// When the new secret replaces the current one in X-Webhook-Signature; absent or null:
	// when POST …/secret/rotation/activate is called.
	ActivateAt Optional[string] `json:"activate_at" example:"2025-01-16T09:00:00Z" extensions:"x-nullable"`
}

// RotationStarted is the new secret of a rotation, shown in this response (and by reveal) only.
type RotationStarted struct {
	Secret string `json:"secret" example:"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"`
	// When X-Webhook-Signature switches to it; null: when the rotation is activated.
	ActivatesAt *time.Time `json:"activates_at" example:"2025-01-16T10:30:00Z"`
	// When the secret it replaces stops signing webhook-signature; null while that depends on
	// a manual activation (24 h after it), and when there was no secret before.
	PreviousValidUntil *time.Time `json:"previous_valid_until" example:"2025-01-17T10:30:00Z"`
	// The same as previous_valid_until, under the name POST …/secret/rotate always answered
	// with; absent when null.
	PreviousExpiresAt *time.Time `json:"previous_expires_at,omitempty" example:"2025-01-17T10:30:00Z"`
} // @name RotationStarted

// SecretRotation is a webhook's signing-secret state, without any secret.
type SecretRotation struct {
	// Set while a next secret is pending: it signs webhook-signature beside the current one.
	PendingSince *time.Time `json:"pending_since"`
	// When the pending secret takes over X-Webhook-Signature; null while pending: when an
	// admin activates it.
	ActivatesAt *time.Time `json:"activates_at"`
	// Set for 24 h after a rotation took effect: until then the replaced secret still signs
	// webhook-signature.
	PreviousValidUntil *time.Time `json:"previous_valid_until"`
} // @name SecretRotation

// rotationOut describes w's rotation as it is at now (a due activation counts as done).
func rotationOut(w *models.Webhook, now time.Time) SecretRotation {
	v := *w
	v.ApplyDueRotation(now)
	var out SecretRotation
	if v.NextSecret != "" {
		out.PendingSince, out.ActivatesAt = utcPtr(v.NextSecretSince), utcPtr(v.NextSecretFrom)
	}
	if v.PrevSecret != "" && v.PrevSecretUntil != nil && now.Before(*v.PrevSecretUntil) {
		out.PreviousValidUntil = utcPtr(v.PrevSecretUntil)
	}
	return out
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// startRotation makes the next secret of w and schedules it (from nil: manual activation). A
// webhook without a secret gets it at once: no receiver checks a signature yet.
func startRotation(w *models.Webhook, now time.Time, from *time.Time) (RotationStarted, error) {
	w.ApplyDueRotation(now)
	if w.NextSecret != "" {
		return RotationStarted{}, fmt.Errorf("%w: a rotation is already pending since %s; activate or cancel it first",
			models.ErrConflict, w.NextSecretSince.UTC().Format(time.RFC3339))
	}
	next := NewSecret()
	if w.Secret == "" {
		w.Secret = next
		return RotationStarted{Secret: next, ActivatesAt: &now}, nil
	}
	w.NextSecret, w.NextSecretSince, w.NextSecretFrom = next, &now, from
	out := RotationStarted{Secret: next, ActivatesAt: from}
	if from != nil {
		until := from.Add(models.PrevSecretOverlap)
		out.PreviousValidUntil = &until
	}
	w.ApplyDueRotation(now) // from == now: activate at once
	return out, nil
}

// activateAt parses the optional activate_at of a start: a time in the future, within
// maxActivateAhead.
func activateAt(in RotationInput, now time.Time) (*time.Time, error) {
	verr := &models.ValidationError{}
	raw, given := in.ActivateAt.get(verr, "activate_at")
	if !given || in.ActivateAt.Null {
		return nil, verr.OrNil()
	}
	at, err := time.Parse(time.RFC3339Nano, raw)
	switch {
	case err != nil:
		verr.Add("activate_at", "must be an RFC 3339 time such as 2025-01-16T09:00:00Z")
	case !at.After(now):
		verr.Add("activate_at", "must be in the future (to switch now, start the rotation and activate it)")
	case at.Sub(now) > maxActivateAhead:
		verr.Add("activate_at", "must be within 90 days")
	}
	if err := verr.OrNil(); err != nil {
		return nil, err
	}
	at = at.UTC()
	return &at, nil
}

// startSecretRotation starts a rotation: a new secret, pending.
//
//	@Summary		Start a secret rotation
//	@Description	Generates the next secret and returns it (in this response and by reveal only). While it is pending, X-Webhook-Signature is still signed with the current secret and webhook-signature carries signatures with both, so receivers can add the new secret before anything changes. It takes over X-Webhook-Signature at activate_at, or when POST …/secret/rotation/activate is called; the replaced secret then signs webhook-signature for 24 h more. A webhook without a secret gets the new one at once. 409 when a rotation is already pending.
//	@Tags			webhooks
//	@Accept			json
//	@Produce		json
//	@Security		BearerAuth
//	@Param			id		path		string			true	"webhook id"
//	@Param			body	body		RotationInput	false	"when to activate"
//	@Success		200		{object}	RotationStarted
//	@Failure		400		{object}	Problem
//	@Failure		401		{object}	Problem
//	@Failure		404		{object}	Problem
//	@Failure		409		{object}	Problem
//	@Failure		413		{object}	Problem
//	@Failure		415		{object}	Problem
//	@Failure		422		{object}	Problem
//	@Router			/api/v1/webhooks/{id}/secret/rotation [post]
func (s *Server) startSecretRotation(c *gin.Context) {
	in, ok := webhookInput[RotationInput](s, c, true)
	if !ok {
		return
	}
	now := time.Now().UTC()
	from, err := activateAt(in, now)
	if err != nil {
		storeProblem(c, err)
		return
	}
	s.answerRotation(c, now, from)
}

// answerRotation starts a rotation of the :id webhook and answers the new secret.
func (s *Server) answerRotation(c *gin.Context, now time.Time, from *time.Time) {
	var out RotationStarted
	_, err := s.webhooks.ModifyWebhook(c.Request.Context(), c.Param("id"), func(w *models.Webhook) (err error) {
		out, err = startRotation(w, now, from)
		return err
	})
	if err != nil {
		storeProblem(c, err)
		return
	}
	out.PreviousExpiresAt = out.PreviousValidUntil
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, out)
}

// activateSecretRotation makes the pending secret the current one now.
//
//	@Summary		Activate the pending secret
//	@Description	The pending secret replaces the current one now: X-Webhook-Signature is signed with it from the next request on, and the replaced secret keeps signing webhook-signature for 24 h. Also activates a rotation scheduled for later. 409 when no rotation is pending.
//	@Tags			webhooks
//	@Produce		json
//	@Security		BearerAuth
//	@Param			id	path		string	true	"webhook id"
//	@Success		200	{object}	Webhook
//	@Failure		401	{object}	Problem
//	@Failure		404	{object}	Problem
//	@Failure		409	{object}	Problem
//	@Router			/api/v1/webhooks/{id}/secret/rotation/activate [post]
func (s *Server) activateSecretRotation(c *gin.Context) {
	s.changeRotation(c, func(w *models.Webhook, now time.Time) {
		w.NextSecretFrom = &now
		w.ApplyDueRotation(now)
	})
}

// cancelSecretRotation drops the pending secret.
//
//	@Summary		Cancel a secret rotation
//	@Description	Drops the pending secret: it stops signing webhook-signature, and X-Webhook-Signature keeps the current secret. 409 when no rotation is pending (one whose activation time has come is done and cannot be cancelled).
//	@Tags			webhooks
//	@Produce		json
//	@Security		BearerAuth
//	@Param			id	path		string	true	"webhook id"
//	@Success		200	{object}	Webhook
//	@Failure		401	{object}	Problem
//	@Failure		404	{object}	Problem
//	@Failure		409	{object}	Problem
//	@Router			/api/v1/webhooks/{id}/secret/rotation [delete]
func (s *Server) cancelSecretRotation(c *gin.Context) {
	s.changeRotation(c, func(w *models.Webhook, _ time.Time) {
		w.NextSecret, w.NextSecretSince, w.NextSecretFrom = "", nil, nil
	})
}

// changeRotation applies change to the :id webhook's pending rotation (409 when none is
// pending) and answers the webhook.
func (s *Server) changeRotation(c *gin.Context, change func(w *models.Webhook, now time.Time)) {
	now := time.Now().UTC()
	out, _, ok := s.modifyWebhook(c, func(w *models.Webhook) error {
		w.ApplyDueRotation(now)
		if w.NextSecret == "" {
			return fmt.Errorf("%w: no secret rotation is pending; start one with POST /api/v1/webhooks/%s/secret/rotation",
				models.ErrConflict, w.ID)
		}
		change(w, now)
		return nil
	})
	if ok {
		c.JSON(http.StatusOK, out)
	}
}
