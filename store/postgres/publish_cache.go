package postgres

import (
	"errors"

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
// A publish that must hold spill locks, start a spill, write more rows than one statement
// takes, or whose cache is stale finds out before it writes anything (errNeedsTx) and runs
// again inside a transaction.

// generationSQL is the webhooks' generation in a read: 0, which no cache uses, if the table
// has lost its row.
const generationSQL = `COALESCE((SELECT max(n) FROM webhook_generation), 0)`

// errNeedsTx ends a publish tried without a transaction before it writes.
var errNeedsTx = errors.New("postgres: the publish needs a transaction")

// subscriberCache is what the last read of the webhooks found, while no webhook was spilled.
type subscriberCache struct {
	gen     int64
	enabled []*models.Webhook // shared by the publishes that use it: never changed
}

// runPublish runs publish without a transaction while no spill's lock is to be taken, and
// otherwise, or when that try needs one, in one.
func (d *Driver) runPublish(db *gorm.DB, publish func(tx *gorm.DB) error) error {
	if len(*d.spilledSeen.Load()) == 0 {
		if err := publish(db); !errors.Is(err, errNeedsTx) {
			return err
		}
	}
	return db.Transaction(publish)
}

// cachedSubscribers is the webhooks of the last read for a publish without a transaction that
// looks at no backlog, nil otherwise.
func (d *Driver) cachedSubscribers(tx *gorm.DB, check sqlcommon.BacklogCheck) *subscriberCache {
	if inTx(tx) || len(check.IDs) > 0 {
		return nil
	}
	return d.subscribers.Load()
}

// readSubscribers keeps what a read found for the publishes after it: only a read without
// spills (a spill's publishes run in transactions and read), and only the newest generation,
// when publishes read at the same time.
func (d *Driver) readSubscribers(gen int64, enabled []*models.Webhook, spilled []string) {
	var c *subscriberCache
	if gen != 0 && len(spilled) == 0 {
		c = &subscriberCache{gen: gen, enabled: enabled}
	}
	for {
		old := d.subscribers.Load()
		if c != nil && old != nil && old.gen > c.gen {
			return
		}
		if d.subscribers.CompareAndSwap(old, c) {
			return
		}
	}
}

// insertPublished writes a publish's rows: checked against the generation of the webhooks
// it used when they came from the cache, in a statement of their own when they fit one.
func (d *Driver) insertPublished(tx *gorm.DB, begun sqlcommon.PublishStart, events, deliveries sqlcommon.Rows) error {
	if !inTx(tx) && (events.N > pgInsertChunk || deliveries.N > pgInsertChunk) {
		return errNeedsTx // more than one statement
	}
	wrote, err := insertRowSetsAt(tx, []sqlcommon.Rows{events, deliveries}, begun.Guard)
	if err != nil {
		return err
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
