package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

// Pruning cuts attempts and deliveries by their time-ordered ids: finished work newer than
// the cutoff stays, older goes.
func TestPruneKeepsFinishedWorkNewerThanTheCutoff(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		s := storetest.Open(t, b.DSN(t))
		ctx := context.Background()
		w := newWebhook(t, s, "message.received", true)
		p := publish(t, s, "message.received", "")
		got, _ := claimFor(t, s, time.Now(), store.HookSlots{WebhookID: w.ID, Free: 1})
		if len(got) != 1 {
			t.Fatalf("claimed %d", len(got))
		}
		err := s.RecordResults(ctx, []models.Result{{DeliveryID: got[0].ID, WebhookID: w.ID, Status: models.StatusSucceeded,
			Succeeded: true, Attempt: &models.Attempt{ID: models.NewID("att"), DeliveryID: got[0].ID, WebhookID: w.ID,
				Number: 1, StartedAt: time.Now().UTC(), Outcome: models.OutcomeSucceeded}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Prune(ctx, time.Now().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetDelivery(ctx, p.Deliveries[0].ID); err != nil {
			t.Errorf("a delivery from a moment ago was pruned with a cutoff an hour back: %v", err)
		}
		if a, err := s.ListAttempts(ctx, p.Deliveries[0].ID); err != nil || len(a) != 1 {
			t.Errorf("attempts after pruning an hour back: %d, %v; want the 1", len(a), err)
		}
		if _, err := s.Prune(ctx, time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		if a, err := s.ListAttempts(ctx, p.Deliveries[0].ID); err != nil || len(a) != 0 {
			t.Errorf("attempts after pruning past them: %d, %v; want none", len(a), err)
		}
	})
}

// Migration 7 rebuilds attempts without the primary key's index: the attempts stored
// before it are all still listed by their delivery, with every field, and the table is
// left with the one index it is read by.
func TestAttemptsMigrationKeepsStoredAttempts(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		dsn := b.DSN(t)
		s := storetest.Open(t, dsn)
		ctx := context.Background()
		w := newWebhook(t, s, "message.received", true)
		now := time.Now().UTC()
		attemptAt(t, s, w, now.Add(-time.Minute), false)
		attemptAt(t, s, w, now, true)
		deliveries, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{WebhookID: w.ID}, models.Page{Limit: 10})
		if err != nil || len(deliveries) != 2 {
			t.Fatalf("deliveries: %d, %v", len(deliveries), err)
		}
		want := map[string][]*models.Attempt{}
		for _, d := range deliveries {
			if want[d.ID], err = s.ListAttempts(ctx, d.ID); err != nil || len(want[d.ID]) != 1 {
				t.Fatalf("attempts of %s before: %d, %v", d.ID, len(want[d.ID]), err)
			}
		}
		// Back to the table as migration 1 made it, holding the same rows.
		ts := map[string]string{"sqlite": "DATETIME", "postgres": "TIMESTAMPTZ"}[b.Name]
		for _, q := range []string{
			`CREATE TABLE attempts_v1 (id TEXT PRIMARY KEY, delivery_id TEXT NOT NULL, webhook_id TEXT NOT NULL,
				number INTEGER NOT NULL, started_at ` + ts + ` NOT NULL, duration_ms BIGINT NOT NULL,
				request_headers TEXT NOT NULL DEFAULT '', response_status INTEGER, response_headers TEXT NOT NULL DEFAULT '',
				response_body TEXT NOT NULL DEFAULT '', error TEXT, outcome TEXT NOT NULL, test BOOLEAN NOT NULL DEFAULT FALSE)`,
			`INSERT INTO attempts_v1 SELECT * FROM attempts`,
			`DROP TABLE attempts`,
			`ALTER TABLE attempts_v1 RENAME TO attempts`,
			`CREATE INDEX attempts_delivery ON attempts (delivery_id, number)`,
			`DELETE FROM schema_migrations WHERE version = 7`,
		} {
			if err := s.W.Exec(q).Error; err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		s2 := storetest.Open(t, dsn)
		for id, before := range want {
			after, err := s2.ListAttempts(ctx, id)
			if err != nil || len(after) != 1 {
				t.Fatalf("attempts of %s after the migration: %d, %v", id, len(after), err)
			}
			a, w := after[0], before[0]
			if a.ID != w.ID || a.Outcome != w.Outcome || !a.StartedAt.Equal(w.StartedAt) || *a.ResponseStatus != *w.ResponseStatus {
				t.Errorf("attempt after the migration: %+v, want %+v", a, w)
			}
		}
		var indexes int
		q := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'attempts'`
		if b.Name == "postgres" {
			q = `SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'attempts'`
		}
		if err := s2.W.Raw(q).Row().Scan(&indexes); err != nil || indexes != 1 {
			t.Errorf("indexes on attempts after the migration: %d, %v; want only attempts_delivery", indexes, err)
		}
	})
}
