package postgres

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"gorm.io/gorm"
)

// bounder deletes the captures of bins beyond their bound after the capture that made the bin
// due has committed, on a connection of its own, instead of inside the captures' statement.
//
// Captures are written one group at a time (the store's group commit), so whatever a group's
// statement does, every capture queued behind it waits for. A bound there made its group a
// transaction of four round trips (BEGIN, the plan setting, the statement, COMMIT) and
// added the walk to the bin's keep-th newest capture and the delete: a quarter of the groups
// of a busy bin carried one (a tenth of 500 captures in groups of about 16), and the groups
// took 1.45 ms each on average with them, 1.12 ms with the bounds apart (40,000 captures,
// timed around each group). Apart, a bound runs beside the next groups, on the machine's
// time that they leave idle while they wait for their round trips.
//
// What it gives up is only how soon: a bin holds its newest captures plus those that arrived
// since its last bound, until the bound queued for it runs (reads show the newest keep
// meanwhile, ListCaptures). Bounds queued when the process stops run before Close returns
// (for drainFor at most); a process that dies leaves them to its successor's first capture in
// the bin, which always bounds (sqlcommon's captureBounds).
type bounder struct {
	bound   func(ctx context.Context, bin string, keep int) error
	mu      sync.Mutex
	pending map[string]int // bin → keep
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	// ctx ends drainFor after close is called: the bounds queued or under way by then get
	// that long in all, so a database that does not answer cannot hold Close up.
	ctx      context.Context
	cancel   context.CancelFunc
	drainFor time.Duration
}

func newBounder(bound func(ctx context.Context, bin string, keep int) error) *bounder {
	b := makeBounder(bound)
	go b.run()
	return b
}

// makeBounder is a bounder whose loop is not running yet (newBounder runs it).
func makeBounder(bound func(ctx context.Context, bin string, keep int) error) *bounder {
	ctx, cancel := context.WithCancel(context.Background())
	return &bounder{bound: bound, pending: map[string]int{}, kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}), ctx: ctx, cancel: cancel, drainFor: 5 * time.Second}
}

// add queues bins to bound to their newest keep captures; it never blocks.
func (b *bounder) add(bins []string, keep int) {
	if len(bins) == 0 {
		return
	}
	b.mu.Lock()
	for _, bin := range bins {
		b.pending[bin] = keep
	}
	b.mu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

func (b *bounder) run() {
	defer close(b.done)
	for {
		select {
		case <-b.kick:
			b.boundPending()
		case <-b.stop:
			b.boundPending()
			return
		}
	}
}

// boundPending bounds every bin queued; a failure is logged, and the bin's next bound (a tenth
// of its keep later) deletes what this one would have.
func (b *bounder) boundPending() {
	for b.ctx.Err() == nil {
		b.mu.Lock()
		pending := b.pending
		b.pending = map[string]int{}
		b.mu.Unlock()
		if len(pending) == 0 {
			return
		}
		for bin, keep := range pending {
			ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
			if err := b.bound(ctx, bin, keep); err != nil {
				slog.Warn("delete a bin's captures beyond its bound", "bin", bin, "err", err)
			}
			cancel()
		}
	}
}

// close runs the bounds queued, for drainFor at most, and stops.
func (b *bounder) close() {
	b.once.Do(func() {
		t := time.AfterFunc(b.drainFor, b.cancel)
		defer t.Stop()
		close(b.stop)
		<-b.done
		b.cancel()
	})
	<-b.done
}

// boundCapturesSQL deletes a bin's captures older than its keep-th newest ($2 is keep-1). The
// statement sees only committed captures, so a capture being written meanwhile is never
// counted and never deleted.
const boundCapturesSQL = `DELETE FROM captures WHERE bin_id = $1 AND id < (SELECT id FROM captures
	WHERE bin_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)`

// boundCaptures keeps bin to its newest keep captures.
func boundCaptures(ctx context.Context, db *gorm.DB, bin string, keep int) error {
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec(boundPlanSQL).Error; err != nil {
			return err
		}
		return tx.Exec(boundCapturesSQL, bin, keep-1).Error
	})
}

// boundPlanSQL sets two things for the bound's transaction only (set_config's third argument:
// both end with it, so the pool's connection goes back as it was).
//
// The walk: a bound walks a bin's key index in order (an index scan) rather than collect the
// bin's rows by a bitmap and sort them, which is the plan the planner prices lowest for a table
// it estimates small (one never analysed, or analysed while young). A bitmap scan visits every
// index entry of the bin, those of the rows earlier bounds deleted included, until a vacuum
// removes them: over 40,000 captures at a few thousand a second and no vacuum, a bound took
// 6.8 ms on average, against 1.9 to 2.6 ms walking the index, whose scans mark the dead
// entries they meet so that later ones skip them (statement census, docs/performance.md). The
// statement's generic plan is made under it too, since it runs in no other way.
//
// The commit: it does not wait for the WAL to reach the disk. A bound only deletes captures
// beyond the bin's keep, which reads already hide; if the server crashed before the WAL
// writer flushed the commit (within its wal_writer_delay), the rows would come back, hidden
// as before, and the bin's next bound would delete them again. Every other write still waits
// for its flush, and PostgreSQL's recovery never keeps a later synchronous commit without
// the earlier asynchronous ones. Waiting cost a flush of its own for every bound, a tenth of
// keep captures apart, beside the captures' groups of a dozen or so each.
const boundPlanSQL = `SELECT set_config('enable_bitmapscan', 'off', true), set_config('synchronous_commit', 'off', true)`
