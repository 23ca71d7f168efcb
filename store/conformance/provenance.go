package conformance

import (
	"context"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

// An attempt keeps the body format it was sent in and a replayed delivery the job that
// queued it, whatever path wrote them (recorded batches, the test action, a replay step); a
// delivery of a publish names no job.
func testAttemptsKeepTheirFormatAndReplaysTheirJob(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	since := time.Now().UTC().Add(-time.Minute)
	w := NewWebhook(t, s, "message.received", true)
	p := Publish(t, s, "message.received", "")
	d := p.Deliveries[0]
	status := 200
	err := s.RecordResults(ctx, []models.Result{{DeliveryID: d.ID, WebhookID: w.ID, Status: models.StatusSucceeded, Succeeded: true,
		Attempt: &models.Attempt{ID: models.NewID("att"), DeliveryID: d.ID, WebhookID: w.ID, Number: 1, StartedAt: time.Now().UTC(),
			ResponseStatus: &status, Outcome: models.OutcomeSucceeded, Format: models.FormatSlack}}})
	if err != nil {
		t.Fatal(err)
	}
	if as, err := s.ListAttempts(ctx, d.ID); err != nil || len(as) != 1 || as[0].Format != models.FormatSlack {
		t.Fatalf("recorded attempt: %+v, %v; want format slack", as, err)
	}
	if got, _ := s.GetDelivery(ctx, d.ID); got.ReplayID != "" {
		t.Errorf("a published delivery names replay %q", got.ReplayID)
	}

	td := recordTest(t, s, w, time.Now().UTC(), false, models.FormatDiscord)
	if as, err := s.ListAttempts(ctx, td.ID); err != nil || len(as) != 1 || as[0].Format != models.FormatDiscord {
		t.Fatalf("test attempt: %+v, %v; want format discord", as, err)
	}

	f := store.ReplayFilter{WebhookID: w.ID, Types: w.EventList(), Since: since, Until: time.Now().UTC().Add(time.Second)}
	j := &models.ReplayJob{WebhookID: w.ID, Types: "message.received", Since: f.Since, Until: f.Until, Total: 1}
	if err := s.CreateReplayJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	if _, n, err := s.StepReplayJob(ctx, j.ID, 10); err != nil || n != 1 {
		t.Fatalf("replay step queued %d, %v", n, err)
	}
	list, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{WebhookID: w.ID, Status: models.StatusPending}, models.Page{Limit: 10})
	if err != nil || len(list) != 1 || list[0].ReplayID != j.ID || list[0].EventID != p.Event.ID {
		t.Fatalf("replayed deliveries %+v, %v; want one naming %s", list, err, j.ID)
	}
	if got, _ := s.GetDelivery(ctx, list[0].ID); got.ReplayID != j.ID {
		t.Errorf("GetDelivery of a replayed delivery names %q, want %s", got.ReplayID, j.ID)
	}

	// The test action's deliveries are left out on request.
	all, _, _ := s.ListDeliveries(ctx, store.DeliveryFilter{WebhookID: w.ID, Status: models.StatusFailed}, models.Page{Limit: 10})
	noTests, _, _ := s.ListDeliveries(ctx, store.DeliveryFilter{WebhookID: w.ID, Status: models.StatusFailed, NoTests: true}, models.Page{Limit: 10})
	if len(all) != 1 || len(noTests) != 0 {
		t.Errorf("failed deliveries: %d with tests, %d without; want 1 and 0", len(all), len(noTests))
	}
}

// An event's deliveries are counted by status, per event, and an event without any is
// absent.
func testEventDeliveryCountsByStatus(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	a := NewWebhook(t, s, "message.received", true)
	NewWebhook(t, s, "message.received", true)
	c := NewWebhook(t, s, "message.received", true)
	p := Publish(t, s, "message.received", "")
	quiet := Publish(t, s, "conversation.started", "")
	var results []models.Result
	for _, d := range p.Deliveries {
		status := 500
		r := models.Result{DeliveryID: d.ID, WebhookID: d.WebhookID, Status: models.StatusFailed,
			Attempt: &models.Attempt{ID: models.NewID("att"), DeliveryID: d.ID, WebhookID: d.WebhookID, Number: 1,
				StartedAt: time.Now().UTC(), ResponseStatus: &status, Outcome: models.OutcomeFailed}}
		switch d.WebhookID {
		case a.ID:
			status = 200
			r.Status, r.Succeeded, r.Attempt.Outcome = models.StatusSucceeded, true, models.OutcomeSucceeded
		case c.ID:
			continue // still pending
		}
		results = append(results, r)
	}
	if err := s.RecordResults(ctx, results); err != nil {
		t.Fatal(err)
	}
	got, err := s.EventDeliveryCounts(ctx, []string{p.Event.ID, quiet.Event.ID})
	if err != nil {
		t.Fatal(err)
	}
	if want := (models.DeliveryCounts{Pending: 1, Succeeded: 1, Failed: 1}); got[p.Event.ID] != want {
		t.Errorf("counts %+v, want %+v", got[p.Event.ID], want)
	}
	if n, ok := got[quiet.Event.ID]; ok {
		t.Errorf("an event without deliveries has counts %+v", n)
	}
}

// The hourly rollup counts the test action apart from deliveries' attempts; migration 12
// moves the tests an older rollup counted with them.
func testWebhookActivityCountsTestsApart(t *testing.T, b Backend) {
	dsn := b.DSN(t)
	s := b.Open(t, dsn)
	ctx := context.Background()
	w := NewWebhook(t, s, "message.received", true)
	now := time.Now().UTC()
	AttemptAt(t, s, w, now, false)
	for _, ok := range []bool{false, false, true} {
		recordTest(t, s, w, now, ok, models.FormatJSON)
	}
	want := models.WebhookStats{Failed: 1, TestsFailed: 2, TestsSucceeded: 1}
	sum := func(s *store.Store) models.WebhookStats {
		stats, _, err := s.WebhookActivity(ctx, []string{w.ID}, now)
		if err != nil {
			t.Fatal(err)
		}
		var out models.WebhookStats
		for _, b := range stats[w.ID] {
			out.Succeeded += b.Succeeded
			out.Failed += b.Failed
			out.TestsSucceeded += b.TestsSucceeded
			out.TestsFailed += b.TestsFailed
		}
		return out
	}
	if got := sum(s); got != want {
		t.Errorf("activity %+v, want %+v", got, want)
	}
	// The rollup as it was before migration 12: tests counted with deliveries.
	for _, q := range []string{
		`UPDATE webhook_activity SET succeeded = succeeded + tests_succeeded, failed = failed + tests_failed, tests_succeeded = 0, tests_failed = 0`,
		`ALTER TABLE webhook_activity DROP COLUMN tests_succeeded`,
		`ALTER TABLE webhook_activity DROP COLUMN tests_failed`,
		`DELETE FROM schema_migrations WHERE version = 12`,
	} {
		if err := s.ExecSQL(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := s.Close(); err != nil { // the restart that runs the migration
		t.Fatal(err)
	}
	if got := sum(b.Open(t, dsn)); got != want {
		t.Errorf("activity after migration 12: %+v, want %+v", got, want)
	}
}

// A capture keeps the status its bin answered with, in lists and read whole.
func testCaptureKeepsItsAnswer(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	bin := &models.Bin{Name: "answers"}
	if err := s.CreateBin(ctx, bin); err != nil {
		t.Fatal(err)
	}
	c := &models.Capture{BinID: bin.ID, Method: "POST", Path: "/inspect/" + bin.ID, Headers: "{}", Body: []byte("x"), Size: 1,
		ReceivedAt: time.Now().UTC(), Verdicts: "{}", Answered: 503}
	if err := s.InsertCapture(ctx, c, 10); err != nil {
		t.Fatal(err)
	}
	list, _, err := s.ListCaptures(ctx, bin.ID, models.Page{Limit: 10}, 16, 10)
	if err != nil || len(list) != 1 || list[0].Answered != 503 {
		t.Fatalf("listed %+v, %v; want answered 503", list, err)
	}
	if got, err := s.GetCapture(ctx, bin.ID, c.ID); err != nil || got.Answered != 503 {
		t.Fatalf("read %+v, %v; want answered 503", got, err)
	}
}

// recordTest stores a test action's event, delivery and attempt, as the test action does, and
// returns the delivery.
func recordTest(t *testing.T, s *store.Store, w *models.Webhook, at time.Time, ok bool, format string) *models.Delivery {
	t.Helper()
	ev := &models.Event{ID: models.NewID("evt"), Type: "message.received", Payload: []byte(`{}`), OccurredAt: at, Test: true, DeliveryCount: 1, CreatedAt: at}
	d := &models.Delivery{ID: models.NewID("dlv"), EventID: ev.ID, WebhookID: w.ID, EventType: ev.Type, Status: models.StatusFailed,
		AttemptCount: 1, Test: true, CreatedAt: at, UpdatedAt: at}
	a := &models.Attempt{ID: models.NewID("att"), DeliveryID: d.ID, WebhookID: w.ID, Number: 1, StartedAt: at,
		Outcome: models.OutcomeFailed, Test: true, Format: format}
	if ok {
		d.Status, a.Outcome = models.StatusSucceeded, models.OutcomeSucceeded
	}
	if err := s.RecordTest(context.Background(), ev, d, a); err != nil {
		t.Fatal(err)
	}
	return d
}
