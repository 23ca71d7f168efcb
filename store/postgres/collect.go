package postgres

import (
	"fmt"

	"gorm.io/gorm"
)

// Listing what spilled webhooks owe (migration 18).
//
// A publish writes nothing for the spilled webhooks it owes events to. It marks those events
// owed, and every event carries the id of the transaction that wrote it (events.xid, a column
// default). Writing a webhook_owed row per spilled webhook per publish instead was fifty rows
// a publish with fifty endpoints hanging, and the healthy webhooks' publishes waited behind
// them: their publish-to-receipt p50 was 2.9 ms against 2.1 without those rows (isolation
// scenario, docs/performance.md).
//
// A take lists a webhook's owed events in webhook_owed rows first (collectOwed), then leases
// rows as it always did (take.go). It lists the marked events of the webhook's subscription
// from its spill's after_xid up to X, the oldest transaction still running when the listing
// statement began (the xmin of its snapshot), and moves after_xid to X. Every transaction
// below X has ended, so no event can appear below X later: whatever order publishes commit
// in, what one take lists none lists again, and nothing is passed over. Events with a
// delivery row for the webhook are not owed: a publish that had not seen the spill yet wrote
// one, and so does a grant at publish (the lessee).
//
// Takes of one webhook list one at a time: each locks the spill's row, waiting for another
// replica's take that is listing (takes lock spills in webhook id order, so two never wait for
// each other). A take that skipped the locked row would find nothing listed yet, hand out
// nothing, and leave the webhook to wait for the next publish's hint or the engine's rescan a
// second later.
//
// What this gives up: a write transaction that runs long anywhere on the server holds X back,
// and the owed events published since it began wait for it to end before a take lists them.
// They are shown and counted as owed meanwhile (owed_view.go), and retention spares them.

// owedChunk is the most events one listed webhook_owed row holds. Its list is rewritten
// whenever a take splits the row or a record takes events off it; 32 ids (1.2 KB) keep the
// row under the 2 KB past which PostgreSQL compresses or moves a value out of line on every
// write. Paired against 128 (3 rounds), batches went at 18,507 (18,498) deliveries/s against
// 17,641 (17,216).
const owedChunk = 32

// collectSQL lists a spilled webhook's owed events ($1) up to X in rows of at most $2 events,
// and moves after_xid to X, in one statement; it returns how many events it listed (-1 when
// the spill is gone). pg_current_snapshot() is the statement's own snapshot, the one its reads
// see. A take that waited for the spill's row reads the after_xid another take left there,
// and lists from it what its own snapshot shows below its own X, if anything.
const collectSQL = `WITH s AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS x),
sp AS MATERIALIZED (SELECT spill.after_xid, w.events AS types FROM webhook_spills spill
	JOIN webhooks w ON w.id = spill.webhook_id WHERE spill.webhook_id = $1 FOR UPDATE OF spill),
ev AS MATERIALIZED (SELECT e.id, e.created_at, (row_number() OVER (ORDER BY e.id) - 1) / $2 AS chunk
	FROM sp, s, LATERAL (SELECT id, type, created_at FROM events WHERE owed AND xid >= sp.after_xid AND xid < s.x OFFSET 0) e
	WHERE e.type = ANY(string_to_array(sp.types, ','))
	AND NOT $1 = ANY (ARRAY(SELECT d.webhook_id FROM deliveries d WHERE d.event_id = e.id))),
ins AS (INSERT INTO webhook_owed (webhook_id, first_event, events, count, created_at)
	SELECT $1, min(id), string_agg(id, ',' ORDER BY id), count(*), min(created_at) FROM ev GROUP BY chunk),
up AS (UPDATE webhook_spills SET after_xid = s.x FROM s, sp WHERE webhook_spills.webhook_id = $1 AND s.x > sp.after_xid)
SELECT CASE WHEN EXISTS (SELECT 1 FROM sp) THEN (SELECT count(*) FROM ev) ELSE -1 END`

// collectOwed lists the webhook's owed events published since the last listing, in its take's
// transaction; it returns how many it listed, or -1 when the webhook is not spilled.
func collectOwed(tx *gorm.DB, webhookID string) (int64, error) {
	var n int64
	if err := tx.Statement.ConnPool.QueryRowContext(tx.Statement.Context, collectSQL, webhookID, owedChunk).Scan(&n); err != nil {
		return 0, fmt.Errorf("list owed events: %w", err)
	}
	return n, nil
}

// unlistedSQL joins a spill (sp) and its webhook (w) to the events it owes that no
// webhook_owed row lists yet (e).
//
// Here and in collectSQL the statements are written so that no statistics can give them a
// plan that reads more than the events listed: a young table, or one a burst has grown since
// its statistics, makes the planner price a large read low (as with records: hooks.go,
// recordPlan), and a connection keeps the generic plan it settles on. The events are read
// in a subquery that OFFSET 0 keeps the type out of, so the index of owed events by xid is
// the one read; given the type, the planner may combine it with events_type_id, which holds
// every event of the type ever stored. And an event's delivery rows are read by event alone
// (a few, one per webhook at most), then searched for the webhook: given both, the planner
// combined deliveries_event with deliveries_webhook, every row of the webhook read again for
// each event, and listing 2,000 events took 3 s.
const unlistedSQL = ` JOIN LATERAL (SELECT id, type, created_at FROM events WHERE owed AND xid >= sp.after_xid OFFSET 0) e
	ON e.type = ANY(string_to_array(w.events, ','))
	AND NOT sp.webhook_id = ANY (ARRAY(SELECT d.webhook_id FROM deliveries d WHERE d.event_id = e.id))`
