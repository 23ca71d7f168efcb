package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store/internal/sqlcommon"
	"github.com/hookrelay/hookrelay/store/storedriver"
	"gorm.io/gorm"
)

// Takes of spilled webhooks' owed events (what a spill is, and its locks: spill.go; the
// record of what a take handed out: owed_record.go).

// TakeSpilled hands out the next owed events of spilled webhooks, oldest first, as delivery
// rows leased to r.Owner. A webhook whose owed events are all taken stops being spilled, so
// the next publish writes its rows again. A webhook that is not spilled gets nothing; one gone
// or disabled loses its spill.
//
// The webhooks of one request share a transaction: a take per webhook, each with its commit,
// was a third of all commits with one event per publish (4 spilled webhooks, a take round
// per publish). They are taken in id order; the spills they leave owing nothing are ended
// last, so the exclusive locks that ending takes (which publishes owing the webhook wait
// for) are held only for the commit.
func (d *Driver) TakeSpilled(ctx context.Context, r storedriver.TakeRequest) (map[string]storedriver.SpillTake, error) {
	out := make(map[string]storedriver.SpillTake, len(r.Hooks))
	if len(r.Hooks) == 0 {
		return out, nil
	}
	lease := r.Lease
	if lease <= 0 {
		lease = takeLease
	}
	now := r.Now.UTC()
	until := now.Add(lease).UnixMilli()
	wants := r.Wants()
	// What this process took and then gave up on (AbandonOwed) is taken again now, not when
	// its lease runs out.
	var released []string
	for _, want := range wants {
		if d.abandoned.pop(want.WebhookID) {
			released = append(released, want.WebhookID)
		}
	}
	var gone []string
	err := d.Writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		clear(out)
		gone = gone[:0]
		var drained []string
		for _, want := range wants {
			got, state, err := takeOwed(tx, want, now, r.Owner, until, slices.Contains(released, want.WebhookID))
			if err != nil {
				return err
			}
			switch state {
			case spillGone:
				gone = append(gone, want.WebhookID)
			case spillDrained:
				drained = append(drained, want.WebhookID)
			}
			out[want.WebhookID] = got
		}
		// All each of these had is taken: end its spill if nothing more is owed, in flight
		// included, and no publish that may still add to it is running (see the top of the
		// file). Only if that holds right now: waiting for the lock while holding owed rows
		// could deadlock with a drop of the spill, which holds the lock and deletes those
		// rows. A spill left here ends at the record of what is in flight, or at a take after
		// the next publish, which hints the webhook due.
		for _, id := range drained {
			ended, err := tryEndSpill(tx, id)
			if err != nil {
				return err
			}
			got := out[id]
			got.Spilled = !ended
			out[id] = got
		}
		return nil
	})
	if err != nil {
		d.abandoned.add(released) // still to be done
		return nil, fmt.Errorf("take spilled events: %w", err)
	}
	// A spill whose webhook is gone or disabled is dropped in a transaction of its own: the
	// drop waits for the publishes owing the webhook, which must not wait for this take's
	// locks meanwhile. The webhook's state is read again there, in case it changed since.
	for _, id := range gone {
		err := d.Writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			if _, state, err := takeOwed(tx, storedriver.OwedQuota{WebhookID: id}, now, r.Owner, until, false); err != nil || state != spillGone {
				return err
			}
			return dropSpill(tx, id)
		})
		if err != nil {
			return nil, fmt.Errorf("take spilled events: %w", err)
		}
	}
	return out, nil
}

// What a take found of a webhook's spill (takeOwed).
type spillState int

const (
	spillOwing   spillState = iota // spilled, and more may be owed than the take found
	spillNone                      // not spilled
	spillGone                      // spilled, but the webhook is gone or disabled: drop it
	spillDrained                   // spilled, and the take found all it owed: try to end it
)

// takeOwed is one webhook's part of TakeSpilled, in its transaction.
func takeOwed(tx *gorm.DB, want storedriver.OwedQuota, now time.Time, owner string, until int64, release bool) (storedriver.SpillTake, spillState, error) {
	var state []struct{ Enabled *bool }
	if err := tx.Raw(`SELECT w.enabled FROM webhook_spills sp LEFT JOIN webhooks w ON w.id = sp.webhook_id
		WHERE sp.webhook_id = ?`, want.WebhookID).Scan(&state).Error; err != nil {
		return storedriver.SpillTake{}, 0, err
	}
	if len(state) == 0 {
		return storedriver.SpillTake{}, spillNone, nil
	}
	if state[0].Enabled == nil || !*state[0].Enabled {
		return storedriver.SpillTake{}, spillGone, nil
	}
	got := storedriver.SpillTake{Spilled: true}
	if release {
		if err := tx.Exec(`UPDATE webhook_owed SET locked_until = 0 WHERE webhook_id = ? AND locked_by = ? AND locked_until > 0`,
			want.WebhookID, owner).Error; err != nil {
			return got, 0, err
		}
	}
	if want.Rows <= 0 {
		return got, spillOwing, nil
	}
	if _, err := collectOwed(tx, want.WebhookID); err != nil {
		return got, 0, err
	}
	taken, more, err := leaseOwed(tx, want, now, owner, until)
	if err != nil {
		return got, 0, err
	}
	got.Taken, got.More = taken, more
	if more {
		return got, spillOwing, nil
	}
	return got, spillDrained, nil
}

// tryEndSpill ends a webhook's spill if it owes nothing (listed, taken or not yet listed) and
// no publish holds the spill's lock at this moment; it never waits for that lock. Holding it,
// every event owed to the spill was committed before the DELETE's snapshot: a take listing
// some of them meanwhile (collect.go) lists only events that snapshot sees unlisted, so the
// DELETE's test fails on them before it would wait for the take's lock on the row, and after
// a take that listed nothing it deletes rightly.
//
// The lock is held to the end of the transaction, and every publish owing the webhook waits
// for it meanwhile; under a steady stream most tries find something still owed. So the same
// test runs first without the lock, and the lock is tried only when it passes: the test under
// the lock is what decides.
func tryEndSpill(tx *gorm.DB, webhookID string) (bool, error) {
	var drained bool
	if err := tx.Raw(`SELECT `+spillDrainedSQL, webhookID, webhookID).Scan(&drained).Error; err != nil {
		return false, err
	}
	if !drained {
		return false, nil
	}
	var free bool
	if err := tx.Raw(`SELECT pg_try_advisory_xact_lock(?, hashtext(?))`, spillLockClass, webhookID).
		Scan(&free).Error; err != nil {
		return false, err
	}
	if !free {
		return false, nil
	}
	res := tx.Exec(`DELETE FROM webhook_spills WHERE webhook_id = ? AND `+spillDrainedSQL, webhookID, webhookID, webhookID)
	return res.RowsAffected > 0, res.Error
}

// spillDrainedSQL is true when a webhook (both parameters its id) owes nothing: no owed row,
// listed or taken, and no owed event its spill has not listed yet.
const spillDrainedSQL = `NOT EXISTS (SELECT 1 FROM webhook_owed WHERE webhook_id = ?)
	AND NOT EXISTS (SELECT 1 FROM webhook_spills sp JOIN webhooks w ON w.id = sp.webhook_id` + unlistedSQL + `
		WHERE sp.webhook_id = ?)`

// owedRow is a webhook_owed row a take holds.
type owedRow struct {
	FirstEvent string
	Events     string
	LockedBy   string
	CreatedAt  time.Time

	ids     []string // Events, less what the take found delivered or gone
	changed bool     // ids differs from Events
}

// leaseOwed takes up to want.Rows of a webhook's owed events that no live lease holds,
// oldest rows first, and leases the rows listing them to owner until until (unix ms). It
// returns the events as deliveries without rows (Delivery.Owed), oldest first, and whether
// it found as many as asked (there may be more).
func leaseOwed(tx *gorm.DB, want storedriver.OwedQuota, now time.Time, owner string, until int64) ([]*models.Delivery, bool, error) {
	rows, err := lockOwedRows(tx, want, now)
	if err != nil {
		return nil, false, err
	}
	var again []string // owed delivery ids of rows leased before, whose lease ran out or was given up
	for _, r := range rows {
		if r.LockedBy != "" {
			for _, e := range r.ids {
				again = append(again, sqlcommon.OwedDeliveryID(e, want.WebhookID))
			}
		}
	}
	if len(again) > 0 {
		// Their attempts may have been recorded by a replica whose lease had run out (its
		// record writes the row and removes the event from the owed row it was taken from,
		// which a take since may have split): those are delivered, not owed.
		var delivered []string
		if err := tx.Raw(`SELECT event_id FROM deliveries WHERE id = ANY(CAST(? AS text[]))`, textArray(again)).Scan(&delivered).Error; err != nil {
			return nil, false, err
		}
		if len(delivered) > 0 {
			gone := make(map[string]bool, len(delivered))
			for _, e := range delivered {
				gone[e] = true
			}
			for _, r := range rows {
				r.drop(gone)
			}
		}
	}
	// The rows are walked in order until the quota is met; the row that meets it is split,
	// its rest going back as a row of its own that the next take finds first.
	var walked []*owedRow
	var rest *owedRow
	var ids []string
	for _, r := range rows {
		room := want.Rows - len(ids)
		if room == 0 {
			break
		}
		walked = append(walked, r)
		if len(r.ids) > room {
			rest = &owedRow{FirstEvent: r.ids[room], ids: r.ids[room:], LockedBy: r.LockedBy, CreatedAt: r.CreatedAt}
			r.ids, r.changed = r.ids[:room], true
		}
		ids = append(ids, r.ids...)
	}
	more := len(ids) == want.Rows
	var evs []struct{ ID, Type string }
	if len(ids) > 0 {
		if err := tx.Raw(`SELECT id, type FROM events WHERE id = ANY(CAST(? AS text[])) ORDER BY id`, textArray(ids)).Scan(&evs).Error; err != nil {
			return nil, false, err
		}
	}
	if len(evs) < len(ids) {
		// Deleted by hand (retention spares owed events): nothing can be sent for them.
		found := make(map[string]bool, len(evs))
		for _, e := range evs {
			found[e.ID] = true
		}
		gone := map[string]bool{}
		for _, id := range ids {
			if !found[id] {
				gone[id] = true
			}
		}
		for _, r := range walked {
			r.drop(gone)
		}
	}
	chunkOf := make(map[string]string, len(ids))
	var emptied, leased []string
	for _, r := range walked {
		switch {
		case len(r.ids) == 0:
			emptied = append(emptied, r.FirstEvent)
		case r.changed:
			if err := tx.Exec(`UPDATE webhook_owed SET events = ?, count = ?, locked_until = ?, locked_by = ?
				WHERE webhook_id = ? AND first_event = ?`, strings.Join(r.ids, ","), len(r.ids), until, owner,
				want.WebhookID, r.FirstEvent).Error; err != nil {
				return nil, false, err
			}
		default:
			leased = append(leased, r.FirstEvent)
		}
		for _, e := range r.ids {
			chunkOf[e] = r.FirstEvent
		}
	}
	if len(leased) > 0 {
		if err := tx.Exec(`UPDATE webhook_owed SET locked_until = ?, locked_by = ? WHERE webhook_id = ? AND first_event = ANY(CAST(? AS text[]))`,
			until, owner, want.WebhookID, textArray(leased)).Error; err != nil {
			return nil, false, err
		}
	}
	if len(emptied) > 0 {
		if err := tx.Exec(`DELETE FROM webhook_owed WHERE webhook_id = ? AND first_event = ANY(CAST(? AS text[]))`, want.WebhookID, textArray(emptied)).Error; err != nil {
			return nil, false, err
		}
	}
	if rest != nil && len(rest.ids) > 0 {
		// The rest's first event is in no other row, so it is a free key.
		err := insertRows(tx, "webhook_owed", restColumns, 1, func(_ int, args []any) []any {
			return append(args, want.WebhookID, rest.ids[0], strings.Join(rest.ids, ","), len(rest.ids), rest.CreatedAt, rest.LockedBy)
		})
		if err != nil {
			return nil, false, err
		}
	}
	taken := make([]*models.Delivery, 0, len(evs))
	for _, e := range evs {
		chunk, ok := chunkOf[e.ID]
		if !ok {
			continue
		}
		taken = append(taken, &models.Delivery{ID: sqlcommon.OwedDeliveryID(e.ID, want.WebhookID), EventID: e.ID,
			WebhookID: want.WebhookID, EventType: e.Type, Status: models.StatusPending, NextAttemptAt: now.UnixMilli(),
			LockedUntil: until, LockedBy: owner, CreatedAt: now, UpdatedAt: now, Owed: &models.OwedDelivery{Chunk: chunk}})
	}
	return taken, more, nil
}

// lockOwedRows locks the webhook's oldest owed rows that no live lease holds, enough of them
// to list want.Rows events or all there are, with their lists read. Rows another replica's
// take or record holds at this moment are passed: it has them.
//
// A row lists up to owedChunk events, most of them that many, so the rows are read a page
// at a time, each sized for the events still wanted as if every row were full, until the
// events read are enough. Reading as many rows as events wanted (each holds one at least)
// locked about 25 times the rows a take leased: in the bench's batch phase, 54,144 rows
// locked where 2,188 were leased, each lock a write to the row and a WAL record.
func lockOwedRows(tx *gorm.DB, want storedriver.OwedQuota, now time.Time) ([]*owedRow, error) {
	var rows []*owedRow
	events, after := 0, ""
	for events < want.Rows {
		limit := (want.Rows-events+owedChunk-1)/owedChunk + 1
		var page []*owedRow
		if err := tx.Raw(`SELECT first_event, events, locked_by, created_at FROM webhook_owed
			WHERE webhook_id = ? AND locked_until < ? AND first_event > ? ORDER BY first_event LIMIT ? FOR UPDATE SKIP LOCKED`,
			want.WebhookID, now.UnixMilli(), after, limit).Scan(&page).Error; err != nil {
			return nil, err
		}
		for _, r := range page {
			r.ids = strings.Split(r.Events, ",")
			events += len(r.ids)
			after = r.FirstEvent
		}
		rows = append(rows, page...)
		if len(page) < limit {
			break
		}
	}
	return rows, nil
}

var restColumns = []string{"webhook_id", "first_event", "events", "count", "created_at", "locked_by"}

// drop removes the events in gone from the row's list.
func (r *owedRow) drop(gone map[string]bool) {
	n := len(r.ids)
	r.ids = slices.DeleteFunc(r.ids, func(e string) bool { return gone[e] })
	r.changed = r.changed || len(r.ids) != n
}
