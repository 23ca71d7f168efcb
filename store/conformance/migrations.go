package conformance

import (
	"context"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

func testMigrationsApplyOnceAndReopen(t *testing.T, b Backend) {
	dsn := b.DSN(t)
	s1 := b.Open(t, dsn)
	NewWebhook(t, s1, "message.received", true)
	if err := s1.Close(); err != nil { // a restart (a SQLite file serves one process at a time)
		t.Fatal(err)
	}
	s2 := b.Open(t, dsn) // the second open migrates nothing
	list, _, err := s2.ListWebhooks(context.Background(), models.Page{Limit: 10})
	if err != nil || len(list) != 1 {
		t.Fatalf("after reopen: %d webhooks, err %v", len(list), err)
	}
}

// Migration 6 builds the rollup from the attempts already stored: run again here over
// attempts written without it, it gives the same chart.
func testActivityMigrationRollsUpStoredAttempts(t *testing.T, b Backend) {
	dsn := b.DSN(t)
	s := b.Open(t, dsn)
	ctx := context.Background()
	w := NewWebhook(t, s, "message.received", true)
	now := time.Now().UTC()
	AttemptAt(t, s, w, now.Add(-2*time.Hour), false)
	AttemptAt(t, s, w, now.Add(-2*time.Hour+time.Minute), true)
	AttemptAt(t, s, w, now, true)
	wantStats, wantLast, err := s.WebhookActivity(ctx, []string{w.ID}, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DROP TABLE webhook_activity`, `CREATE INDEX attempts_webhook_started ON attempts (webhook_id, started_at)`,
		`DELETE FROM schema_migrations WHERE version IN (6, 12)`} {
		if err := s.ExecSQL(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil { // the restart that runs the migration again
		t.Fatal(err)
	}
	s2 := b.Open(t, dsn)
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
}

// Migration 7 rebuilds attempts without the primary key's index: the attempts stored
// before it are all still listed by their delivery, with every field, and the table is
// left with the one index it is read by.
func testAttemptsMigrationKeepsStoredAttempts(t *testing.T, b Backend) {
	dsn := b.DSN(t)
	s := b.Open(t, dsn)
	ctx := context.Background()
	w := NewWebhook(t, s, "message.received", true)
	now := time.Now().UTC()
	AttemptAt(t, s, w, now.Add(-time.Minute), false)
	AttemptAt(t, s, w, now, true)
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
		`INSERT INTO attempts_v1 SELECT id, delivery_id, webhook_id, number, started_at, duration_ms, request_headers,
			response_status, response_headers, response_body, error, outcome, test FROM attempts`,
		`DROP TABLE attempts`,
		`ALTER TABLE attempts_v1 RENAME TO attempts`,
		`CREATE INDEX attempts_delivery ON attempts (delivery_id, number)`,
		`DELETE FROM schema_migrations WHERE version IN (7, 10)`, // 10 adds a column to the table 7 makes
	} {
		if err := s.ExecSQL(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := s.Close(); err != nil { // the restart that runs the migration again
		t.Fatal(err)
	}
	s2 := b.Open(t, dsn)
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
	if err := s2.ScanSQL(context.Background(), &indexes, q); err != nil || indexes != 1 {
		t.Errorf("indexes on attempts after the migration: %d, %v; want only attempts_delivery", indexes, err)
	}
}
