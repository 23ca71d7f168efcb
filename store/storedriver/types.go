package storedriver

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/models"
)

// The values that cross the driver seam. Package store re-exports each under the same name,
// which is how the rest of Hookrelay refers to them.

// WebhookQuota asks a claim for up to Free due deliveries of one webhook.
type WebhookQuota struct {
	WebhookID string
	Free      int
}

// ClaimForRequest says which webhooks to claim due deliveries for, and how many of each.
type ClaimForRequest struct {
	Owner string
	Now   time.Time
	Lease time.Duration
	Hooks []WebhookQuota
}

// SpillTake is what TakeSpilled did for one webhook.
type SpillTake struct {
	Taken   []*models.Delivery // owed events to send, oldest first, without rows yet (Owed is set)
	Spilled bool               // the webhook still owes events
	More    bool               // the take stopped at its limit: more may be owed already
}

// TakeRequest asks TakeSpilled for up to Rows owed events of each webhook. A webhook listed
// twice is taken once, for the larger quota (Wants): the answer holds one take per webhook.
type TakeRequest struct {
	Owner string
	Now   time.Time
	// Lease is how long what a take hands out is held for Owner where other processes could
	// take it too (PostgreSQL leases the owed rows); SQLite, one process, ignores it.
	Lease time.Duration
	Hooks []OwedQuota
}

// Wants is the request's webhooks in id order, each once, with the largest quota it was
// listed with.
func (r TakeRequest) Wants() []OwedQuota {
	wants := slices.SortedFunc(slices.Values(r.Hooks), func(a, b OwedQuota) int {
		return cmp.Or(strings.Compare(a.WebhookID, b.WebhookID), cmp.Compare(b.Rows, a.Rows))
	})
	return slices.CompactFunc(wants, func(a, b OwedQuota) bool { return a.WebhookID == b.WebhookID })
}

// OwedQuota is one webhook's part of a TakeRequest.
type OwedQuota struct {
	WebhookID string
	Rows      int
}

// Queued tells what a commit made due in this process (publish, replay, redelivery).
type Queued struct {
	Due      map[string]int64     // webhook id → earliest due time of its new deliveries (unix ms)
	Payloads map[string]EventBody // event id → its body, for events just published
	Spilled  []string             // webhooks the commit spilled: they owe the events it holds
}

// Lessee is the dispatcher of this process, offered a publish's new deliveries before they
// are written (Claims.LeaseAtPublish): the rows it takes are written leased to it, and it
// starts them without a claim, a statement less on the path of every event.
type Lessee interface {
	// Reserve is asked during the publish, before it writes, how many of want (new
	// deliveries per webhook) it takes now. A grant is settled by exactly one of Leased and
	// Release; owner and until are the lease the rows are written with (until in unix ms).
	// A publish run again (a PostgreSQL publish that found it needs a transaction) gives its
	// grants back first and asks again. Where owed events are marked one by one
	// (PostgreSQL), want includes spilled webhooks: what it grants them is written as leased
	// rows too, in publish order, and only the rest is owed.
	Reserve(want map[string]int, now time.Time) (granted map[string]int, owner string, until int64)
	// Leased hands over, after the commit (and after OnQueued's call), the deliveries written
	// leased in the granted slots: they are in no Queued.Due, and no one else claims them.
	Leased(ds []*models.Delivery)
	// Release gives back the slots of a Reserve whose publish did not commit.
	Release(granted map[string]int)
}

// EventBody is an event's body and the number of deliveries it fans out to (spilled webhooks
// included), which bounds how many attempts will ask for it.
type EventBody struct {
	Payload    []byte
	Deliveries int
	// TraceParent is the W3C traceparent stored with the event ("" when it was published
	// without tracing): attempts continue its trace.
	TraceParent string
}

// PublishInput is one event to publish.
type PublishInput struct {
	Type           string
	Payload        []byte // from EventType.BuildBody
	OccurredAt     time.Time
	IdempotencyKey string // optional
	RequestHash    string // hash of the request, to tell a retry from a key reused for other content
	TraceParent    string // W3C traceparent of the event's enqueue span; "" stores NULL
}

// Published is the outcome of publishing one event.
type Published struct {
	Event      *models.Event
	Deliveries []*models.Delivery
	Replayed   bool // the Idempotency-Key was seen before with the same request
}

// ReplayFilter selects the past events a replay sends again to one webhook: the given types,
// published (not test) events accepted in [Since, Until), also from before the webhook
// existed. Events with a delivery to the webhook still pending, or owed by its spill, are
// skipped: they are on their way already. OnlyFailed keeps the events whose deliveries to the webhook all ended failed
// or cancelled (at least one, none succeeded).
type ReplayFilter struct {
	WebhookID    string
	Types        []string
	Since, Until time.Time
	OnlyFailed   bool
}

// DeliveryFilter narrows ListDeliveries.
type DeliveryFilter struct {
	WebhookID, Status, EventType, EventID string
	// NoTests leaves out the test action's deliveries.
	NoTests bool
}

// QueueStats is a snapshot of the outbox for monitoring.
type QueueStats struct {
	Pending   int64 // deliveries not yet finished, including those waiting for a retry
	OldestDue int64 // unix ms at which the longest-waiting pending delivery became due; 0 when none
	Spilled   int64 // webhooks spilled (see Spiller)
	Owed      int64 // events the spilled webhooks owe, without delivery rows yet
}

// Backlog is what a spilled webhook still owes, for showing it.
type Backlog struct {
	SpilledSince time.Time
	OwedEvents   *int64 // nil when not counted
}

// Setting is a key/value row for process-wide state such as the admin token's hash.
type Setting struct {
	Key   string `gorm:"primaryKey"`
	Value string
}

// Notification channels (PostgreSQL's LISTEN/NOTIFY; a SQLite driver has one process and
// sends none).
const (
	ChannelWake     = "hookrelay_wake"     // deliveries became due; payload: "<sender> <WakePayload>"
	ChannelCaptures = "hookrelay_captures" // an inspector capture was stored; payload: "<replica id> <bin id> <capture id>"
	ChannelChanges  = "hookrelay_changes"  // admin-visible state changed; payload: "<replica id> <changes.Message JSON>"
)

// WakePayload is what a ChannelWake notification announces for deliveries queued for these
// webhooks: their ids, comma-separated, or "" (meaning: look everywhere) when they would not
// fit in one notification. The PostgreSQL driver sends it after its sender's name.
func WakePayload(due map[string]int64) string {
	var sb strings.Builder
	for id := range due {
		if sb.Len()+len(id)+1 > 4000 {
			return ""
		}
		if sb.Len() > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(id)
	}
	return sb.String()
}
