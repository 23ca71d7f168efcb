package postgres_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/store/postgres"
)

// Listing a spilled webhook's owed events reads those events and each one's few delivery
// rows, whatever the planner believes about the tables. On tables not analyzed yet, the
// planner combined the index of deliveries by event with the one by webhook, and read every
// delivery of the webhook again for each owed event: 2,000 events took 3 s to list. The plans checked are the generic ones a
// connection keeps after a few runs.
func TestListingOwedEventsReadsOnlyTheirRowsWhateverTheStatisticsSay(t *testing.T) {
	d := openDriver(t)
	exec := execOn(t, d)
	exec(`INSERT INTO webhooks (id, name, url, events, enabled, created_at, updated_at)
		VALUES ('wh_x', 'x', 'http://x', 'message.received', true, now(), now())`)
	fill := func(from, to int) {
		exec(`INSERT INTO events (id, type, payload, occurred_at, created_at, owed)
			SELECT 'evt_' || lpad(g::text, 8, '0'), 'message.received', '\x7b7d', now(), now(), true
			FROM generate_series(CAST(? AS int), CAST(? AS int)) g`, from, to)
		exec(`INSERT INTO deliveries (id, event_id, webhook_id, event_type, status, next_attempt_at, created_at, updated_at)
			SELECT 'dlv_' || lpad(g::text, 8, '0') || w, 'evt_' || lpad(g::text, 8, '0'), w, 'message.received', 'succeeded', 0, now(), now()
			FROM generate_series(CAST(? AS int), CAST(? AS int)) g, (VALUES ('wh_x'), ('wh_y')) AS v(w)`, from, to)
	}
	fill(1, 20000) // never analyzed, as in the first minutes of a database
	exec(`INSERT INTO webhook_spills (webhook_id, after_seq, since, after_xid) VALUES ('wh_x', 0, now(), '1')`)

	plans := map[string]string{
		"listing": `PREPARE owed_plan(text, bigint) AS ` + postgres.CollectSQL,
		"counting": `PREPARE owed_plan(text, bigint) AS SELECT count(*) FROM webhook_spills sp
			JOIN webhooks w ON w.id = sp.webhook_id` + postgres.UnlistedSQL + ` WHERE sp.webhook_id = $1 AND $2 > 0`,
	}
	// Priced on tables not analyzed yet, these plans pass jit_above_cost; compiling one took
	// 15–20 ms of a take that listed nothing.
	var jit string
	if err := d.Writer.Raw(`SELECT current_setting('jit')`).Scan(&jit).Error; err != nil || jit != "off" {
		t.Errorf("jit is %q (%v) on the driver's connections, want off", jit, err)
	}
	for name, prepare := range plans {
		text := genericPlan(t, d, "owed_plan", prepare, fmt.Sprintf(`EXPLAIN EXECUTE owed_plan('wh_x', %d)`, postgres.OwedChunk))
		if !strings.Contains(text, "events_owed_xid") || !strings.Contains(text, "deliveries_event") ||
			strings.Contains(text, "deliveries_webhook") || strings.Contains(text, "Seq Scan on events") ||
			strings.Contains(text, "Seq Scan on deliveries") {
			t.Errorf("the %s plan does not read owed events by xid and their rows by event:\n%s", name, text)
		}
	}
}
