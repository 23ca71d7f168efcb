package postgres_test

import (
	"strings"
	"testing"
)

// A publish with an Idempotency-Key finds the event published with that key before through
// the key's index, which holds only the events that carry a key, and never by reading the
// table, however many events have none (the plan checked is the generic one a connection
// keeps after a few runs).
func TestAnIdempotencyKeyIsLookedUpByItsIndex(t *testing.T) {
	d := openDriver(t)
	exec := execOn(t, d)
	exec(`INSERT INTO events (id, type, payload, occurred_at, created_at, idempotency_key)
		SELECT 'evt_' || lpad(g::text, 8, '0'), 'message.received', '\x7b7d', now(), now(),
			CASE WHEN g % 100 = 0 THEN 'key-' || g END FROM generate_series(1, 5000) g`)
	text := genericPlan(t, d, "key_plan", `PREPARE key_plan(text) AS SELECT id FROM events WHERE idempotency_key = $1 LIMIT 1`,
		`EXPLAIN (COSTS OFF) EXECUTE key_plan('key-300')`)
	if !strings.Contains(text, "events_idempotency_key") || strings.Contains(text, "Seq Scan") {
		t.Errorf("an Idempotency-Key is not looked up by its index:\n%s", text)
	}
	var entries int64
	if err := d.Writer.Raw(`SELECT count(*) FROM events WHERE idempotency_key IS NOT NULL`).Scan(&entries).Error; err != nil || entries != 50 {
		t.Fatalf("%d events with a key (%v), want 50", entries, err)
	}
}
