package conformance

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

func NewWebhook(t *testing.T, s *store.Store, events string, enabled bool) *models.Webhook {
	t.Helper()
	w := &models.Webhook{Name: "w", URL: "https://example.com/h", Events: events, Enabled: enabled, Secret: "s"}
	if err := s.CreateWebhook(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	return w
}

func Publish(t *testing.T, s *store.Store, eventType, key string) store.Published {
	t.Helper()
	et, _ := models.LookupEventType(eventType)
	now := time.Now().UTC().Truncate(time.Second)
	res, err := s.Publish(context.Background(), []store.PublishInput{{Type: et.Name, Payload: et.Example(now),
		OccurredAt: now, IdempotencyKey: key, RequestHash: "h1"}})
	if err != nil {
		t.Fatal(err)
	}
	return res[0]
}

func ClaimFor(t *testing.T, s *store.Store, now time.Time, hooks ...store.WebhookQuota) ([]*models.Delivery, map[string]int64) {
	t.Helper()
	got, next, err := s.ClaimFor(context.Background(), store.ClaimForRequest{Owner: "test", Now: now, Lease: time.Minute, Hooks: hooks})
	if err != nil {
		t.Fatal(err)
	}
	return got, next
}

// AttemptAt records one attempt of a fresh delivery to w, started at the given time.
func AttemptAt(t *testing.T, s *store.Store, w *models.Webhook, at time.Time, ok bool) {
	t.Helper()
	p := Publish(t, s, "message.received", "")
	var d *models.Delivery
	for _, x := range p.Deliveries {
		if x.WebhookID == w.ID {
			d = x
		}
	}
	if d == nil {
		t.Fatalf("no delivery to %s", w.ID)
	}
	if err := s.RecordResults(context.Background(), []models.Result{ResultAt(d, at, ok)}); err != nil {
		t.Fatal(err)
	}
}

// ResultAt is the result of d's first attempt, started at the given time: 200 and succeeded,
// or 500 and failed for good.
func ResultAt(d *models.Delivery, at time.Time, ok bool) models.Result {
	status, outcome, result := 200, models.OutcomeSucceeded, models.StatusSucceeded
	if !ok {
		status, outcome, result = 500, models.OutcomeFailed, models.StatusFailed
	}
	return models.Result{DeliveryID: d.ID, WebhookID: d.WebhookID, Status: result, Succeeded: ok,
		Attempt: &models.Attempt{ID: models.NewID("att"), DeliveryID: d.ID, WebhookID: d.WebhookID, Number: 1, StartedAt: at,
			ResponseStatus: &status, Outcome: outcome}}
}

func concurrentRecords(t *testing.T, b Backend, dsn string) {
	ctx := context.Background()
	s := b.Open(t, dsn)
	hooks := []*models.Webhook{NewWebhook(t, s, "message.received", true), NewWebhook(t, s, "message.received", true),
		NewWebhook(t, s, "message.received", true)}
	var all []*models.Delivery
	for range 60 {
		all = append(all, Publish(t, s, "message.received", "").Deliveries...)
	}
	const replicas = 3
	errs := make(chan error, replicas)
	for r := range replicas {
		st := s
		if b.Name != "sqlite" { // a SQLite file serves one process: its writers share one store
			st = b.Open(t, dsn) // a pool of its own, as a replica has
		}
		go func() {
			var err error
			for i := r; i < len(all) && err == nil; i += replicas * 6 {
				err = st.RecordResults(ctx, Delivered(all[i:min(i+replicas*6, len(all))]...))
			}
			errs <- err
		}()
	}
	for range replicas {
		if err := <-errs; err != nil {
			t.Errorf("a replica's record failed: %v", err)
		}
	}
	stats, _, err := s.WebhookActivity(ctx, []string{hooks[0].ID}, time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	if got := stats[hooks[0].ID][23].Succeeded; got < 60 {
		t.Errorf("activity counts %d successes for the first webhook this hour, want at least its 60", got)
	}
}

// RowsOf returns the event ids of a webhook's delivery rows, oldest first (lists also show
// the deliveries a spill owes without a row: those are left out).
func RowsOf(t *testing.T, s *store.Store, webhookID string) []string {
	t.Helper()
	ds, _, err := s.ListDeliveries(context.Background(), store.DeliveryFilter{WebhookID: webhookID}, models.Page{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range slices.Backward(ds) {
		if d.Owed == nil {
			out = append(out, d.EventID)
		}
	}
	return out
}

// SameSet reports whether a and b hold the same strings, each once.
func SameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]bool{}
	for _, x := range a {
		seen[x] = true
	}
	for _, x := range b {
		if !seen[x] {
			return false
		}
		delete(seen, x)
	}
	return len(seen) == 0
}

func QueueStats(t *testing.T, s *store.Store) store.QueueStats {
	t.Helper()
	st, err := s.QueueStats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// Delivered is the result of a first attempt that succeeded, for each delivery.
func Delivered(ds ...*models.Delivery) []models.Result {
	out := make([]models.Result, len(ds))
	status := 200
	for i, d := range ds {
		out[i] = models.Result{DeliveryID: d.ID, WebhookID: d.WebhookID, Status: models.StatusSucceeded, Succeeded: true,
			Attempt: &models.Attempt{ID: models.NewID("att"), DeliveryID: d.ID, WebhookID: d.WebhookID, Number: 1,
				StartedAt: time.Now().UTC(), ResponseStatus: &status, Outcome: models.OutcomeSucceeded},
			Owed: d.Owed, EventID: d.EventID, EventType: d.EventType, TakenAt: d.CreatedAt}
	}
	return out
}

// RecordDelivered records ds as delivered on their first attempt, failing the test if the
// store refuses.
func RecordDelivered(t testing.TB, s *store.Store, ds ...*models.Delivery) {
	t.Helper()
	if err := s.RecordResults(context.Background(), Delivered(ds...)); err != nil {
		t.Fatal(err)
	}
}
