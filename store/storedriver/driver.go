// Package storedriver is the seam between Hookrelay and its databases: the Driver interface
// that package store hands out, and the values that cross it. A driver (store/sqlite,
// store/postgres) implements Driver with its own SQL and machinery; nothing above the seam
// asks which database it runs on, except through the capability methods, which each driver
// answers with a constant.
//
// Driver is split into small interfaces by concern, so a consumer (or a fake in a test) can
// name the part it needs, as api and delivery do with interfaces of their own.
package storedriver

import (
	"context"
	"time"

	"github.com/hookrelay/hookrelay/models"
)

// Driver is everything Hookrelay asks of a database.
type Driver interface {
	Capabilities
	Lifecycle
	Webhooks
	Events
	Deliveries
	Claims
	Spiller
	Captures
	Auth
	Maintenance
	Replicas
	ReplayJobs
}

// ReplayJobs are replays of past events kept in the database, so that one resumes after a
// restart where it stopped.
type ReplayJobs interface {
	// CreateReplayJob stores a new running job.
	CreateReplayJob(ctx context.Context, j *models.ReplayJob) error
	// StepReplayJob queues the next batch of a running job's events and moves its position
	// past them in one transaction; it returns the job afterwards and how many it queued.
	StepReplayJob(ctx context.Context, id string, batch int) (*models.ReplayJob, int, error)
	GetReplayJob(ctx context.Context, id string) (*models.ReplayJob, error)
	// ListReplayJobs returns a webhook's most recent jobs, newest first.
	ListReplayJobs(ctx context.Context, webhookID string, limit int) ([]*models.ReplayJob, error)
	// RunningReplayJobs returns the ids of the jobs still running, oldest first.
	RunningReplayJobs(ctx context.Context) ([]string, error)
}

// Capabilities are what differs between databases in what they can do, answered by each
// driver as a constant.
type Capabilities interface {
	// IsPostgres reports whether the store runs on PostgreSQL: several replicas share the
	// database, and leases, wakes and job locks go through it.
	IsPostgres() bool
	// SpillSupported reports whether webhooks can be spilled (see Spiller).
	SpillSupported() bool
}

// Lifecycle is opening-time and closing-time business, and SQL from outside the driver.
type Lifecycle interface {
	// Ping checks that the database answers (for /readyz).
	Ping(ctx context.Context) error
	// Close stops the driver's background work and closes every pool.
	Close() error
	// ExecSQL runs a statement on the writer. For tests and admin tools only: Hookrelay's own
	// statements live in the drivers.
	ExecSQL(ctx context.Context, query string, args ...any) error
	// ScanSQL runs a query on a reader and scans its rows into dest (a pointer to a value,
	// struct, slice of structs or of maps). For tests and admin tools only.
	ScanSQL(ctx context.Context, dest any, query string, args ...any) error
}

// Webhooks store the endpoints events are sent to.
type Webhooks interface {
	CreateWebhook(ctx context.Context, w *models.Webhook) error
	// GetWebhook reads one webhook; models.ErrNotFound when there is none.
	GetWebhook(ctx context.Context, id string) (*models.Webhook, error)
	// GetWebhooks reads the webhooks with the given ids (missing ones are simply absent).
	GetWebhooks(ctx context.Context, ids []string) (map[string]*models.Webhook, error)
	// WebhooksToSend is GetWebhooks for the dispatcher, served from a short-lived cache that a
	// change made through this store invalidates at once. The webhooks are shared: callers
	// must not change them.
	WebhooksToSend(ctx context.Context, ids []string) (map[string]*models.Webhook, error)
	// ListWebhooks returns one page of webhooks, newest first.
	ListWebhooks(ctx context.Context, p models.Page) ([]*models.Webhook, string, error)
	// UpdateWebhook saves w; going from enabled to disabled cancels its pending deliveries.
	UpdateWebhook(ctx context.Context, w *models.Webhook) error
	// ModifyWebhook reads a webhook, lets change edit it and saves it, in one write
	// transaction, so concurrent changes apply one after the other. An error from change
	// aborts without saving and is returned as it is.
	ModifyWebhook(ctx context.Context, id string, change func(w *models.Webhook) error) (*models.Webhook, error)
	// DisableWebhook turns a webhook off with a reason shown to admins, cancelling what is
	// pending.
	DisableWebhook(ctx context.Context, id, reason string) error
	// DeleteWebhook removes a webhook with its deliveries and their attempts.
	DeleteWebhook(ctx context.Context, id string) error
	// WebhookActivity returns, per webhook, 24 hourly buckets of attempt outcomes (oldest
	// first, the last one the hour now is in), and the last attempt.
	WebhookActivity(ctx context.Context, ids []string, now time.Time) (map[string][]models.WebhookStats, map[string]*models.LastDelivery, error)
	// StaleFailingWebhooks returns enabled webhooks whose failures began before cutoff with no
	// success since (candidates for auto-disable).
	StaleFailingWebhooks(ctx context.Context, cutoff time.Time) ([]*models.Webhook, error)
}

// Events are the outbox's input: an event and its deliveries are written in one transaction.
type Events interface {
	// Publish writes the events and one pending delivery per enabled subscribed webhook in
	// one transaction (the outbox): once it returns, a crash cannot lose them.
	Publish(ctx context.Context, in []PublishInput) ([]Published, error)
	// OnQueued registers fn to be told, after each commit that queues deliveries, what it
	// queued. fn must not block.
	OnQueued(fn func(Queued))
	GetEvent(ctx context.Context, id string) (*models.Event, error)
	// ListEvents returns one page of published (non-test) events, newest first.
	ListEvents(ctx context.Context, eventType string, p models.Page) ([]*models.Event, string, error)
	// EventPayloads reads the body bytes of the given events.
	EventPayloads(ctx context.Context, ids []string) (map[string]EventBody, error)
	// CountReplay returns how many events a replay with this filter would queue now.
	CountReplay(ctx context.Context, f ReplayFilter) (int64, error)
	// QueueReplay creates one pending delivery to the webhook per matching event, batch
	// events per write transaction, and returns the number queued.
	QueueReplay(ctx context.Context, f ReplayFilter, batch int, afterBatch func(n int)) (int, error)
	// RecordTest stores a test action: a test event, its delivery in its final state and the
	// attempt.
	RecordTest(ctx context.Context, ev *models.Event, d *models.Delivery, a *models.Attempt) error
}

// Deliveries are read and redelivered by admins, and recorded by the dispatcher.
type Deliveries interface {
	// GetDelivery reads one delivery (also one a spill owes, without a row yet).
	GetDelivery(ctx context.Context, id string) (*models.Delivery, error)
	// ListDeliveries returns one page of deliveries, newest first.
	ListDeliveries(ctx context.Context, f DeliveryFilter, p models.Page) ([]*models.Delivery, string, error)
	// ListAttempts returns a delivery's attempts in order.
	ListAttempts(ctx context.Context, deliveryID string) ([]*models.Attempt, error)
	// RequeueDelivery makes a finished delivery due now again (manual redelivery).
	RequeueDelivery(ctx context.Context, id string) (*models.Delivery, error)
	// RecordResults writes a batch of attempt results in one transaction (group commit). A
	// delivery cancelled or deleted meanwhile keeps its state.
	RecordResults(ctx context.Context, results []models.Result) error
	// EventDeliveryCounts returns, per event id, its deliveries by status (owed ones count as
	// pending). An event with no delivery is absent.
	EventDeliveryCounts(ctx context.Context, eventIDs []string) (map[string]models.DeliveryCounts, error)
	// PendingCounts returns, per webhook, its deliveries not yet finished (owed ones too).
	PendingCounts(ctx context.Context, ids []string) (map[string]int64, error)
	// QueueStats counts the outbox for monitoring.
	QueueStats(ctx context.Context) (QueueStats, error)
}

// Claims lease due deliveries to a dispatcher.
type Claims interface {
	// ClaimFor leases up to Free due deliveries of each listed webhook, oldest due first, and
	// reports for each listed webhook whose due deliveries were all taken when its next
	// pending delivery becomes due (unix ms; 0 when none).
	ClaimFor(ctx context.Context, r ClaimForRequest) ([]*models.Delivery, map[string]int64, error)
	// PendingByWebhook returns, for every webhook with pending deliveries, when the earliest
	// of them is or was due (unix ms). Where leases are written in the rows (PostgreSQL), rows
	// whose lease holds are left out: no claim could take them.
	PendingByWebhook(ctx context.Context) (map[string]int64, error)
	// ReleaseLeases frees deliveries this process claimed but will not attempt (shutdown).
	ReleaseLeases(ctx context.Context, ids []string) error
	// ReleaseAllLeases frees every lease: for a database only this process uses, whose
	// leases at start-up were left by a crash of this same server.
	ReleaseAllLeases(ctx context.Context) error
	// LeaseAtPublish makes publishes offer their new deliveries to l (nil: to no one) and
	// reports whether this driver does: a publish writes the rows it is granted leased.
	LeaseAtPublish(l Lessee) bool
}

// SpillThreshold is the backlog at which a publish spills a webhook: Due of its deliveries pending
// that have been due for DueFor or longer (in flight, waiting for a slot, or a retry whose
// time came), or Pending of them pending at all. A zero count turns its test off.
type SpillThreshold struct {
	Due     int
	DueFor  time.Duration
	Pending int
}

// Spiller keeps a saturated webhook from costing a row per event: a spilled webhook owes the
// events published after a position instead, taken a chunk at a time as it frees capacity.
// A driver without SpillSupported spills nothing and answers as if no webhook were spilled.
type Spiller interface {
	// Spill makes the given enabled webhooks owe the events published from now on, and
	// returns the ids spilled afterwards.
	Spill(ctx context.Context, webhookIDs []string) (map[string]bool, error)
	// RequestSpill asks the next publish to spill these webhooks.
	RequestSpill(webhookIDs []string)
	// SpillWhenPending makes publishes spill a webhook once its backlog reaches t (checked
	// once per t.Due rows written for it). The zero SpillThreshold, the default, starts spills only
	// on request. The engine sets it: the thresholds of the spill policy are all its own.
	SpillWhenPending(t SpillThreshold)
	// SpilledWebhooks returns the ids of the spilled webhooks.
	SpilledWebhooks(ctx context.Context) ([]string, error)
	// Backlogs returns the spilled webhooks among ids with, when count is set, how many
	// events each still owes.
	Backlogs(ctx context.Context, ids []string, count bool) (map[string]*Backlog, error)
	// TakeSpilled hands out the next owed events of spilled webhooks, oldest first, as
	// deliveries without rows (Delivery.Owed set) whose rows RecordResults writes. On
	// PostgreSQL what it hands out is leased to the request's owner until it is recorded.
	TakeSpilled(ctx context.Context, r TakeRequest) (map[string]SpillTake, error)
	// AbandonOwed is told that deliveries taken without rows will not be recorded: their
	// webhooks' events are taken again (from the stored position on SQLite; by releasing this
	// process's leases at the next take on PostgreSQL).
	AbandonOwed(webhookIDs []string)
}

// Captures are the inspector's bins and the requests they received.
type Captures interface {
	CreateBin(ctx context.Context, b *models.Bin) error
	GetBin(ctx context.Context, id string) (*models.Bin, error)
	ListBins(ctx context.Context, p models.Page) ([]*models.Bin, string, error)
	UpdateBin(ctx context.Context, b *models.Bin) error
	// DeleteBin removes a bin and its captures.
	DeleteBin(ctx context.Context, id string) error
	// InsertCaptures stores captures in one transaction and keeps their bins to their newest
	// keep captures: reads given the same keep never show more, and the ones beyond are
	// deleted a tenth of keep at a time; models.ErrNotFound, and nothing stored, when a bin
	// is gone.
	InsertCaptures(ctx context.Context, cs []*models.Capture, keep int) error
	// ListCaptures and CountCaptures see a bin's newest keep captures (all with keep 0).
	ListCaptures(ctx context.Context, binID string, p models.Page, preview, keep int) ([]*models.Capture, string, error)
	GetCapture(ctx context.Context, binID, id string) (*models.Capture, error)
	CountCaptures(ctx context.Context, binID string, keep int) (int64, error)
}

// Auth is API keys, browser sessions and process-wide settings.
type Auth interface {
	// CreateAPIKey stores a new key and returns it with the token, shown only this once.
	CreateAPIKey(ctx context.Context, name string) (*models.APIKey, string, error)
	ListAPIKeys(ctx context.Context, p models.Page) ([]*models.APIKey, string, error)
	// DeleteAPIKey revokes a key and ends the browser sessions opened with it.
	DeleteAPIKey(ctx context.Context, id string) error
	// FindAPIKey looks a token up by its hash and confirms it in constant time.
	FindAPIKey(ctx context.Context, token string) (*models.APIKey, error)
	// TouchAPIKey records that a key was used.
	TouchAPIKey(ctx context.Context, id string, at time.Time) error
	// CreateSession stores a browser session opened with credential and returns its cookie.
	CreateSession(ctx context.Context, ttl time.Duration, credential string) (string, *models.Session, error)
	// FindSession returns the live session for a cookie value.
	FindSession(ctx context.Context, token string) (*models.Session, error)
	DeleteSession(ctx context.Context, token string) error
	// GetSetting reads a setting; models.ErrNotFound when unset.
	GetSetting(ctx context.Context, key string) (string, error)
	// SetSettingIfAbsent stores a setting unless one exists and returns the value in force.
	SetSettingIfAbsent(ctx context.Context, key, value string) (string, error)
}

// Maintenance is retention.
type Maintenance interface {
	// Prune deletes events, deliveries, attempts and inspector captures older than the
	// cutoff (and expired sessions), except deliveries still pending and their events.
	Prune(ctx context.Context, before time.Time) (int64, error)
}

// Replicas are how processes sharing one database tell each other things. A database owned
// by one process answers them trivially.
type Replicas interface {
	// Notify sends a notification to every replica listening on channel.
	Notify(ctx context.Context, channel, payload string) error
	// Listen calls fn for every notification on channel until ctx is done. fn must not block.
	Listen(ctx context.Context, channel string, fn func(payload string))
	// WithJobLock runs fn only if no other replica is running the job named key right now,
	// and reports whether fn ran.
	WithJobLock(ctx context.Context, key int64, fn func(ctx context.Context) error) (bool, error)
}
