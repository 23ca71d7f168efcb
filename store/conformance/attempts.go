package conformance

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

func testRecordResultsDoesNotReviveCancelledDelivery(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	w := NewWebhook(t, s, "message.received", true)
	Publish(t, s, "message.received", "")
	got, _ := ClaimFor(t, s, time.Now(), store.WebhookQuota{WebhookID: w.ID, Free: 10})
	if len(got) != 1 {
		t.Fatalf("claimed %d", len(got))
	}
	// Disabled while the attempt was in flight.
	if err := s.DisableWebhook(ctx, w.ID, "test"); err != nil {
		t.Fatal(err)
	}
	status := 500
	errText := "HTTP 500"
	err := s.RecordResults(ctx, []models.Result{{DeliveryID: got[0].ID, WebhookID: w.ID, Status: models.StatusPending,
		NextAttemptAt: time.Now().Add(time.Minute).UnixMilli(),
		Attempt: &models.Attempt{ID: models.NewID("att"), DeliveryID: got[0].ID, WebhookID: w.ID, Number: 1,
			StartedAt: time.Now().UTC(), ResponseStatus: &status, Error: &errText, Outcome: models.OutcomeFailed}}})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := s.GetDelivery(ctx, got[0].ID)
	if d.Status != models.StatusCancelled {
		t.Fatalf("status %s, want cancelled", d.Status)
	}
	attempts, _ := s.ListAttempts(ctx, d.ID)
	if len(attempts) != 1 {
		t.Fatalf("attempt not logged: %d", len(attempts))
	}
	wh, _ := s.GetWebhook(ctx, w.ID)
	if wh.FailingSince == nil {
		t.Fatal("failing_since not set after a failed attempt")
	}
}

// A recorded batch's attempt rows are written grouped by what they share (webhook, number,
// status, error, outcome, test), many per statement: each row must read back exactly as it
// was given, whatever group and statement it went in, NULLs included.
func testRecordedAttemptsReadBackExactlyFromLargeMixedBatches(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	a := NewWebhook(t, s, "message.received", true)
	c := NewWebhook(t, s, "message.received", true)
	const events = 150 // 300 deliveries: groups of up to 100, several statements each
	et, _ := models.LookupEventType(models.EventMessageReceived)
	now := time.Now().UTC().Truncate(time.Second)
	in := make([]store.PublishInput, events)
	for i := range in {
		in[i] = store.PublishInput{Type: et.Name, Payload: et.Example(now), OccurredAt: now, RequestHash: "h"}
	}
	if _, err := s.Publish(ctx, in); err != nil {
		t.Fatal(err)
	}
	got, _ := ClaimFor(t, s, time.Now(), store.WebhookQuota{WebhookID: a.ID, Free: 1000}, store.WebhookQuota{WebhookID: c.ID, Free: 1000})
	if len(got) != 2*events {
		t.Fatalf("claimed %d deliveries, want %d", len(got), 2*events)
	}
	want := map[string]*models.Attempt{}
	results := make([]models.Result, 0, len(got))
	for i, d := range got {
		at := &models.Attempt{ID: models.NewID("att"), DeliveryID: d.ID, WebhookID: d.WebhookID, Number: 1,
			StartedAt: time.Now().UTC().Add(time.Duration(i) * time.Millisecond).Truncate(time.Microsecond), DurationMs: int64(i), // PostgreSQL keeps µs
			RequestHeaders:  fmt.Sprintf(`{"X-Webhook-Id":"%s","X-Quote":"say \"%d\" ü"}`, d.EventID, i),
			ResponseHeaders: fmt.Sprintf(`{"Date":"%d"}`, i), ResponseBody: fmt.Sprintf("body %d ✓", i)}
		r := models.Result{DeliveryID: d.ID, WebhookID: d.WebhookID, Attempt: at}
		switch i % 3 {
		case 0:
			st := 200
			at.ResponseStatus, at.Outcome = &st, models.OutcomeSucceeded
			r.Status, r.Succeeded = models.StatusSucceeded, true
		case 1:
			st, e := 500, "HTTP 500"
			at.ResponseStatus, at.Error, at.Outcome = &st, &e, models.OutcomeFailed
			r.Status, r.NextAttemptAt = models.StatusPending, time.Now().Add(time.Hour).UnixMilli()
		default:
			e := "timeout: no complete response within 10s"
			at.Error, at.Outcome, at.ResponseHeaders, at.ResponseBody = &e, models.OutcomeFailed, "", ""
			r.Status, r.NextAttemptAt = models.StatusPending, time.Now().Add(time.Hour).UnixMilli()
		}
		want[d.ID] = at
		results = append(results, r)
	}
	if err := s.RecordResults(ctx, results); err != nil {
		t.Fatal(err)
	}
	for id, w := range want {
		list, err := s.ListAttempts(ctx, id)
		if err != nil || len(list) != 1 {
			t.Fatalf("delivery %s: %d attempts, err %v; want 1", id, len(list), err)
		}
		g := list[0]
		if !g.StartedAt.Equal(w.StartedAt) {
			t.Errorf("attempt %s started_at %v, want %v", w.ID, g.StartedAt, w.StartedAt)
		}
		g.StartedAt = w.StartedAt
		if !reflect.DeepEqual(g, w) {
			t.Errorf("attempt read back as\n%+v\nwant\n%+v", *g, *w)
		}
	}
}

// Replicas record results for the same webhooks at the same time. The rows they all update
// (the webhooks' health and their activity) are taken in one order, so their transactions
// queue instead of deadlocking: PostgreSQL would abort one of them after a second. (On
// SQLite, three stores on one file queue for its lock.)
func testConcurrentRecordsOfTheSameWebhooksDoNotDeadlock(t *testing.T, b Backend) {
	concurrentRecords(t, b, b.DSN(t))
}

// A webhook's health follows each change of outcome at once, however close together the
// records come; and a change written by hand (as another replica writes it) is overwritten by
// this process's next record of the other outcome once its own last write is a second old.
func testWebhookHealthFollowsEveryChangeOfOutcome(t *testing.T, b Backend) {
	dsn := b.DSN(t)
	s := b.Open(t, dsn)
	ctx := context.Background()
	w := NewWebhook(t, s, "message.received", true)
	health := func() *models.Webhook {
		t.Helper()
		got, err := s.GetWebhook(ctx, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	for i, ok := range []bool{false, false, true, true, false, true, false} {
		AttemptAt(t, s, w, time.Now().UTC(), ok)
		got := health()
		if ok && (got.FailingSince != nil || got.LastSuccessAt == nil) {
			t.Fatalf("record %d, a success: failing_since %v, last_success_at %v", i, got.FailingSince, got.LastSuccessAt)
		}
		if !ok && got.FailingSince == nil {
			t.Fatalf("record %d, a failure: failing_since not set", i)
		}
	}
	// Failing as this process last wrote it; another writer clears it, as a success recorded by
	// another replica does.
	if err := s.ExecSQL(ctx, `UPDATE webhooks SET failing_since = NULL WHERE id = ?`, w.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	AttemptAt(t, s, w, time.Now().UTC(), false)
	if health().FailingSince == nil {
		t.Fatal("a failure a second after this process last wrote the webhook's health did not set failing_since")
	}
}
