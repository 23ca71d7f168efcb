package postgres

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store/internal/sqlcommon"
	"github.com/hookrelay/hookrelay/store/storedriver"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// hooks are PostgreSQL's parts of the shared statements (sqlcommon.Hooks). A type of its
// own, so they are not methods of Driver that Hookrelay could call.
type hooks struct{ d *Driver }

var _ sqlcommon.Hooks = hooks{}

var schemaTypes = strings.NewReplacer("{{ts}}", "TIMESTAMPTZ", "{{blob}}", "BYTEA",
	"{{hour started_at}}", "CAST(floor(extract(epoch FROM started_at) / 3600) AS BIGINT)",
	"{{owed marks}}", owedMarksSQL, "{{webhook generation}}", webhookGenerationSQL,
	"{{publish locks}}", publishLocksSQL)

// owedMarksSQL is migration 18 (collect.go). The events already stored keep a NULL xid: none
// of them is marked owed. A spill's after_xid defaults to the xid of the transaction that
// starts it, and the spills already there get the migration's.
const owedMarksSQL = `
ALTER TABLE events ADD COLUMN owed BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE events ADD COLUMN xid xid8;
ALTER TABLE events ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
CREATE INDEX events_owed_xid ON events (xid) WHERE owed;
ALTER TABLE webhook_spills ADD COLUMN after_xid xid8 NOT NULL DEFAULT pg_current_xact_id()
`

// webhookGenerationSQL is migration 19 (publish_cache.go). The triggers are deferred to the
// commit: the generation's one row is then locked only while a change commits, not for the
// rest of a transaction that starts a spill. The function names the table by the schema of
// the table changed, so that a session with another search_path changes the right one.
const webhookGenerationSQL = `
CREATE TABLE webhook_generation (n BIGINT NOT NULL);
INSERT INTO webhook_generation (n) VALUES (1);
CREATE FUNCTION hookrelay_webhooks_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('UPDATE %I.webhook_generation SET n = n + 1', TG_TABLE_SCHEMA);
	RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER webhooks_added_or_removed AFTER INSERT OR DELETE ON webhooks
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hookrelay_webhooks_changed();
CREATE CONSTRAINT TRIGGER webhooks_subscription_changed AFTER UPDATE OF enabled, events ON webhooks
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
	WHEN (OLD.enabled IS DISTINCT FROM NEW.enabled OR OLD.events IS DISTINCT FROM NEW.events)
	EXECUTE FUNCTION hookrelay_webhooks_changed();
CREATE CONSTRAINT TRIGGER spills_started_or_ended AFTER INSERT OR DELETE ON webhook_spills
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hookrelay_webhooks_changed()
`

// publishLocksSQL is migration 20 (publish_cache.go). The function is volatile, so its
// read of the generation takes a snapshot of its own, after the locks: one taken with the
// statement that calls it, before them, could miss a spill that ended while they waited.
// Its search_path is the one it was made with, where the table is.
const publishLocksSQL = `
CREATE FUNCTION hookrelay_publish_generation(class integer, spills text[]) RETURNS bigint
	LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $$
BEGIN
	PERFORM pg_advisory_xact_lock_shared(class, hashtext(k)) FROM unnest(spills) AS u(k);
	RETURN COALESCE((SELECT max(n) FROM webhook_generation), 0);
END
$$
`

func (hooks) SchemaSQL(q string) string { return schemaTypes.Replace(q) }

// IDsIn binds the list as one array (idlist.go).
func (hooks) IDsIn(col string, ids []string) (string, any) {
	return col + " = ANY(CAST(? AS text[]))", textArray(ids)
}

// migrationLock is the advisory lock held while migrating.
const migrationLock = 727274

// LockMigrations keeps replicas starting together from running the same migration twice.
func (hooks) LockMigrations(db *gorm.DB) (func(), error) {
	if err := db.Exec(`SELECT pg_advisory_lock(?)`, migrationLock).Error; err != nil {
		return nil, err
	}
	return func() { db.Exec(`SELECT pg_advisory_unlock(?)`, migrationLock) }, nil
}

func (hooks) IsUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

func (hooks) InsertRows(tx *gorm.DB, table string, cols []string, n int, rowArgs func(i int, args []any) []any) error {
	return insertRows(tx, table, cols, n, rowArgs)
}

// RunPublish: see publish_cache.go.
func (h hooks) RunPublish(db *gorm.DB, publish func(tx *gorm.DB) error) error {
	return h.d.runPublish(db, publish)
}

func (h hooks) InsertPublished(tx *gorm.DB, begun sqlcommon.PublishStart, events, deliveries sqlcommon.Rows) error {
	return h.d.insertPublished(tx, begun, events, deliveries)
}

// InsertAttempts takes a batch's attempts in one array insert (grouping them by what they
// share, as SQLite does, measured slower here), and the activity they add in the same
// statement (a data-modifying WITH), where the activity was a statement of its own in every
// record.
func (hooks) InsertAttempts(tx *gorm.DB, attempts []*models.Attempt, activity sqlcommon.Rows) error {
	return insertRowSets(tx, []sqlcommon.Rows{{Table: "attempts", Cols: sqlcommon.AttemptColumns, N: len(attempts),
		Row: func(i int, args []any) []any {
			return sqlcommon.AppendOwnArgs(attempts[i], sqlcommon.GroupOf(attempts[i]).AppendArgs(args))
		}}, activity})
}

// JSONSource reads the rows as jsonb, parsed once: on json, each ->> parses its element's text
// again, seven times a row in the record of results (a count over 300 rows of seven columns,
// EXPLAIN ANALYZE: 0.97 ms as json, 0.29 ms as jsonb).
func (hooks) JSONSource() string { return `jsonb_array_elements(CAST(? AS JSONB)) AS j(value)` }

// JSONCol casts the column's text to sqlType: ->> yields text.
func (hooks) JSONCol(i int, sqlType string) string {
	col := "j.value->>" + strconv.Itoa(i)
	if sqlType != "text" {
		return "CAST(" + col + " AS " + sqlType + ")"
	}
	return col
}

func (h hooks) BeginPublish(tx *gorm.DB, events int) (sqlcommon.PublishStart, error) {
	return h.d.beginPublish(tx, events)
}

func (h hooks) WritingRows(ds []*models.Delivery) func() { return h.d.spills.Underway(ds) }

func (h hooks) WroteRows(ds []*models.Delivery) { h.d.spills.WroteRows(ds) }

// MarksOwed is true: a take finds the events owed by their mark (collect.go).
func (hooks) MarksOwed() bool { return true }

// Published wakes the other replicas' dispatchers so they share the work, naming the webhooks
// so they need not scan for it (waker.go).
func (h hooks) Published(due map[string]int64, owedOnly map[string]bool) {
	h.d.waker.add(due, owedOnly)
}

// LockForChange locks the rows read (FOR UPDATE): writers run concurrently here.
func (hooks) LockForChange(q *gorm.DB) *gorm.DB {
	return q.Clauses(clause.Locking{Strength: "UPDATE"})
}

// SubscribersChanged has no cache to invalidate.
func (hooks) SubscribersChanged() {}

// BinDeleted has nothing to forget: a capture's statement checks its bins (capture.go), as
// another replica may delete them.
func (hooks) BinDeleted(string) {}

func (hooks) DropSpill(tx *gorm.DB, webhookID string) error { return dropSpill(tx, webhookID) }

// KeepOwed spares the events listed in webhook_owed and those marked owed since a spill's
// after_xid, not listed yet (collect.go).
func (hooks) KeepOwed() string {
	return ` AND id NOT IN (SELECT unnest(string_to_array(o.events, ',')) FROM webhook_owed o)
		AND NOT (owed AND EXISTS (SELECT 1 FROM webhook_spills sp WHERE events.xid >= sp.after_xid))`
}

func (h hooks) GetOwed(ctx context.Context, id string) (*models.Delivery, error) {
	return h.d.getOwed(ctx, id)
}

func (h hooks) ListOwed(ctx context.Context, f storedriver.DeliveryFilter, cursor string, limit int) ([]*models.Delivery, error) {
	return h.d.listOwed(ctx, f, cursor, limit)
}

func (hooks) SkipOwed(q *gorm.DB, webhookID string) *gorm.DB {
	return q.Where(`events.id NOT IN (SELECT unnest(string_to_array(o.events, ',')) FROM webhook_owed o WHERE o.webhook_id = ?)`, webhookID).
		Where(`NOT (events.owed AND EXISTS (SELECT 1 FROM webhook_spills sp WHERE sp.webhook_id = ? AND events.xid >= sp.after_xid
			AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id AND d.webhook_id = sp.webhook_id)))`, webhookID)
}

// Leased is false: leases are in the table, which RequeueDelivery's update checks.
func (hooks) Leased(string, int64) bool { return false }

func (h hooks) Claim(ctx context.Context, r storedriver.ClaimForRequest, hs []storedriver.WebhookQuota) ([]*models.Delivery, []string, map[string]int64, error) {
	return h.d.claim(ctx, r, hs)
}

func (hooks) Rescanning() {}

// BeginRecord locks the batch's rows in id order. Two replicas can record the same delivery
// (a lease that expired while its attempt was out); in one order, their transactions cannot
// take the same rows in opposite orders and deadlock.
func (hooks) BeginRecord(tx *gorm.DB, results []models.Result) error {
	ids := make([]string, 0, len(results))
	for _, r := range results {
		if r.Owed == nil { // a taken delivery has no row yet (owed_record.go)
			ids = append(ids, r.DeliveryID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	return tx.Exec(lockRecordedSQL, textArray(slices.Compact(ids))).Error
}

// lockRecordedSQL locks the rows a record transaction is about to write, in id order.
const lockRecordedSQL = `SELECT 1 FROM deliveries WHERE id = ANY(CAST(? AS text[])) ORDER BY id FOR UPDATE`

// recordPlan is how the connections of record transactions plan (openRecorder): they find
// rows by index and join by nested loops only. A record's statements look up a few hundred
// results by primary key, in microseconds each; but the planner's cost model, with statistics
// that lag a queue growing fast (a young table, a burst), prices a hash join over a scan of
// the table (or of every pending delivery) lower, and a record then reads tens of thousands of
// rows to update a few hundred. A plan made that way also stays: pgx prepares each statement
// once per connection, and the generic plan PostgreSQL settles on after five runs is kept for
// the connection's life, so the row lock of BeginRecord, planned while the table held a few
// hundred rows, went on scanning the whole table (2–7 ms a record at a few thousand rows, and
// growing with it).
//
// They are the settings of those connections, not of each transaction: set in every
// transaction (set_config, local to it), they were a statement of its own, one of eight in a
// record, and a round trip each time.
var recordPlan = map[string]string{"enable_hashjoin": "off", "enable_mergejoin": "off", "enable_seqscan": "off"}

// RecordOwed writes the rows of taken deliveries and takes their events off the owed rows
// (owed_record.go).
func (h hooks) RecordOwed(tx *gorm.DB, rs []models.Result, now time.Time) (map[string]bool, func(), error) {
	written, err := h.d.recordOwed(tx, rs, now)
	return written, nil, err
}

func (hooks) Recorded([]models.Result) {}

func (hooks) Queued(map[string]int64) {}
