package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

// attemptAt records one attempt of a fresh delivery to w, started at the given time.
func attemptAt(t *testing.T, s *store.Store, w *models.Webhook, at time.Time, ok bool) {
	t.Helper()
	p := publish(t, s, "message.received", "")
	var d *models.Delivery
	for _, x := range p.Deliveries {
		if x.WebhookID == w.ID {
			d = x
		}
	}
	if d == nil {
		t.Fatalf("no delivery to %s", w.ID)
	}
	status, outcome, result := 200, models.OutcomeSucceeded, models.StatusSucceeded
	if !ok {
		status, outcome, result = 500, models.OutcomeFailed, models.StatusFailed
	}
	err := s.RecordResults(context.Background(), []models.Result{{DeliveryID: d.ID, WebhookID: w.ID, Status: result, Succeeded: ok,
		Attempt: &models.Attempt{ID: models.NewID("att"), DeliveryID: d.ID, WebhookID: w.ID, Number: 1, StartedAt: at,
			ResponseStatus: &status, Outcome: outcome}}})
	if err != nil {
		t.Fatal(err)
	}
}

// The activity chart has one bucket per clock hour, the last the current one; attempts older
// than a day are out of it, and the last attempt is the latest by time, whatever order the
// records came in. A webhook quiet for days still shows its last attempt.
func TestWebhookActivityCountsAttemptsPerHour(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		s := storetest.Open(t, b.DSN(t))
		ctx := context.Background()
		busy := newWebhook(t, s, "message.received", true)
		quiet := newWebhook(t, s, "conversation.started", true)
		now := time.Date(2026, 11, 26, 9, 40, 0, 0, time.UTC)
		attemptAt(t, s, busy, now.Add(-time.Minute), true)               // this hour
		attemptAt(t, s, busy, now.Add(-50*time.Minute), false)           // the hour before (08:50)
		attemptAt(t, s, busy, now.Add(-45*time.Minute), true)            // 08:55, recorded after the 09:39 one
		attemptAt(t, s, busy, now.Add(-25*time.Hour), true)              // out of the chart
		attemptAt(t, s, busy, now.Add(-23*time.Hour-time.Minute), false) // the first bucket (10:39 yesterday)
		stats, last, err := s.WebhookActivity(ctx, []string{busy.ID, quiet.ID}, now)
		if err != nil {
			t.Fatal(err)
		}
		got := stats[busy.ID]
		if len(got) != 24 {
			t.Fatalf("%d buckets, want 24", len(got))
		}
		want := map[int]models.WebhookStats{23: {Succeeded: 1}, 22: {Succeeded: 1, Failed: 1}, 0: {Failed: 1}}
		for i, b := range got {
			if b != want[i] {
				t.Errorf("bucket %d: %+v, want %+v", i, b, want[i])
			}
		}
		if l := last[busy.ID]; l == nil || !l.At.Equal(now.Add(-time.Minute)) || l.Status != models.OutcomeSucceeded || *l.StatusCode != 200 {
			t.Errorf("last attempt: %+v, want the succeeded one a minute ago", l)
		}
		if last[quiet.ID] != nil {
			t.Errorf("a webhook never attempted has a last attempt: %+v", last[quiet.ID])
		}

		// Three days later nothing is in the chart, but the last attempt still shows.
		later := now.Add(72 * time.Hour)
		stats, last, err = s.WebhookActivity(ctx, []string{busy.ID}, later)
		if err != nil {
			t.Fatal(err)
		}
		for i, b := range stats[busy.ID] {
			if b != (models.WebhookStats{}) {
				t.Errorf("three days later, bucket %d: %+v, want empty", i, b)
			}
		}
		if l := last[busy.ID]; l == nil || !l.At.Equal(now.Add(-time.Minute)) {
			t.Errorf("three days later, last attempt: %+v, want the one a minute before", l)
		}

		// Deleting the webhook takes its activity and attempts with it.
		if err := s.DeleteWebhook(ctx, busy.ID); err != nil {
			t.Fatal(err)
		}
		if _, last, err = s.WebhookActivity(ctx, []string{busy.ID}, now); err != nil || last[busy.ID] != nil {
			t.Errorf("after deleting: last attempt %+v, %v; want none", last[busy.ID], err)
		}
	})
}

// Migration 6 builds the rollup from the attempts already stored: run again here over
// attempts written without it, it gives the same chart.
func TestActivityMigrationRollsUpStoredAttempts(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		dsn := b.DSN(t)
		s := storetest.Open(t, dsn)
		ctx := context.Background()
		w := newWebhook(t, s, "message.received", true)
		now := time.Now().UTC()
		attemptAt(t, s, w, now.Add(-2*time.Hour), false)
		attemptAt(t, s, w, now.Add(-2*time.Hour+time.Minute), true)
		attemptAt(t, s, w, now, true)
		wantStats, wantLast, err := s.WebhookActivity(ctx, []string{w.ID}, now)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{`DROP TABLE webhook_activity`, `CREATE INDEX attempts_webhook_started ON attempts (webhook_id, started_at)`,
			`DELETE FROM schema_migrations WHERE version = 6`} {
			if err := s.W.Exec(q).Error; err != nil {
				t.Fatal(err)
			}
		}
		s2 := storetest.Open(t, dsn)
		stats, last, err := s2.WebhookActivity(ctx, []string{w.ID}, now)
		if err != nil {
			t.Fatal(err)
		}
		for i := range stats[w.ID] {
			if stats[w.ID][i] != wantStats[w.ID][i] {
				t.Errorf("bucket %d after the migration: %+v, want %+v", i, stats[w.ID][i], wantStats[w.ID][i])
			}
		}
		var sum models.WebhookStats
		for _, b := range stats[w.ID] {
			sum.Succeeded += b.Succeeded
			sum.Failed += b.Failed
		}
		if sum != (models.WebhookStats{Succeeded: 2, Failed: 1}) {
			t.Errorf("the chart after the migration holds %+v, want 2 succeeded and 1 failed", sum)
		}
		l, wl := last[w.ID], wantLast[w.ID]
		if l == nil || !l.At.Equal(wl.At) || l.Status != wl.Status || *l.StatusCode != *wl.StatusCode {
			t.Errorf("last attempt after the migration: %+v, want %+v", l, wl)
		}
	})
}

// Replicas record results for the same webhooks at the same time. The rows they all update
// (the webhooks' health and their activity) are taken in one order, so their transactions
// queue instead of deadlocking: PostgreSQL would abort one of them after a second. (On
// SQLite, three stores on one file queue for its lock.)
func TestConcurrentRecordsOfTheSameWebhooksDoNotDeadlock(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		concurrentRecords(t, b.DSN(t))
	})
}

func concurrentRecords(t *testing.T, dsn string) {
	ctx := context.Background()
	s := storetest.Open(t, dsn)
	hooks := []*models.Webhook{newWebhook(t, s, "message.received", true), newWebhook(t, s, "message.received", true),
		newWebhook(t, s, "message.received", true)}
	var all []*models.Delivery
	for range 60 {
		all = append(all, publish(t, s, "message.received", "").Deliveries...)
	}
	const replicas = 3
	errs := make(chan error, replicas)
	for r := range replicas {
		st := storetest.Open(t, dsn) // a pool of its own, as a replica has
		go func() {
			var err error
			for i := r; i < len(all) && err == nil; i += replicas * 6 {
				err = st.RecordResults(ctx, delivered(all[i:min(i+replicas*6, len(all))]...))
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
