package sqlcommon

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Migrations are versioned SQL, applied in order, each once, inside a transaction, and
// recorded in schema_migrations. AutoMigrate cannot rename or backfill, and the queue needs
// partial indexes it does not create; plain SQL with a tiny type mapping per database (Hooks.SchemaSQL) keeps
// SQLite and PostgreSQL on one schema history.
type migration struct {
	version int
	name    string
	sql     string
}

var migrations = []migration{
	{1, "initial schema", `
CREATE TABLE webhooks (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	url TEXT NOT NULL,
	secret TEXT NOT NULL DEFAULT '',
	prev_secret TEXT NOT NULL DEFAULT '',
	prev_secret_until {{ts}},
	events TEXT NOT NULL,
	format TEXT NOT NULL DEFAULT 'json',
	enabled BOOLEAN NOT NULL,
	disabled_reason TEXT NOT NULL DEFAULT '',
	last_success_at {{ts}},
	failing_since {{ts}},
	created_at {{ts}} NOT NULL,
	updated_at {{ts}} NOT NULL
);
CREATE TABLE events (
	id TEXT PRIMARY KEY,
	type TEXT NOT NULL,
	payload {{blob}} NOT NULL,
	occurred_at {{ts}} NOT NULL,
	idempotency_key TEXT,
	request_hash TEXT NOT NULL DEFAULT '',
	test BOOLEAN NOT NULL DEFAULT FALSE,
	delivery_count INTEGER NOT NULL DEFAULT 0,
	created_at {{ts}} NOT NULL
);
CREATE UNIQUE INDEX events_idempotency_key ON events (idempotency_key);
CREATE INDEX events_type_id ON events (type, id);
CREATE INDEX events_created_at ON events (created_at);
CREATE TABLE deliveries (
	id TEXT PRIMARY KEY,
	event_id TEXT NOT NULL,
	webhook_id TEXT NOT NULL,
	event_type TEXT NOT NULL,
	status TEXT NOT NULL,
	attempt_count INTEGER NOT NULL DEFAULT 0,
	next_attempt_at BIGINT NOT NULL DEFAULT 0,
	locked_until BIGINT NOT NULL DEFAULT 0,
	locked_by TEXT NOT NULL DEFAULT '',
	last_status_code INTEGER,
	last_error TEXT,
	test BOOLEAN NOT NULL DEFAULT FALSE,
	created_at {{ts}} NOT NULL,
	updated_at {{ts}} NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, id);
CREATE INDEX deliveries_event ON deliveries (event_id);
CREATE INDEX deliveries_created_at ON deliveries (created_at);
CREATE TABLE attempts (
	id TEXT PRIMARY KEY,
	delivery_id TEXT NOT NULL,
	webhook_id TEXT NOT NULL,
	number INTEGER NOT NULL,
	started_at {{ts}} NOT NULL,
	duration_ms BIGINT NOT NULL,
	request_headers TEXT NOT NULL DEFAULT '',
	response_status INTEGER,
	response_headers TEXT NOT NULL DEFAULT '',
	response_body TEXT NOT NULL DEFAULT '',
	error TEXT,
	outcome TEXT NOT NULL,
	test BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX attempts_delivery ON attempts (delivery_id, number);
CREATE INDEX attempts_webhook_started ON attempts (webhook_id, started_at);
CREATE INDEX attempts_started ON attempts (started_at);
CREATE TABLE api_keys (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	prefix TEXT NOT NULL,
	hash TEXT NOT NULL UNIQUE,
	created_at {{ts}} NOT NULL,
	last_used_at {{ts}}
);
CREATE TABLE sessions (
	id TEXT PRIMARY KEY,
	hash TEXT NOT NULL UNIQUE,
	created_at {{ts}} NOT NULL,
	expires_at {{ts}} NOT NULL
);
CREATE TABLE settings (
	key TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
`},
	{2, "inspector bins and captures", `
CREATE TABLE bins (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL DEFAULT '',
	secret TEXT NOT NULL DEFAULT '',
	webhook_id TEXT NOT NULL DEFAULT '',
	response_status INTEGER NOT NULL DEFAULT 200,
	response_body TEXT NOT NULL DEFAULT '',
	response_content_type TEXT NOT NULL DEFAULT '',
	response_delay_ms INTEGER NOT NULL DEFAULT 0,
	created_at {{ts}} NOT NULL,
	updated_at {{ts}} NOT NULL
);
CREATE INDEX bins_webhook ON bins (webhook_id);
CREATE TABLE captures (
	id TEXT PRIMARY KEY,
	bin_id TEXT NOT NULL,
	method TEXT NOT NULL,
	path TEXT NOT NULL,
	query TEXT NOT NULL DEFAULT '',
	headers TEXT NOT NULL,
	body {{blob}} NOT NULL,
	size BIGINT NOT NULL,
	remote_addr TEXT NOT NULL DEFAULT '',
	received_at {{ts}} NOT NULL,
	verdicts TEXT NOT NULL,
	rejected TEXT NOT NULL DEFAULT ''
);
CREATE INDEX captures_bin ON captures (bin_id, id);
`},
	// A session remembers the credential it was opened with, so revoking an API key (or
	// changing the admin token) also ends the browser sessions it opened.
	{3, "session credential", `
ALTER TABLE sessions ADD COLUMN credential TEXT NOT NULL DEFAULT '';
CREATE INDEX sessions_credential ON sessions (credential);
`},
	// The dispatcher claims per webhook (ClaimFor): a webhook's due deliveries are one range
	// of this index, so a saturated webhook's backlog is never walked to reach another's
	// (status is a column too, so the claim reads the index alone). It replaces the queue's
	// global due-order index. Pruning cuts attempts and deliveries by
	// their time-ordered ids, so the two time indexes it used go too: every index here costs
	// a B-tree write per delivery or attempt, the bulk of the work of the hot path.
	{4, "per-webhook queue index", `
CREATE INDEX deliveries_webhook_due ON deliveries (webhook_id, next_attempt_at, status) WHERE status = 'pending';
DROP INDEX deliveries_due;
DROP INDEX attempts_started;
DROP INDEX deliveries_created_at;
`},
	// A spilled webhook owes the events after after_seq (an events rowid) that match its
	// subscription, without a delivery row for each yet: see the SQLite driver's spill.go. PostgreSQL spills too, with webhook_owed (migration 15); the table exists on both so the
	// schema history stays one.
	{5, "webhook spills", `
CREATE TABLE webhook_spills (
	webhook_id TEXT PRIMARY KEY,
	after_seq BIGINT NOT NULL,
	since {{ts}} NOT NULL
);
`},
	// A webhook's activity chart (attempt outcomes per hour) and last attempt come from a
	// rollup kept per webhook and hour, written once per recorded batch, instead of an index
	// on attempts: that index cost a B-tree write per attempt, about an eighth of recording.
	{6, "webhook activity rollup", `
CREATE TABLE webhook_activity (
	webhook_id TEXT NOT NULL,
	hour BIGINT NOT NULL,
	succeeded BIGINT NOT NULL DEFAULT 0,
	failed BIGINT NOT NULL DEFAULT 0,
	last_at {{ts}} NOT NULL,
	last_outcome TEXT NOT NULL DEFAULT '',
	last_status INTEGER,
	PRIMARY KEY (webhook_id, hour)
);
INSERT INTO webhook_activity (webhook_id, hour, succeeded, failed, last_at)
	SELECT webhook_id, {{hour started_at}},
		SUM(CASE WHEN outcome = 'succeeded' THEN 1 ELSE 0 END), SUM(CASE WHEN outcome = 'succeeded' THEN 0 ELSE 1 END),
		MAX(started_at)
	FROM attempts GROUP BY webhook_id, {{hour started_at}};
UPDATE webhook_activity SET
	last_outcome = COALESCE((SELECT a.outcome FROM attempts a
		WHERE a.webhook_id = webhook_activity.webhook_id AND a.started_at = webhook_activity.last_at LIMIT 1), ''),
	last_status = (SELECT a.response_status FROM attempts a
		WHERE a.webhook_id = webhook_activity.webhook_id AND a.started_at = webhook_activity.last_at LIMIT 1);
DROP INDEX attempts_webhook_started;
`},
	// Attempts are read only by their delivery (attempts_delivery) and pruned with it, never
	// looked up by id, so the primary key's own index was one more B-tree write per attempt
	// for nothing: about a tenth of taking and recording a spilled delivery. The table is
	// rebuilt without it (ids stay unique: they are UUIDv7).
	{7, "attempts without a primary-key index", `
CREATE TABLE attempts_v7 (
	id TEXT NOT NULL,
	delivery_id TEXT NOT NULL,
	webhook_id TEXT NOT NULL,
	number INTEGER NOT NULL,
	started_at {{ts}} NOT NULL,
	duration_ms BIGINT NOT NULL,
	request_headers TEXT NOT NULL DEFAULT '',
	response_status INTEGER,
	response_headers TEXT NOT NULL DEFAULT '',
	response_body TEXT NOT NULL DEFAULT '',
	error TEXT,
	outcome TEXT NOT NULL,
	test BOOLEAN NOT NULL DEFAULT FALSE
);
INSERT INTO attempts_v7 (id, delivery_id, webhook_id, number, started_at, duration_ms, request_headers,
		response_status, response_headers, response_body, error, outcome, test)
	SELECT id, delivery_id, webhook_id, number, started_at, duration_ms, request_headers,
		response_status, response_headers, response_body, error, outcome, test
	FROM attempts ORDER BY id;
DROP TABLE attempts;
ALTER TABLE attempts_v7 RENAME TO attempts;
CREATE INDEX attempts_delivery ON attempts (delivery_id, number);
`},
	{8, "replay jobs", `
CREATE TABLE replay_jobs (
	id TEXT PRIMARY KEY,
	webhook_id TEXT NOT NULL,
	types TEXT NOT NULL,
	since {{ts}} NOT NULL,
	until {{ts}} NOT NULL,
	only_failed BOOLEAN NOT NULL DEFAULT FALSE,
	after_event TEXT NOT NULL DEFAULT '',
	total BIGINT NOT NULL,
	queued BIGINT NOT NULL DEFAULT 0,
	status TEXT NOT NULL,
	error TEXT NOT NULL DEFAULT '',
	created_at {{ts}} NOT NULL,
	updated_at {{ts}} NOT NULL,
	finished_at {{ts}}
);
CREATE INDEX replay_jobs_webhook ON replay_jobs (webhook_id, id);
CREATE INDEX replay_jobs_status ON replay_jobs (status);
`},
	// A secret rotation in two steps: the next secret, when it was made, and when it takes
	// effect (NULL until an admin activates it). Signing compares next_secret_from with the
	// clock, so a scheduled activation needs no job and happens on every replica at once.
	{9, "pending secret rotation", `
ALTER TABLE webhooks ADD COLUMN next_secret TEXT NOT NULL DEFAULT '';
ALTER TABLE webhooks ADD COLUMN next_secret_since {{ts}};
ALTER TABLE webhooks ADD COLUMN next_secret_from {{ts}};
`},
	// An attempt keeps the body format it was sent in: its body is rebuilt from the event's
	// stored body (delivery.BodyFor), so the attempt row stays small on the hot path and still
	// shows the bytes sent after the webhook's format changed.
	{10, "attempt body format", `
ALTER TABLE attempts ADD COLUMN format TEXT NOT NULL DEFAULT '';
`},
	// A delivery queued by a replay job names it.
	{11, "delivery replay marker", `
ALTER TABLE deliveries ADD COLUMN replay_id TEXT NOT NULL DEFAULT '';
`},
	// The hourly rollup counts the test action apart from deliveries' attempts; the test
	// requests it already counted are moved over.
	{12, "activity counts tests apart", `
ALTER TABLE webhook_activity ADD COLUMN tests_succeeded BIGINT NOT NULL DEFAULT 0;
ALTER TABLE webhook_activity ADD COLUMN tests_failed BIGINT NOT NULL DEFAULT 0;
UPDATE webhook_activity SET tests_succeeded = t.ok, tests_failed = t.bad,
		succeeded = webhook_activity.succeeded - t.ok, failed = webhook_activity.failed - t.bad
	FROM (SELECT webhook_id, {{hour started_at}} AS hour,
			SUM(CASE WHEN outcome = 'succeeded' THEN 1 ELSE 0 END) AS ok,
			SUM(CASE WHEN outcome = 'succeeded' THEN 0 ELSE 1 END) AS bad
		FROM attempts WHERE test = TRUE GROUP BY webhook_id, {{hour started_at}}) AS t
	WHERE t.webhook_id = webhook_activity.webhook_id AND t.hour = webhook_activity.hour;
`},
	// A capture keeps the status its bin answered with.
	{13, "capture answer status", `
ALTER TABLE captures ADD COLUMN answered INTEGER NOT NULL DEFAULT 0;
`},
	// Tracing: an event keeps the W3C traceparent of its enqueue span, so attempts made after
	// a retry delay or a restart (or by another replica) continue the publish's trace; a
	// webhook says whether its receivers get that context.
	{14, "trace context", `
ALTER TABLE events ADD COLUMN trace_parent TEXT NULL;
ALTER TABLE webhooks ADD COLUMN trace_context BOOLEAN NOT NULL DEFAULT FALSE;
`},
	// What a spilled webhook owes on PostgreSQL, where concurrent writers commit out of id
	// order and a position in the events table (webhook_spills.after_seq, SQLite's way)
	// cannot say what is owed: each publish adds one row per spilled webhook listing the
	// events it owes (comma-separated ids, in publish order; count of them), so a dead
	// endpoint costs a row per publish, not per event. Takes lease them (migration 16,
	// store/postgres/spill.go). SQLite leaves it empty; it exists on both so the schema
	// history stays one.
	{15, "webhook owed events", `
CREATE TABLE webhook_owed (
	webhook_id TEXT NOT NULL,
	first_event TEXT NOT NULL,
	events TEXT NOT NULL,
	count INTEGER NOT NULL,
	created_at {{ts}} NOT NULL,
	PRIMARY KEY (webhook_id, first_event)
);
`},
	// A take leases the webhook_owed rows it hands out instead of turning them into leased
	// delivery rows: each delivery's row is then written once, by the record of its attempt,
	// which also removes its event from the owed row (store/postgres/spill.go). A row whose
	// lease ran out is taken again; locked_by stays set after a release, so that take knows to
	// look for rows a late record wrote.
	{16, "owed event leases", `
ALTER TABLE webhook_owed ADD COLUMN locked_until BIGINT NOT NULL DEFAULT 0;
ALTER TABLE webhook_owed ADD COLUMN locked_by TEXT NOT NULL DEFAULT ''
`},
	// Captures are keyed by bin and id: every read and delete of them names the bin, so the
	// (bin_id, id) index was the one they used and the primary key on id alone only enforced
	// ids that are random anyway. Each capture then writes one B-tree fewer (on SQLite, two
	// instead of three: the table and its key; docs/performance.md, section b17083f). SQLite
	// cannot drop a primary key in place, so the table is rebuilt, the same way on both.
	{17, "captures keyed by bin", `
DROP INDEX captures_bin;
CREATE TABLE captures_by_bin (
	id TEXT NOT NULL,
	bin_id TEXT NOT NULL,
	method TEXT NOT NULL,
	path TEXT NOT NULL,
	query TEXT NOT NULL DEFAULT '',
	headers TEXT NOT NULL,
	body {{blob}} NOT NULL,
	size BIGINT NOT NULL,
	remote_addr TEXT NOT NULL DEFAULT '',
	received_at {{ts}} NOT NULL,
	verdicts TEXT NOT NULL,
	rejected TEXT NOT NULL DEFAULT '',
	answered INTEGER NOT NULL DEFAULT 0,
	CONSTRAINT captures_bin PRIMARY KEY (bin_id, id)
);
INSERT INTO captures_by_bin (id, bin_id, method, path, query, headers, body, size, remote_addr,
		received_at, verdicts, rejected, answered)
	SELECT id, bin_id, method, path, query, headers, body, size, remote_addr,
		received_at, verdicts, rejected, answered FROM captures;
DROP TABLE captures;
ALTER TABLE captures_by_bin RENAME TO captures
`},
	// PostgreSQL: a publish no longer lists what it owes each spilled webhook in a row of
	// webhook_owed (fifty rows a publish with fifty endpoints hanging). It marks the events it
	// owes (owed), which carry the id of the transaction that wrote them (xid, with the spill's
	// after_xid); a take lists in webhook_owed the owed events of transactions that have all
	// ended, from after_xid on (store/postgres/collect.go). SQLite's spill position needs
	// neither: there the migration is empty.
	{18, "owed events marked", `{{owed marks}}`},
	// PostgreSQL: a generation of the webhooks as a publish sees them (which exist, which are
	// enabled, what they subscribe to, which are spilled), one more with every change, so that
	// a publish can use the webhooks it read before while the generation holds
	// (store/postgres/publish_cache.go). Triggers count the changes, whoever makes them: every
	// replica, and anyone changing the tables by hand. SQLite keeps its webhooks in memory
	// behind its one writer and needs none: there the migration is empty.
	{19, "webhook generation", `{{webhook generation}}`},
	// PostgreSQL: what a publish without a transaction runs first in its one statement: the
	// shared locks of the spills it owes events to, then the generation, read after them
	// (store/postgres/publish_cache.go). SQLite: empty.
	{20, "publish locks", `{{publish locks}}`},
	// Events are pruned and replayed by their time-ordered ids, as deliveries are (migration
	// 4), and only events that carry an Idempotency-Key are in that key's unique index: an
	// event published without a key gets two index entries where it got four (SQLite, and
	// PostgreSQL but for an owed event's entry by xid).
	{21, "event indexes", `
DROP INDEX events_created_at;
DROP INDEX events_idempotency_key;
CREATE UNIQUE INDEX events_idempotency_key ON events (idempotency_key) WHERE idempotency_key IS NOT NULL;
`},
}

// Migrate brings the schema up to date: each migration not yet recorded in
// schema_migrations runs once, in a transaction of its own.
func (s *Base) Migrate(ctx context.Context) error {
	db := s.Writer.WithContext(ctx)
	if err := db.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`).Error; err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	unlock, err := s.hooks.LockMigrations(db)
	if err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	defer unlock()
	for _, m := range migrations {
		var n int64
		if err := db.Raw(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n).Error; err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		if n > 0 {
			continue
		}
		err := db.Transaction(func(tx *gorm.DB) error {
			for _, stmt := range splitStatements(s.hooks.SchemaSQL(m.sql)) {
				if strings.TrimSpace(stmt) == "" {
					continue
				}
				if err := tx.Exec(stmt).Error; err != nil {
					return fmt.Errorf("%s: %w", strings.TrimSpace(stmt), err)
				}
			}
			return tx.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, m.name, time.Now().UTC().Format(time.RFC3339)).Error
		})
		if err != nil {
			return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
	}
	return nil
}

// splitStatements splits a migration at its semicolons, but for those inside a $$-quoted
// body (a function's).
func splitStatements(sql string) []string {
	var out []string
	quoted, from := false, 0
	for i := 0; i < len(sql); i++ {
		switch {
		case strings.HasPrefix(sql[i:], "$$"):
			quoted = !quoted
			i++
		case sql[i] == ';' && !quoted:
			out = append(out, sql[from:i])
			from = i + 1
		}
	}
	return append(out, sql[from:])
}
