package models

import (
	"time"
)

// Event is a published chat event with the exact body bytes every webhook receives.
type Event struct {
	ID             string `gorm:"primaryKey"`
	Type           string
	Payload        []byte
	OccurredAt     time.Time
	IdempotencyKey *string
	RequestHash    string
	Test           bool
	DeliveryCount  int
	CreatedAt      time.Time
	// TraceParent is the W3C traceparent of the event's enqueue span, nil when published
	// without tracing.
	TraceParent *string
}
