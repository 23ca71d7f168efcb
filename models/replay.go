package models

import (
	"strings"
	"time"
)

// Replay job statuses.
const (
	ReplayRunning = "running" // batches are being queued (or will be, after a restart)
	ReplayDone    = "done"    // every matching event was queued
	ReplayStopped = "stopped" // the webhook was disabled or deleted before the end
)

// ReplayJob is a replay of past events to one webhook, kept in the database so that it
// resumes after a restart where it stopped: AfterEvent is the last event queued, moved in the
// same transaction as the deliveries it queued, so no event is queued twice or skipped.
type ReplayJob struct {
	ID         string `gorm:"primaryKey"`
	WebhookID  string
	Types      string // comma-separated event types
	Since      time.Time
	Until      time.Time
	OnlyFailed bool
	AfterEvent string
	Total      int64 // matching events when the job was created
	Queued     int64
	Status     string
	Error      string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	FinishedAt *time.Time
}

// TypeList returns Types as a slice.
func (j *ReplayJob) TypeList() []string {
	if j.Types == "" {
		return nil
	}
	return strings.Split(j.Types, ",")
}
