// Package sqlcommon is the SQL that Hookrelay's two drivers share word for word: webhooks,
// events and the publish transaction, deliveries and the record transaction, captures, keys,
// sessions, retention and the migrations. Where the databases differ inside one of these
// (a bulk insert, a lease, a spilled webhook's owed events, a notification at commit), Base
// calls the driver back through Hooks, and each driver answers in its own way; nothing here
// asks which database it runs on.
package sqlcommon

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store/storedriver"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// The values that cross the driver seam, under the names this package's SQL was written with.
type (
	ClaimForRequest = storedriver.ClaimForRequest
	DeliveryFilter  = storedriver.DeliveryFilter
	EventBody       = storedriver.EventBody
	PublishInput    = storedriver.PublishInput
	Published       = storedriver.Published
	QueueStats      = storedriver.QueueStats
	Queued          = storedriver.Queued
	ReplayFilter    = storedriver.ReplayFilter
	Setting         = storedriver.Setting
)

// Rows are n rows for some columns of one table; Row appends the values of row i, in column
// order.
type Rows struct {
	Table string
	Cols  []string
	N     int
	Row   func(i int, args []any) []any
	// Then follows the rows in their statement (an ON CONFLICT clause), when not "".
	Then string
}

// PublishStart is what a publish learns first (Hooks.BeginPublish).
type PublishStart struct {
	Spilled map[string]bool // the webhooks that get no row: they owe the events
	Started []string        // the spills this transaction started
	// Enabled are the enabled webhooks as of the transaction (read with the spills, or from
	// a cache the transaction checked); the publish keeps each event type's subscribers. Of
	// each, a publish uses only ID and Events, which is all PostgreSQL reads.
	Enabled []*models.Webhook
	// Guard, when not 0, is what the driver's InsertPublished checks that Enabled still holds
	// when it writes (PostgreSQL: the generation of webhooks it read them at, from a cache).
	Guard int64
	// Locks are the spills whose locks InsertPublished takes itself, before its check
	// (PostgreSQL, a publish without a transaction).
	Locks []string
	// Look is the look at backlogs that InsertPublished makes in its statement (PostgreSQL, a
	// publish whose webhooks came from a cache); the spills it calls for start with the next
	// publish.
	Look BacklogCheck
}

// Hooks are the parts of the shared statements that a driver supplies. Each is called once
// per transaction or per request, never per row.
type Hooks interface {
	// SchemaSQL turns a migration's placeholders ({{ts}}, {{blob}}, {{hour started_at}})
	// into the database's own SQL.
	SchemaSQL(migration string) string
	// IDsIn is the condition that col is one of ids, with its one argument, for statements
	// on the hot path whose lists vary in length.
	IDsIn(col string, ids []string) (string, any)
	// LockMigrations keeps processes starting together from migrating at the same time; the
	// returned func lets go.
	LockMigrations(db *gorm.DB) (unlock func(), err error)
	// IsUniqueViolation reports a unique-constraint failure.
	IsUniqueViolation(err error) bool

	// InsertRows inserts n rows into table; rowArgs appends the values of row i, in column
	// order.
	InsertRows(tx *gorm.DB, table string, cols []string, n int, rowArgs func(i int, args []any) []any) error
	// InsertPublished writes a publish's events and their delivery rows (either may be
	// empty), given what BeginPublish returned; PostgreSQL writes them in one statement, a
	// round trip less.
	InsertPublished(tx *gorm.DB, begun PublishStart, events, deliveries Rows) error
	// InsertAttempts writes attempt rows and the activity they add (ActivityRows): PostgreSQL
	// in one statement, a round trip less in every record.
	InsertAttempts(tx *gorm.DB, attempts []*models.Attempt, activity Rows) error
	// WriteCaptures stores a group of captures atomically on db (the writer, outside any
	// transaction) and bounds the due bins: SQLite in the same transaction, PostgreSQL after
	// it commits, apart. It reports whether every bin exists; when one does not, nothing is
	// stored and nothing bounded.
	WriteCaptures(ctx context.Context, db *gorm.DB, w CaptureWrite) (found bool, err error)
	// JSONSource is the FROM item that unpacks a JSONRows parameter into rows with a column
	// named value; JSONCol reads column i of such a row as sqlType.
	JSONSource() string
	JSONCol(i int, sqlType string) string

	// RunPublish runs a publish's statements, publish, on db: in a transaction, or, where
	// the driver can tell that they write in one statement that commits by itself, without
	// one. A try without one may end in an error of the driver's that says it needs one,
	// and publish then runs again inside one.
	RunPublish(db *gorm.DB, publish func(tx *gorm.DB) error) error
	// BeginPublish runs first in a publish's statements, given how many events it publishes,
	// and returns what the publish needs to know before it writes.
	BeginPublish(tx *gorm.DB, events int) (PublishStart, error)
	// WritingRows is told the delivery rows a publish is about to write, and returns what
	// to call once it has written them or given up.
	WritingRows(ds []*models.Delivery) (done func())
	// WroteRows is told the delivery rows a publish writes.
	WroteRows(ds []*models.Delivery)
	// MarksOwed reports whether a publish marks the events it owes spilled webhooks (the
	// events table's owed column): PostgreSQL's takes find them by it; SQLite's spill
	// position covers every later event.
	MarksOwed() bool
	// Published is told, after it commits, of a publish that queued deliveries (rows or owed)
	// for the webhooks in due; owedOnly are those of them that got no row, only owed events.
	Published(due map[string]int64, owedOnly map[string]bool)

	// LockForChange makes a read inside a write transaction lock what it reads.
	LockForChange(q *gorm.DB) *gorm.DB
	// SubscribersChanged is told, inside the write transaction, that webhooks changed.
	SubscribersChanged()
	// BinDeleted is told, inside the write transaction, that a bin is being deleted.
	BinDeleted(id string)
	// DropSpill ends a webhook's spill, if it has one (it was disabled or deleted).
	DropSpill(tx *gorm.DB, webhookID string) error
	// KeepOwed is a condition appended to a DELETE FROM events that spares owed events.
	KeepOwed() string

	// GetOwed finds a delivery a spill owes by the id its row will have; models.ErrNotFound
	// when none.
	GetOwed(ctx context.Context, id string) (*models.Delivery, error)
	// ListOwed returns up to limit+1 owed deliveries per spilled webhook that match f and sort
	// before cursor, newest first.
	ListOwed(ctx context.Context, f DeliveryFilter, cursor string, limit int) ([]*models.Delivery, error)
	// SkipOwed narrows a replay's events (table events) to those webhookID's spill does not
	// owe.
	SkipOwed(q *gorm.DB, webhookID string) *gorm.DB
	// Leased reports whether a delivery is leased in memory right now.
	Leased(id string, now int64) bool

	// Claim leases up to h.Free due deliveries of each webhook (all have free slots) and
	// returns them with the webhooks whose due deliveries it took all of. next, when not nil,
	// says for each of those when its earliest later delivery is due (0: none), read with
	// the claim; when nil, ClaimFor reads it.
	Claim(ctx context.Context, r ClaimForRequest, hooks []storedriver.WebhookQuota) (claimed []*models.Delivery, exhausted []string, next map[string]int64, err error)
	// Rescanning is told that the dispatcher is about to look for work it was not told about.
	Rescanning()
	// BeginRecord runs first in a record transaction, given the deliveries it records: what
	// the driver must settle before the transaction's statements (row locks).
	BeginRecord(tx *gorm.DB, results []models.Result) error
	// RecordOwed writes the rows of deliveries taken without one; it returns the ids it wrote
	// and what to apply once the transaction commits.
	RecordOwed(tx *gorm.DB, owed []models.Result, now time.Time) (map[string]bool, func(), error)
	// Recorded is told, after the commit, the results a record transaction wrote.
	Recorded(results []models.Result)
	// Queued is told, after the commit, what a transaction made due.
	Queued(due map[string]int64)
}

// Base holds the database handles and runs the shared statements. On SQLite, Writer is a pool of
// one connection (writers queue in Go) and Reader a pool of readers; on PostgreSQL both are the
// same pool.
type Base struct {
	Writer, Reader *gorm.DB
	// recorder is what record transactions run on: Writer, unless the driver gives them
	// connections of their own (SetRecorder).
	recorder *gorm.DB
	pools    []*sql.DB
	hooks    Hooks

	sendCache  sendCache     // see WebhooksToSend
	webhookGen atomic.Uint64 // webhook changes made through this store (WebhooksChanged)
	onQueued   atomic.Pointer[func(Queued)]
	lessee     atomic.Pointer[storedriver.Lessee] // see SetLessee
	bounds     captureBounds
	health     healthMarks // see RecordResults
}

// New returns a Base on the given handles; pools are what Ping checks and Close closes.
func New(w, r *gorm.DB, pools []*sql.DB, hooks Hooks) *Base {
	return &Base{Writer: w, Reader: r, recorder: w, pools: pools, hooks: hooks}
}

// Recorder is the handle record transactions run on (SetRecorder).
func (s *Base) Recorder() *gorm.DB { return s.recorder }

// SetRecorder makes record transactions (RecordResults) run on db, whose pool Ping checks
// and Close closes with the others: a driver sets up those connections for the record's
// statements once, where it would otherwise set them up in every transaction.
func (s *Base) SetRecorder(db *gorm.DB, pool *sql.DB) {
	s.recorder = db
	s.pools = append(s.pools, pool)
}

// GormConfig is how both drivers open gorm: no implicit transactions (every write chooses
// its own), prepared statements, no logging, times in UTC.
func GormConfig() *gorm.Config {
	return &gorm.Config{
		SkipDefaultTransaction: true,
		PrepareStmt:            true,
		Logger:                 logger.Discard,
		NowFunc:                func() time.Time { return time.Now().UTC() },
	}
}

// Ping checks that the database answers (for /readyz).
func (s *Base) Ping(ctx context.Context) error {
	for _, db := range s.pools {
		if err := db.PingContext(ctx); err != nil {
			return fmt.Errorf("ping database: %w", err)
		}
	}
	return nil
}

// Close closes every pool.
func (s *Base) Close() error {
	var first error
	for _, db := range s.pools {
		if err := db.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// ExecSQL runs a statement on the writer (tests and admin tools).
func (s *Base) ExecSQL(ctx context.Context, query string, args ...any) error {
	return s.Writer.WithContext(ctx).Exec(query, args...).Error
}

// ScanSQL runs a query on a reader and scans its rows into dest (tests and admin tools).
func (s *Base) ScanSQL(ctx context.Context, dest any, query string, args ...any) error {
	return s.Reader.WithContext(ctx).Raw(query, args...).Scan(dest).Error
}

// OnQueued registers fn to be told, after each commit that queues deliveries, what it
// queued. The dispatcher uses it to know where work is without scanning the queue, and to
// send fresh events without reading their bodies back. fn must not block.
func (s *Base) OnQueued(fn func(Queued)) { s.onQueued.Store(&fn) }

// SetLessee makes publishes offer their new deliveries to l (nil: to no one), for a driver
// that writes leases in the rows (storedriver.Claims.LeaseAtPublish).
func (s *Base) SetLessee(l storedriver.Lessee) {
	if l == nil {
		s.lessee.Store(nil)
		return
	}
	s.lessee.Store(&l)
}

// Listening reports whether a dispatcher in this process listens (OnQueued).
func (s *Base) Listening() bool { return s.onQueued.Load() != nil }

func (s *Base) queued(q Queued) {
	// A publish whose deliveries were all leased has nothing due, but its bodies are wanted.
	if len(q.Due) == 0 && len(q.Spilled) == 0 && len(q.Payloads) == 0 {
		return
	}
	s.hooks.Queued(q.Due)
	if fn := s.onQueued.Load(); fn != nil {
		(*fn)(q)
	}
}

// WebhooksChanged records a change of webhooks (or of the spilled set) made inside the
// current write transaction: the driver's subscriber cache, if it keeps one, re-reads them,
// and WebhooksToSend does not serve what it kept from before.
func (s *Base) WebhooksChanged() {
	s.webhookGen.Add(1)
	s.health.forget()
	s.hooks.SubscribersChanged()
}

// getByID reads the row of T with this id, or models.ErrNotFound; what names the read in errors.
func getByID[T any](ctx context.Context, db *gorm.DB, id, what string) (*T, error) {
	var v T
	err := db.WithContext(ctx).Where("id = ?", id).Take(&v).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, models.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return &v, nil
}
