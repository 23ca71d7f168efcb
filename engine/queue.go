package engine

import (
	"context"
	"log/slog"
	"runtime"
	"time"

	"github.com/hookrelay/hookrelay/delivery"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/tracing"
)

// Queue is what the engine needs from storage: claiming due deliveries under a lease, taking
// the events spilled webhooks owe, recording results, hearing about new work, and being
// offered a publish's new deliveries to lease (lease.go). The engine declares it so that the
// store's side can change without the engine noticing.
type Queue interface {
	ClaimFor(ctx context.Context, r store.ClaimForRequest) ([]*models.Delivery, map[string]int64, error)
	ReleaseLeases(ctx context.Context, ids []string) error
	ReleaseAllLeases(ctx context.Context) error
	PendingByWebhook(ctx context.Context) (map[string]int64, error)
	RecordResults(ctx context.Context, results []models.Result) error
	RecordTest(ctx context.Context, ev *models.Event, d *models.Delivery, a *models.Attempt) error
	WebhooksToSend(ctx context.Context, ids []string) (map[string]*models.Webhook, error)
	EventPayloads(ctx context.Context, ids []string) (map[string]store.EventBody, error)

	SpillSupported() bool
	RequestSpill(webhookIDs []string)
	SpillWhenPending(t store.SpillThreshold)
	SpilledWebhooks(ctx context.Context) ([]string, error)
	TakeSpilled(ctx context.Context, r store.TakeRequest) (map[string]store.SpillTake, error)
	AbandonOwed(webhookIDs []string)

	OnQueued(fn func(store.Queued))
	LeaseAtPublish(l store.Lessee) bool
	Listen(ctx context.Context, channel string, fn func(payload string))
	IsPostgres() bool
}

// Config configures a Dispatcher.
type Config struct {
	Store         Queue
	Sender        *delivery.Sender
	Workers       int // deliveries in flight in total
	PerWebhook    int // most deliveries in flight to one webhook
	RetrySchedule []time.Duration
	Lease         time.Duration // how long a claim holds a delivery before others may take it
	Logger        *slog.Logger
	Jitter        func() float64  // in [0,1); injectable for tests
	Metrics       Observer        // optional
	Changes       ChangeObserver  // optional
	Tracer        *tracing.Tracer // nil: no tracing, at no cost
}

// ChangeObserver is told what the engine changed that admins see, once it is stored (the
// admin change stream, changes.Feed, implements it). Neither call may block.
type ChangeObserver interface {
	// DeliveriesRecorded: these results are written (attempts, new states, 410 disables).
	DeliveriesRecorded(results []models.Result)
	// WebhooksChanged: these webhooks got new work or started to spill.
	WebhooksChanged(ids []string)
}

// Observer is told about what the dispatcher does (delivery.Metrics implements it).
type Observer interface {
	Attempted(webhookID string, resp *delivery.Response, status string)
	InFlight(n int)
}

// DefaultWorkers is the in-flight bound for this machine: deliveries mostly wait on the
// network, so it is far above the core count.
func DefaultWorkers() int { return max(64, 64*runtime.NumCPU()) }
