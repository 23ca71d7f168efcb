package models

import (
	"time"
)

// Delivery statuses.
const (
	StatusPending   = "pending"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// Attempt outcomes.
const (
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
)

// Delivery is one event owed to one webhook. The queue columns are integer milliseconds so
// the claim query compares numbers identically on SQLite and PostgreSQL.
type Delivery struct {
	ID             string `gorm:"primaryKey"`
	EventID        string
	WebhookID      string
	EventType      string
	Status         string
	AttemptCount   int
	NextAttemptAt  int64 // unix ms; 0 once finished
	LockedUntil    int64 // unix ms lease; 0 when free
	LockedBy       string
	LastStatusCode *int
	LastError      *string
	Test           bool
	// ReplayID names the replay job that queued this delivery; empty for a delivery of a
	// publish (or a test).
	ReplayID  string
	CreatedAt time.Time
	UpdatedAt time.Time

	// Owed is set on a delivery taken from a spill whose row is not written yet; its attempt's
	// RecordResults writes it (take.go).
	Owed *OwedDelivery `gorm:"-"`
}

// Attempt is one HTTP request made for a delivery.
type Attempt struct {
	ID              string `gorm:"primaryKey"`
	DeliveryID      string
	WebhookID       string
	Number          int
	StartedAt       time.Time
	DurationMs      int64
	RequestHeaders  string // JSON object
	ResponseStatus  *int
	ResponseHeaders string // JSON object
	ResponseBody    string // first 4 KiB
	Error           *string
	Outcome         string
	Test            bool
	// Format is the webhook's body format when the request was made (json, slack, discord):
	// with the event's stored body it rebuilds the exact bytes sent (delivery.BodyFor), even
	// after the webhook's format changed. Empty on attempts recorded before it was kept.
	Format string
}

// DeliveryCounts is how an event's deliveries stand, by status.
type DeliveryCounts struct {
	Pending   int `json:"pending" example:"1"`
	Succeeded int `json:"succeeded" example:"1"`
	Failed    int `json:"failed" example:"0"`
	Cancelled int `json:"cancelled" example:"0"`
}

// Add counts one delivery of the given status.
func (c *DeliveryCounts) Add(status string) {
	switch status {
	case StatusPending:
		c.Pending++
	case StatusSucceeded:
		c.Succeeded++
	case StatusFailed:
		c.Failed++
	case StatusCancelled:
		c.Cancelled++
	}
}

// Result is what one attempt of a claimed delivery produced, and what follows from it.
// Attempt is nil when nothing was sent (the webhook went away after the claim).
type Result struct {
	Attempt       *Attempt
	DeliveryID    string
	WebhookID     string
	Status        string // new delivery status
	NextAttemptAt int64  // when Status is pending
	Succeeded     bool
	DisableReason string // non-empty: disable the webhook (410 Gone)

	// EventID is the delivery's event: what the admin change stream names along with it.
	EventID string

	// Owed is set for a delivery taken from a spill without a row (see take.go): the row is
	// written here, from these and EventID.
	Owed      *OwedDelivery
	EventType string
	TakenAt   time.Time

	// Traced is set for a traced attempt, for its record span; a pointer, so that results,
	// which are copied in bulk on their way to the database, grow by one word untraced.
	Traced *TracedResult
}

// TracedResult is what a record span needs: the attempt's send span (a W3C traceparent) to
// hang from, and when the result reached the recorder, where it starts.
type TracedResult struct {
	SendSpan string
	HandedAt time.Time
}

// OwedDelivery marks a delivery taken from a spill whose row is not written yet.
type OwedDelivery struct {
	Seq   int64  // SQLite: the event's rowid, its place in the spill
	Epoch uint64 // SQLite: the bookkeeping (owedTrack) the take came from
	Chunk string // PostgreSQL: the key (first_event) of the leased webhook_owed row listing the event
}
