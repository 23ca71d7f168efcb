package sqlite

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store/internal/sqlcommon"
	"github.com/hookrelay/hookrelay/store/storedriver"
	"gorm.io/gorm"
)

// hooks are SQLite's parts of the shared statements (sqlcommon.Hooks). A type of its own, so
// they are not methods of Driver that Hookrelay could call.
type hooks struct{ d *Driver }

var _ sqlcommon.Hooks = hooks{}

var schemaTypes = strings.NewReplacer("{{ts}}", "DATETIME", "{{blob}}", "BLOB", "{{owed marks}}", "", "{{webhook generation}}", "", "{{publish locks}}", "",
	"{{hour started_at}}", "(CAST(strftime('%s', started_at) AS INTEGER) / 3600)")

func (hooks) SchemaSQL(q string) string { return schemaTypes.Replace(q) }

// IDsIn binds the list as one JSON array, so a statement has one text whatever the number of
// ids: each length of a plain IN list would be a text of its own for the connections to
// compile and keep (internal/stmtcache), and the dispatcher's reads of event bodies ask for
// lists of every length up to hundreds.
func (hooks) IDsIn(col string, ids []string) (string, any) {
	b := make([]byte, 0, 2+len(ids)*32)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = models.AppendJSONString(b, id)
	}
	return col + " IN (SELECT value FROM json_each(?))", string(append(b, ']'))
}

// LockMigrations has nothing to lock: one process opens the file, and the writer connection
// runs one migration at a time.
func (hooks) LockMigrations(*gorm.DB) (func(), error) { return func() {}, nil }

func (hooks) IsUniqueViolation(err error) bool {
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}

func (hooks) InsertRows(tx *gorm.DB, table string, cols []string, n int, rowArgs func(i int, args []any) []any) error {
	return insertRows(tx, table, cols, n, rowArgs)
}

// RunPublish runs every publish in a transaction: its statements are calls into the library,
// and the transaction is what makes them one write.
func (hooks) RunPublish(db *gorm.DB, publish func(tx *gorm.DB) error) error {
	return db.Transaction(publish)
}

func (hooks) InsertPublished(tx *gorm.DB, _ sqlcommon.PublishStart, events, deliveries sqlcommon.Rows) error {
	for _, r := range [...]sqlcommon.Rows{events, deliveries} {
		if r.N == 0 {
			continue
		}
		if err := insertRows(tx, r.Table, r.Cols, r.N, r.Row); err != nil {
			return err
		}
	}
	return nil
}

// WriteCaptures is a transaction of statements (capture.go): on SQLite's one writer a
// statement is a call into the library, not a round trip.
func (h hooks) WriteCaptures(ctx context.Context, _ *gorm.DB, w sqlcommon.CaptureWrite) (bool, error) {
	return h.d.writeCaptures(ctx, w)
}

// InsertAttempts is two statements: on SQLite's one writer a statement is a call into the
// library, not a round trip.
func (hooks) InsertAttempts(tx *gorm.DB, attempts []*models.Attempt, activity sqlcommon.Rows) error {
	if err := insertAttempts(tx, attempts); err != nil {
		return err
	}
	return sqlcommon.InsertValues(tx, activity)
}

func (hooks) JSONSource() string { return `json_each(?) AS j` }

// JSONCol leaves the JSON value its own type: integers stay integers, null is NULL.
func (hooks) JSONCol(i int, _ string) string { return "j.value->>" + strconv.Itoa(i) }

func (h hooks) BeginPublish(tx *gorm.DB, _ int) (sqlcommon.PublishStart, error) {
	return h.d.spillBacklogged(tx)
}

func (h hooks) WritingRows(ds []*models.Delivery) func() { return h.d.spills.Underway(ds) }

func (h hooks) WroteRows(ds []*models.Delivery) { h.d.spills.WroteRows(ds) }

// MarksOwed is false: the spill position covers every later event.
func (hooks) MarksOwed() bool { return false }

// Published has nothing to add: the dispatcher is in this process and hears of the commit
// through OnQueued.
func (hooks) Published(map[string]int64, map[string]bool) {}

// LockForChange adds nothing: a write transaction holds the one writer already.
func (hooks) LockForChange(q *gorm.DB) *gorm.DB { return q }

func (h hooks) SubscribersChanged() { h.d.subs.invalidate() }

// BinDeleted forgets the bin as one captures may be written to without looking (capture.go).
func (h hooks) BinDeleted(id string) { h.d.bins.forget(id) }

func (h hooks) DropSpill(tx *gorm.DB, webhookID string) error { return h.d.dropSpill(tx, webhookID) }

// KeepOwed spares the events a spill still owes, and the one at the position itself: SQLite
// gives a new row the largest rowid plus one, so deleting the newest event would hand its
// rowid, which the position already counts as passed, to the next event.
func (hooks) KeepOwed() string {
	return ` AND rowid < COALESCE((SELECT MIN(after_seq) FROM webhook_spills), 9223372036854775807)`
}

func (h hooks) GetOwed(ctx context.Context, id string) (*models.Delivery, error) {
	return h.d.getOwed(ctx, id)
}

func (h hooks) ListOwed(ctx context.Context, f storedriver.DeliveryFilter, cursor string, limit int) ([]*models.Delivery, error) {
	return h.d.listOwed(ctx, f, cursor, limit)
}

func (hooks) SkipOwed(q *gorm.DB, webhookID string) *gorm.DB {
	return q.Where(`NOT EXISTS (SELECT 1 FROM webhook_spills sp WHERE sp.webhook_id = ? AND events.rowid > sp.after_seq)`, webhookID)
}

func (h hooks) Leased(id string, now int64) bool { return h.d.leases.live(id, now) }

func (h hooks) Claim(ctx context.Context, r storedriver.ClaimForRequest, hs []storedriver.WebhookQuota) ([]*models.Delivery, []string, map[string]int64, error) {
	claimed, exhausted, err := h.d.claim(ctx, r, hs)
	return claimed, exhausted, nil, err
}

// Rescanning rewinds every claim cursor: leases that ran out lie behind them.
func (h hooks) Rescanning() { h.d.leases.rewindAll() }

// BeginRecord has nothing to settle: the writer is one connection, and SQLite's planner
// finds the recorded rows by id.
func (hooks) BeginRecord(*gorm.DB, []models.Result) error { return nil }

func (h hooks) RecordOwed(tx *gorm.DB, owed []models.Result, now time.Time) (map[string]bool, func(), error) {
	return h.d.owedRecord(tx, owed, now)
}

// Recorded ends the recorded deliveries' leases; a retry due at once would sort behind its
// webhook's claim cursor, so that rewinds.
func (h hooks) Recorded(results []models.Result) {
	ids := make([]string, len(results))
	for i, r := range results {
		ids[i] = r.DeliveryID
		if r.Status == models.StatusPending {
			h.d.leases.rewind(r.WebhookID, r.NextAttemptAt)
		}
	}
	h.d.releaseLeases(ids)
}

// Queued rewinds the claim cursors of webhooks that got work due before them.
func (h hooks) Queued(due map[string]int64) {
	for id, at := range due {
		h.d.leases.rewind(id, at)
	}
}
