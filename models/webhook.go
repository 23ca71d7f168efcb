package models

import (
	"slices"
	"strings"
	"time"
)

// Webhook formats.
const (
	FormatJSON    = "json"
	FormatSlack   = "slack"
	FormatDiscord = "discord"
)

// Webhook is a subscriber endpoint.
type Webhook struct {
	ID              string `gorm:"primaryKey"`
	Name            string
	URL             string
	Secret          string
	PrevSecret      string     // still signs webhook-signature until PrevSecretUntil
	PrevSecretUntil *time.Time //
	// A rotation under way: NextSecret signs webhook-signature beside Secret from
	// NextSecretSince, and replaces Secret at NextSecretFrom (nil: when an admin activates it).
	// The switch is decided by comparing NextSecretFrom with the clock wherever a secret is
	// used (SecretsAt), so a scheduled activation happens on time on every replica, also
	// before anything writes it down (ApplyDueRotation).
	NextSecret      string
	NextSecretSince *time.Time
	NextSecretFrom  *time.Time
	Events          string // comma-separated catalogue names, sorted
	Format          string
	Enabled         bool
	// TraceContext: attempts carry a W3C traceparent continuing the event's trace (when the
	// server traces at all).
	TraceContext   bool
	DisabledReason string
	LastSuccessAt  *time.Time
	FailingSince   *time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// EventList returns the subscribed event types.
func (w *Webhook) EventList() []string {
	if w.Events == "" {
		return []string{}
	}
	return strings.Split(w.Events, ",")
}

// Subscribes reports whether the webhook listens to eventType.
func (w *Webhook) Subscribes(eventType string) bool {
	return slices.Contains(w.EventList(), eventType)
}

// JoinEvents normalises a list of event types for storage.
func JoinEvents(events []string) string {
	e := slices.Clone(events)
	slices.Sort(e)
	return strings.Join(e, ",")
}

// PrevSecretOverlap is how long the replaced secret still signs webhook-signature after a
// rotation takes effect, so Standard Webhooks receivers can switch at their pace.
const PrevSecretOverlap = 24 * time.Hour

// ApplyDueRotation makes a pending secret whose activation time has come the current one:
// the old secret moves to PrevSecret for PrevSecretOverlap counted from the activation time
// (not from now), so applying it late changes nothing a receiver sees. It reports whether w
// changed.
func (w *Webhook) ApplyDueRotation(now time.Time) bool {
	if w.NextSecret == "" || w.NextSecretFrom == nil || now.Before(*w.NextSecretFrom) {
		return false
	}
	until := w.NextSecretFrom.Add(PrevSecretOverlap)
	if w.Secret != "" {
		w.PrevSecret, w.PrevSecretUntil = w.Secret, &until
	}
	w.Secret = w.NextSecret
	w.NextSecret, w.NextSecretSince, w.NextSecretFrom = "", nil, nil
	return true
}

// SecretsAt returns the secrets that sign at now: hex signs X-Webhook-Signature, which holds
// one signature (empty: the webhook has no secret); standard sign webhook-signature, which
// may hold several: the current one, a pending one during a rotation, and the previous one
// for PrevSecretOverlap after a rotation took effect.
func (w *Webhook) SecretsAt(now time.Time) (hex string, standard []string) {
	v := *w
	v.ApplyDueRotation(now)
	if v.Secret == "" {
		return "", nil
	}
	standard = []string{v.Secret}
	if v.NextSecret != "" {
		standard = append(standard, v.NextSecret)
	}
	if v.PrevSecret != "" && v.PrevSecretUntil != nil && now.Before(*v.PrevSecretUntil) {
		standard = append(standard, v.PrevSecret)
	}
	return v.Secret, standard
}

// WebhookStats is the outcome count of one hour: the attempts of deliveries, and apart from
// them the test action's requests.
type WebhookStats struct {
	Succeeded      int `json:"succeeded" example:"42"`
	Failed         int `json:"failed" example:"3"`
	TestsSucceeded int `json:"tests_succeeded" example:"1"`
	TestsFailed    int `json:"tests_failed" example:"0"`
}

// LastDelivery summarises a webhook's most recent attempt.
type LastDelivery struct {
	Status     string    `json:"status" enums:"succeeded,failed" example:"succeeded"`
	StatusCode *int      `json:"status_code" example:"200"`
	At         time.Time `json:"at"`
}
