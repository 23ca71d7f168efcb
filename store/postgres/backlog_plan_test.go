package postgres_test

import (
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/store/postgres"
)

// A publish's look at a backlog reads the listed webhook's pending deliveries by the index of
// due deliveries, and nothing of the webhooks it does not list, whatever the planner believes
// about the tables (never analyzed here; the plan checked is the generic one a connection
// keeps after a few runs).
func TestABacklogLookReadsOnlyTheListedWebhooksPendingRows(t *testing.T) {
	d := openDriver(t)
	exec := execOn(t, d)
	exec(`INSERT INTO webhooks (id, name, url, events, enabled, created_at, updated_at)
		SELECT w, w, 'http://x', 'message.received', true, now(), now() FROM (VALUES ('wh_a'), ('wh_b'), ('wh_c'), ('wh_d')) AS v(w)`)
	exec(`INSERT INTO events (id, type, payload, occurred_at, created_at)
		SELECT 'evt_' || lpad(g::text, 8, '0'), 'message.received', '\x7b7d', now(), now() FROM generate_series(1, 5000) g`)
	exec(`INSERT INTO deliveries (id, event_id, webhook_id, event_type, status, next_attempt_at, created_at, updated_at)
		SELECT 'dlv_' || lpad(g::text, 8, '0') || w, 'evt_' || lpad(g::text, 8, '0'), w, 'message.received',
			CASE WHEN g % 10 = 0 THEN 'pending' ELSE 'succeeded' END, g, now(), now()
		FROM generate_series(1, 5000) g, (VALUES ('wh_a'), ('wh_b'), ('wh_c'), ('wh_d')) AS v(w)`)

	text := genericPlan(t, d, "backlog_plan", `PREPARE backlog_plan(text[], bigint, int) AS `+postgres.WebhooksAndBacklogsSQL,
		`EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE backlog_plan('{wh_b}', 1000, 256)`)
	if !strings.Contains(text, "deliveries_webhook_due") || strings.Contains(text, "Seq Scan on deliveries") ||
		!strings.Contains(text, "One-Time Filter") {
		t.Errorf("the look does not read the listed webhook's pending rows by the due index alone:\n%s", text)
	}

	// And it counts them: wh_b has 500 pending, 100 of them due before 1000; at most 256 counted.
	rows, err := d.Writer.Raw(postgres.WebhooksAndBacklogsSQL, []string{"wh_b"}, 1000, 256).Rows()
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, events string
		var spilled bool
		var pending, due int
		var gen int64
		if err := rows.Scan(&id, &events, &spilled, &pending, &due, &gen); err != nil {
			t.Fatal(err)
		}
		want := [2]int{}
		if id == "wh_b" {
			want = [2]int{256, 100}
		}
		if [2]int{pending, due} != want {
			t.Errorf("webhook %s: %d pending, %d due; want %v", id, pending, due, want)
		}
	}
}
