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
	Events          string     // comma-separated catalogue names, sorted
	Format          string
	Enabled         bool
	DisabledReason  string
	LastSuccessAt   *time.Time
	FailingSince    *time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
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

// ActiveStandardSecrets returns the secrets that sign webhook-signature now: the current one
// and, for 24 h after a rotation, the previous one.
func (w *Webhook) ActiveStandardSecrets(now time.Time) []string {
	if w.Secret == "" {
		return nil
	}
	out := []string{w.Secret}
	if w.PrevSecret != "" && w.PrevSecretUntil != nil && now.Before(*w.PrevSecretUntil) {
		out = append(out, w.PrevSecret)
	}
	return out
}

// WebhookStats is the outcome count of one hour: the attempts of deliveries, and apart from
// them the test action's requests.
type WebhookStats struct {
	Succeeded      int `json:"succeeded"`
	Failed         int `json:"failed"`
	TestsSucceeded int `json:"tests_succeeded"`
	TestsFailed    int `json:"tests_failed"`
}

// LastDelivery summarises a webhook's most recent attempt.
type LastDelivery struct {
	Status     string    `json:"status"`
	StatusCode *int      `json:"status_code"`
	At         time.Time `json:"at"`
}
