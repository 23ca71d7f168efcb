package postgres

import (
	"context"
	"errors"
	"slices"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store/internal/sqlcommon"
	"gorm.io/gorm"
)

// A publish in one round trip.
//
// A publish that holds no spill's lock and starts no spill needs no transaction: its reads see
// what has committed, as each statement of a transaction at read committed does, and its rows
// go in one statement, which commits by itself. Such a publish runs without one (runPublish),
// leaving its read of the webhooks and its insert of the four round trips BEGIN and COMMIT
// made. At 1,000 single publishes a second, each one's answer waits on them, and on the
// group's publish before it.
//
// The read is left out too while the webhooks have not changed: the publish takes them from
// the last read (subscriberCache), and its insert writes only if webhook_generation still
// holds the generation of that read. Every change a publish depends on, a webhook created,
// deleted, enabled, disabled or subscribed otherwise, and a spill started or ended, by this
// process or another replica, adds one to the generation in the same transaction (triggers of
// migration 19). An insert that finds another generation writes nothing, and the publish runs
// again, in a transaction that reads the webhooks afresh. The insert's check and its rows are
// one statement, so they see the database at one moment: the rows are those a read at that
// moment would have made.
//
// A publish that owes spilled webhooks must hold their locks from before it learns which are
// spilled to its commit (beginPublish). The cache serves it too when it was read with those
// very spills: its one statement takes the locks first, then reads the generation with a
// snapshot of its own, taken after them (hookrelay_publish_generation, migration 20); a spill
// that ended before the locks were granted changed the generation. The statement's own
// snapshot, taken before the locks, only inserts new rows, which it does not need to see
// anything for. With endpoints hanging, that is most publishes: one statement instead of
// BEGIN, the locks, the read, the insert and COMMIT. In a transaction (a publish that reads),
// the locks are a statement of their own and the check needs no function.
//
// Every so many rows written for a webhook a publish looks at its backlog, to spill it if it
// fell behind (sqlcommon.SpillPolicy). With the cache, the insert's statement makes the look
// too, reading the backlog as it was before the statement's rows, and the spills it calls for
// start with the next publish. The look was a reason for a transaction that read the webhooks
// with the backlogs: at 1,000 events a second to a webhook, one publish in 32 sent five
// statements instead of one, and those were the slowest answers.
//
// A publish that must start a spill, write more rows than one statement takes, or whose
// cache is stale finds out before it writes anything (errNeedsTx) and runs again inside a
// transaction, the last time without the cache.

// generationSQL is the webhooks' generation in a read: 0, which no cache uses, if the table
// has lost its row.
const generationSQL = `COALESCE((SELECT max(n) FROM webhook_generation), 0)`

// errNeedsTx ends a publish tried without a transaction before it writes.
var errNeedsTx = errors.New("postgres: the publish needs a transaction")

// subscriberCache is what a read of the webhooks found.
type subscriberCache struct {
	gen     int64
	enabled []*models.Webhook // shared by the publishes that use it: never changed
	spilled []string          // sorted; never changed either
}

// noCache, in a publish's context, has it read the webhooks.
type noCache struct{}

// runPublish runs publish without a transaction, or, when that try needs one, in one; a
// transaction that found its cache stale runs again reading.
func (d *Driver) runPublish(db *gorm.DB, publish func(tx *gorm.DB) error) error {
	if err := publish(db); !errors.Is(err, errNeedsTx) {
		return err
	}
	err := db.Transaction(publish)
	if errors.Is(err, errNeedsTx) {
		err = db.WithContext(context.WithValue(db.Statement.Context, noCache{}, true)).Transaction(publish)
	}
	return err
}

// cachedSubscribers is the webhooks of the last read for a publish that starts no spill, nil
// when it must read them.
func (d *Driver) cachedSubscribers(tx *gorm.DB, locked []string) *subscriberCache {
	if d.spills.Asked() {
		return nil
	}
	return d.cached(tx, locked)
}

// cached is the last read's webhooks if they were read with the spills locked, and the
// publish's context does not ask for a read.
func (d *Driver) cached(tx *gorm.DB, locked []string) *subscriberCache {
	if tx.Statement.Context.Value(noCache{}) != nil {
		return nil
	}
	if c := d.subscribers.Load(); c != nil && slices.Equal(c.spilled, locked) {
		return c
	}
	return nil
}

// readSubscribers keeps what a read found (spilled sorted) for the publishes after it: the
// newest generation, when publishes read at the same time.
func (d *Driver) readSubscribers(gen int64, enabled []*models.Webhook, spilled []string) {
	if gen == 0 {
		return
	}
	c := &subscriberCache{gen: gen, enabled: enabled, spilled: slices.Clone(spilled)}
	for {
		old := d.subscribers.Load()
		if old != nil && old.gen > c.gen || d.subscribers.CompareAndSwap(old, c) {
			return
		}
	}
}

// insertPublished writes a publish's rows: checked against the generation of the webhooks
// it used when they came from the cache, in a statement of their own when they fit one.
func (d *Driver) insertPublished(tx *gorm.DB, begun sqlcommon.PublishStart, events, deliveries sqlcommon.Rows) error {
	if (begun.Guard != 0 || !inTx(tx)) && (events.N > pgInsertChunk || deliveries.N > pgInsertChunk) {
		return errNeedsTx // more than one statement, which one check cannot cover
	}
	wrote, looked, err := insertRowSetsAt(tx, []sqlcommon.Rows{events, deliveries}, begun.Guard, begun.Locks, begun.Look)
	if err != nil {
		return err
	}
	if len(begun.Look.IDs) > 0 {
		// Read whether the insert wrote or not; the spills it calls for start with the next
		// publish, which reads the webhooks in a transaction (cachedSubscribers).
		d.spills.RequestSpill(d.spills.Decide(looked, nil))
	}
	if !wrote {
		d.subscribers.Store(nil)
		return errNeedsTx // the webhooks changed since the cache's read
	}
	return nil
}

// inTx reports whether tx runs in a transaction.
func inTx(tx *gorm.DB) bool {
	_, ok := tx.Statement.ConnPool.(gorm.TxCommitter)
	return ok
}
