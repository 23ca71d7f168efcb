package postgres

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store/internal/sqlcommon"
	"gorm.io/gorm"
)

// Recording deliveries taken from a spill (see take.go for the take).
//
// A taken delivery has no row: its event is listed in a webhook_owed row leased to the
// taker. The record of its attempt writes the row in its final state (or pending, for a
// retry) and removes the event from the owed row, deleting the row once it lists nothing, in
// the transaction that writes the attempt. So a delivery of a spilled webhook costs one row
// insert, where writing a leased row at the take and updating it at the record cost an
// insert and an update that touched every index of deliveries; and a crash anywhere leaves
// each event either recorded or still owed, never both.

// takenRowColumns are the columns of a taken delivery's row, written by its record.
var takenRowColumns = []string{"id", "event_id", "webhook_id", "event_type", "status", "attempt_count",
	"next_attempt_at", "last_status_code", "last_error", "created_at", "updated_at"}

// recordOwed is RecordResults' part for taken deliveries: it writes the rows of those
// attempted (cancelled if the webhook was disabled meanwhile; none if it was deleted, or if a
// row exists already because the lease ran out and another take's record came first), takes
// every result's event off its owed row, and ends the spills it leaves owing nothing. It
// returns the ids whose rows it wrote.
func (d *Driver) recordOwed(tx *gorm.DB, rs []models.Result, now time.Time) (map[string]bool, error) {
	emptied, allListed, err := unlistRecorded(tx, rs)
	if err != nil {
		return nil, fmt.Errorf("record taken deliveries: %w", err)
	}
	written, err := writeTakenRows(tx, rs, now, allListed)
	if err != nil {
		return nil, fmt.Errorf("record taken deliveries: %w", err)
	}
	for _, id := range emptied {
		// Only for a webhook whose owed row this record deleted; the try tests first, without
		// the spill's lock, whether anything is still owed.
		if _, err := tryEndSpill(tx, id); err != nil {
			return nil, fmt.Errorf("end spill: %w", err)
		}
	}
	return written, nil
}

// unlistRecorded removes the results' events from the owed rows they were taken from, and
// returns the webhooks (sorted) of which it deleted a row, and whether it found every event
// in its row. The rows are locked in key order first: replicas recording the same rows (a
// lease that ran out) then wait for each other instead of deadlocking. An event no longer in
// its row (its spill was dropped, or another take split the row after the lease ran out) is
// left where it is: a take that finds it again sees its row.
func unlistRecorded(tx *gorm.DB, rs []models.Result) ([]string, bool, error) {
	type key struct{ webhook, chunk string }
	done := map[key]map[string]bool{}
	unfound := 0 // events not found in their rows yet
	for _, r := range rs {
		k := key{r.WebhookID, r.Owed.Chunk}
		if done[k] == nil {
			done[k] = map[string]bool{}
		}
		if !done[k][r.EventID] {
			done[k][r.EventID] = true
			unfound++
		}
	}
	keys := make([]key, 0, len(done))
	for k := range done {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := strings.Compare(a.webhook, b.webhook); c != 0 {
			return c
		}
		return strings.Compare(a.chunk, b.chunk)
	})
	hooks, chunks := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		hooks[i], chunks[i] = k.webhook, k.chunk
	}
	rows, err := tx.Statement.ConnPool.QueryContext(tx.Statement.Context, `SELECT o.webhook_id, o.first_event, o.events
		FROM webhook_owed o JOIN unnest($1::text[], $2::text[]) AS k(w, f) ON o.webhook_id = k.w AND o.first_event = k.f
		ORDER BY o.webhook_id, o.first_event FOR UPDATE OF o`, hooks, chunks)
	if err != nil {
		return nil, false, err
	}
	var delHooks, delChunks, updHooks, updChunks, updEvents []string
	var updCounts []int64
	for rows.Next() {
		var k key
		var events string
		if err := rows.Scan(&k.webhook, &k.chunk, &events); err != nil {
			rows.Close()
			return nil, false, err
		}
		all := strings.Split(events, ",")
		left := slices.DeleteFunc(slices.Clone(all), func(e string) bool { return done[k][e] })
		unfound -= len(all) - len(left)
		switch {
		case len(left) == 0:
			delHooks, delChunks = append(delHooks, k.webhook), append(delChunks, k.chunk)
		case len(left) < len(all):
			updHooks, updChunks = append(updHooks, k.webhook), append(updChunks, k.chunk)
			updEvents, updCounts = append(updEvents, strings.Join(left, ",")), append(updCounts, int64(len(left)))
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	exec := func(q string, args ...any) error {
		_, err := tx.Statement.ConnPool.ExecContext(tx.Statement.Context, q, args...)
		return err
	}
	if len(delHooks) > 0 {
		if err := exec(`DELETE FROM webhook_owed o USING unnest($1::text[], $2::text[]) AS k(w, f)
			WHERE o.webhook_id = k.w AND o.first_event = k.f`, delHooks, delChunks); err != nil {
			return nil, false, err
		}
	}
	if len(updHooks) > 0 {
		if err := exec(`UPDATE webhook_owed o SET events = k.e, count = k.n
			FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS k(w, f, e, n)
			WHERE o.webhook_id = k.w AND o.first_event = k.f`, updHooks, updChunks, updEvents, updCounts); err != nil {
			return nil, false, err
		}
	}
	return slices.Compact(delHooks), unfound == 0, nil
}

// writeTakenRows writes the rows of the attempted results, in id order (so two records of the
// same deliveries wait for each other one way), and returns the ids it wrote.
//
// A row exists already only where a record whose lease had run out wrote it, and that record
// took the event off the owed row it found it in. So an event this record found in its own
// owed row has no row, unless a late record could not find it there (a take had split the
// row meanwhile) and wrote the row anyway. When every event was found (allListed), the rows
// go in as a plain insert under a savepoint, which that rare conflict rolls back to; otherwise
// with ON CONFLICT DO NOTHING, whose speculative insertion costs a third more: 100,000 rows
// in batches of 250 took 453 ms against 340 on a table with deliveries' indexes.
func writeTakenRows(tx *gorm.DB, rs []models.Result, now time.Time, allListed bool) (map[string]bool, error) {
	written := map[string]bool{}
	var sent []models.Result
	hookIDs := map[string]bool{}
	for _, r := range rs {
		if r.Attempt != nil {
			sent = append(sent, r)
			hookIDs[r.WebhookID] = true
		}
	}
	if len(sent) == 0 {
		return written, nil
	}
	cond, arg := hooks{}.IDsIn("id", slices.Collect(maps.Keys(hookIDs)))
	enabled, err := sqlcommon.WebhooksEnabled(tx, cond, arg)
	if err != nil {
		return nil, err
	}
	sent = slices.DeleteFunc(sent, func(r models.Result) bool {
		_, ok := enabled[r.WebhookID]
		return !ok // deleted with its webhook: an attempt row would be an orphan
	})
	slices.SortFunc(sent, func(a, b models.Result) int { return strings.Compare(a.DeliveryID, b.DeliveryID) })
	row := func(i int, args []any) []any {
		r := &sent[i]
		status, next := sqlcommon.TakenRowState(*r, enabled[r.WebhookID])
		var code, errText any
		if r.Attempt.ResponseStatus != nil {
			code = *r.Attempt.ResponseStatus
		}
		if r.Attempt.Error != nil {
			errText = *r.Attempt.Error
		}
		return append(args, r.DeliveryID, r.EventID, r.WebhookID, r.EventType, status, r.Attempt.Number, next,
			code, errText, r.TakenAt.UTC(), now)
	}
	if allListed {
		// Left to the commit when the insert succeeds: a release would be a round trip for
		// nothing.
		if err := tx.SavePoint("taken_rows").Error; err != nil {
			return nil, err
		}
		err := insertRows(tx, "deliveries", takenRowColumns, len(sent), row)
		if err == nil {
			for _, r := range sent {
				written[r.DeliveryID] = true
			}
			return written, nil
		}
		if !(hooks{}).IsUniqueViolation(err) {
			return nil, err
		}
		if err := tx.RollbackTo("taken_rows").Error; err != nil {
			return nil, err
		}
	}
	err = insertRowsThen(tx, "deliveries", takenRowColumns, len(sent), row,
		` ON CONFLICT (id) DO NOTHING RETURNING id`, func(id string) { written[id] = true })
	return written, err
}

// abandonedSet holds the webhooks whose taken events this process gave up on (AbandonOwed):
// the next take of each releases this process's leases on its owed rows first.
type abandonedSet struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (a *abandonedSet) add(ids []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ids == nil {
		a.ids = map[string]bool{}
	}
	for _, id := range ids {
		a.ids[id] = true
	}
}

// pop reports whether id was abandoned, and forgets it.
func (a *abandonedSet) pop(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.ids[id] {
		return false
	}
	delete(a.ids, id)
	return true
}

// AbandonOwed is told that deliveries taken from these webhooks' spills will not be
// recorded (their record failed, or their events could not be loaded): the next take of
// each gives up this process's leases on its owed rows and takes them again, instead of
// leaving them until the leases run out. It writes nothing itself: it is called when the
// database has just failed, and the take that follows does it in its own transaction.
func (d *Driver) AbandonOwed(webhookIDs []string) { d.abandoned.add(webhookIDs) }
