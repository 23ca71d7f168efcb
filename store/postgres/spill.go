package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store/internal/sqlcommon"
	"github.com/hookrelay/hookrelay/store/storedriver"
	"gorm.io/gorm"
)

// Spilling on PostgreSQL.
//
// A webhook that cannot keep up would otherwise cost a delivery row per event at publish:
// fifty hanging endpoints at 1,000 events/s are 50,000 inserts a second, and the healthy
// webhooks' deliveries wait behind them. A spilled webhook (a row in webhook_spills, started
// by the same policy as on SQLite, sqlcommon.SpillPolicy) instead gets, per publish
// transaction, one row in webhook_owed listing the events it owes. SQLite's spill position
// cannot work here: concurrent publishes commit out of id order, so no position in the events
// table separates what is owed from what is not.
//
// A take (TakeSpilled) locks a webhook's oldest owed rows that no live lease holds, with FOR
// UPDATE SKIP LOCKED, and leases them to the taker (locked_by, locked_until), splitting the
// row that meets its quota: replicas taking the same webhook get disjoint events. The events
// go to the dispatcher as deliveries without rows (Delivery.Owed names the owed row), and the
// record of each attempt writes the delivery's row once, in its final state, and takes the
// event off its owed row (owed_record.go). So an event is owed until its attempt is recorded;
// a taker that dies leaves its rows leased until the lease runs out, when any replica takes
// them again, under the same delivery ids. A take writes no delivery rows: writing a leased
// row per event at the take and updating it at the record cost two writes to every index of
// deliveries, and was what limited PostgreSQL's throughput once webhooks spill.
//
// Ending a spill must not strand an owed row written by a publish that still thought the
// webhook spilled. A publish holds a shared advisory lock per spilled webhook it owes to
// until it commits, taken before the read of the spilled set it acts on; ending a spill (or
// dropping it with its webhook) takes the lock exclusively, so it waits for those publishes
// and then sees their owed rows; a take ends a spill only if it gets that lock at once. Locks
// are taken in id order, so publishes and ends cannot wait for each other in a cycle.

// spillLockClass is the first key of the advisory locks on spills (the second is a hash of
// the webhook id), apart from the single-key locks of jobs and migrations.
const spillLockClass = 0x68727370

// spillStartClass keys the locks a publish takes on the spills it starts (see
// claimSpillStarts).
const spillStartClass = 0x68727374

// takeLease is the lease of taken deliveries when the request gives none.
const takeLease = 5 * time.Minute

// SpillWhenPending sets the backlog at which publishing spills a webhook (sqlcommon.SpillPolicy).
func (d *Driver) SpillWhenPending(t storedriver.SpillThreshold) { d.spills.SpillWhenPending(t) }

// RequestSpill asks the next publish of this process to spill these webhooks.
func (d *Driver) RequestSpill(webhookIDs []string) { d.spills.RequestSpill(webhookIDs) }

// Spill makes the given enabled webhooks owe the events published from now on, and returns
// the ids spilled afterwards.
func (d *Driver) Spill(ctx context.Context, webhookIDs []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(webhookIDs) == 0 {
		return out, nil
	}
	ids := slices.Sorted(slices.Values(webhookIDs))
	err := d.Writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if _, err := startSpills(tx, slices.Compact(ids), time.Now().UTC()); err != nil {
			return err
		}
		var spilled []string
		if err := tx.Raw(`SELECT webhook_id FROM webhook_spills WHERE webhook_id IN ?`, ids).Scan(&spilled).Error; err != nil {
			return err
		}
		for _, id := range spilled {
			out[id] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("spill webhooks: %w", err)
	}
	d.noteSpilled(slices.Collect(maps.Keys(out)))
	return out, nil
}

// noteSpilled adds spills this process started to those the next publish locks first
// (beginPublish), so that it owes them its events already.
func (d *Driver) noteSpilled(ids []string) {
	if len(ids) == 0 {
		return
	}
	for {
		old := d.spilledSeen.Load()
		merged := slices.Concat(*old, ids)
		slices.Sort(merged)
		merged = slices.Compact(merged)
		if len(merged) == len(*old) || d.spilledSeen.CompareAndSwap(old, &merged) {
			return
		}
	}
}

// startSpills spills the enabled webhooks among ids (sorted), and returns those this
// transaction spilled; one spilled already stays as it is. The rows go in in id order, so
// two transactions spilling overlapping sets wait for each other at most one way.
func startSpills(tx *gorm.DB, ids []string, now time.Time) ([]string, error) {
	var started []string
	err := tx.Raw(`INSERT INTO webhook_spills (webhook_id, after_seq, since)
		SELECT id, 0, ? FROM webhooks WHERE id IN ? AND enabled ORDER BY id
		ON CONFLICT (webhook_id) DO NOTHING RETURNING webhook_id`, now, ids).Scan(&started).Error
	if err != nil {
		return nil, fmt.Errorf("start spills: %w", err)
	}
	return started, nil
}

// claimSpillStarts keeps, of the webhooks (ids sorted) a publish is about to spill, those no
// other transaction is spilling at this moment. Publishers that all see the same backlog
// decide to spill the same webhooks together, and the second insert of a spill's row waits
// for the first transaction to end (it cannot tell a conflict before): with 32 publishers,
// a spill's start held a queue of publishes for tens of milliseconds. A publish that finds
// the start taken writes its rows as if the webhook were not spilled yet, which is what any
// publish that read the spilled set a moment earlier does.
func claimSpillStarts(tx *gorm.DB, ids []string) ([]string, error) {
	var mine []string
	err := scanStrings(tx, `SELECT k FROM unnest($2::text[]) AS u(k) WHERE pg_try_advisory_xact_lock($1, hashtext(k))`,
		[]any{spillStartClass, ids}, func(id string) { mine = append(mine, id) })
	if err != nil {
		return nil, fmt.Errorf("claim spill starts: %w", err)
	}
	return mine, nil
}

// lockSpills takes the advisory locks of the webhooks' spills (ids sorted): shared by a
// publish that owes them events, exclusive by what drops a spill (a take ending one only tries
// it).
func lockSpills(tx *gorm.DB, ids []string, shared bool) error {
	fn := "pg_advisory_xact_lock"
	if shared {
		fn += "_shared"
	}
	// unnest yields the ids in array order, and each row's lock is taken as it is produced.
	// Straight to the connection, so the ids go as one array (gorm would expand them).
	_, err := tx.Statement.ConnPool.ExecContext(tx.Statement.Context,
		`SELECT `+fn+`($1, hashtext(k)) FROM unnest($2::text[]) AS u(k)`, spillLockClass, ids)
	return err
}

// beginPublish returns the spilled webhooks a publish owes its events to instead of writing
// rows, holding their spills' shared locks until it commits, the spills it started, and the
// enabled webhooks. The webhooks come with the spills in one read (enabledWithSpills), taken
// after the locks of the spills the previous publish found (Driver.spilledSeen), so the read
// shows each of those as of a moment when it cannot end before this commits. A spill that
// started since holds no lock of this publish, which writes rows for it as a publish a moment
// earlier would have; the next publish locks it first. (Reading, locking what was found and
// reading again cost every publish a read of every webhook more while any was spilled, which
// under a backlog or with endpoints hanging is most of the time.)
func (d *Driver) beginPublish(tx *gorm.DB) (sqlcommon.PublishStart, error) {
	locked := *d.spilledSeen.Load()
	if len(locked) > 0 {
		if err := lockSpills(tx, locked, true); err != nil {
			return sqlcommon.PublishStart{}, fmt.Errorf("lock spills: %w", err)
		}
	}
	enabled, read, err := enabledWithSpills(tx)
	if err != nil {
		return sqlcommon.PublishStart{}, err
	}
	slices.Sort(read) // in Go's order for the searches below; a collation could order some ids otherwise
	if !slices.Equal(read, locked) {
		d.spilledSeen.Store(&read)
	}
	var started []string
	if d.Listening() {
		// Without a dispatcher in this process, nothing here would take what a backlog's
		// spill owed: spills made explicitly count, backlogs start none (as on SQLite).
		readSet := make(map[string]bool, len(read))
		for _, id := range read {
			readSet[id] = true
		}
		toSpill, err := d.spills.ToSpill(tx, readSet)
		if err != nil {
			return sqlcommon.PublishStart{}, err
		}
		if len(toSpill) > 0 {
			if toSpill, err = claimSpillStarts(tx, toSpill); err != nil {
				return sqlcommon.PublishStart{}, err
			}
		}
		if len(toSpill) > 0 {
			if started, err = startSpills(tx, toSpill, time.Now().UTC()); err != nil {
				return sqlcommon.PublishStart{}, err
			}
		}
	}
	d.noteSpilled(started)
	out := sqlcommon.PublishStart{Started: started, Enabled: enabled}
	owes := slices.Concat(started, slices.DeleteFunc(slices.Clone(read), func(id string) bool { // read is kept as spilledSeen
		_, held := slices.BinarySearch(locked, id)
		return !held
	}))
	if len(owes) > 0 {
		out.Spilled = make(map[string]bool, len(owes))
		for _, id := range owes {
			out.Spilled[id] = true
		}
	}
	return out, nil
}

// enabledWithSpills reads the enabled webhooks and which of them are spilled (in id order,
// the order their locks are taken in). A disabled webhook's spill does not matter to a
// publish, which writes nothing for it; disabling one drops its spill. Of each webhook it
// reads what a publish uses, its id and subscription, scanned by hand: gorm's scan of whole
// rows (secrets, times) was an eighth of all CPU with 51 webhooks at 1,000 publishes/s.
func enabledWithSpills(tx *gorm.DB) ([]*models.Webhook, []string, error) {
	rows, err := tx.Statement.ConnPool.QueryContext(tx.Statement.Context,
		`SELECT w.id, w.events, sp.webhook_id IS NOT NULL FROM webhooks w
		LEFT JOIN webhook_spills sp ON sp.webhook_id = w.id WHERE w.enabled ORDER BY w.id`)
	if err != nil {
		return nil, nil, fmt.Errorf("webhooks and spills: %w", err)
	}
	defer rows.Close()
	var enabled []*models.Webhook
	var spilled []string
	for rows.Next() {
		w := &models.Webhook{Enabled: true}
		var isSpilled bool
		if err := rows.Scan(&w.ID, &w.Events, &isSpilled); err != nil {
			return nil, nil, fmt.Errorf("webhooks and spills: %w", err)
		}
		enabled = append(enabled, w)
		if isSpilled {
			spilled = append(spilled, w.ID)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("webhooks and spills: %w", err)
	}
	return enabled, spilled, nil
}

var owedColumns = []string{"webhook_id", "first_event", "events", "count", "created_at"}

// owedRows are one webhook_owed row per spilled webhook a publish owes events to, in id
// order.
func owedRows(owed map[string][]string, now time.Time) sqlcommon.Rows {
	hooks := slices.Sorted(maps.Keys(owed))
	return sqlcommon.Rows{Table: "webhook_owed", Cols: owedColumns, N: len(hooks), Row: func(i int, args []any) []any {
		evs := owed[hooks[i]]
		return append(args, hooks[i], evs[0], strings.Join(evs, ","), len(evs), now)
	}}
}

// dropSpill ends a webhook's spill without sending what it still owed (it was disabled or
// deleted, which cancels its pending deliveries too; a replay can send the events again).
func dropSpill(tx *gorm.DB, webhookID string) error {
	if err := lockSpills(tx, []string{webhookID}, false); err != nil {
		return fmt.Errorf("end spill: %w", err)
	}
	if err := tx.Exec(`DELETE FROM webhook_owed WHERE webhook_id = ?`, webhookID).Error; err != nil {
		return fmt.Errorf("end spill: %w", err)
	}
	if err := tx.Exec(`DELETE FROM webhook_spills WHERE webhook_id = ?`, webhookID).Error; err != nil {
		return fmt.Errorf("end spill: %w", err)
	}
	return nil
}

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
	wants := slices.SortedFunc(slices.Values(r.Hooks), func(a, b storedriver.OwedQuota) int {
		return strings.Compare(a.WebhookID, b.WebhookID)
	})
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

// tryEndSpill ends a webhook's spill if it owes nothing (taken or not) and no publish holds
// the spill's lock at this moment; it never waits for the lock.
func tryEndSpill(tx *gorm.DB, webhookID string) (bool, error) {
	var free bool
	if err := tx.Raw(`SELECT pg_try_advisory_xact_lock(?, hashtext(?))`, spillLockClass, webhookID).
		Scan(&free).Error; err != nil {
		return false, err
	}
	if !free {
		return false, nil
	}
	res := tx.Exec(`DELETE FROM webhook_spills WHERE webhook_id = ?
		AND NOT EXISTS (SELECT 1 FROM webhook_owed WHERE webhook_id = ?)`, webhookID, webhookID)
	return res.RowsAffected > 0, res.Error
}

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
	// Each owed row holds one event at least, so this many rows hold enough. Rows another
	// replica's take or record holds at this moment are passed: it has them.
	var rows []*owedRow
	if err := tx.Raw(`SELECT first_event, events, locked_by, created_at FROM webhook_owed
		WHERE webhook_id = ? AND locked_until < ? ORDER BY first_event LIMIT ? FOR UPDATE SKIP LOCKED`,
		want.WebhookID, now.UnixMilli(), want.Rows).Scan(&rows).Error; err != nil {
		return nil, false, err
	}
	var again []string // owed delivery ids of rows leased before, whose lease ran out or was given up
	for _, r := range rows {
		r.ids = strings.Split(r.Events, ",")
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

var restColumns = []string{"webhook_id", "first_event", "events", "count", "created_at", "locked_by"}

// drop removes the events in gone from the row's list.
func (r *owedRow) drop(gone map[string]bool) {
	n := len(r.ids)
	r.ids = slices.DeleteFunc(r.ids, func(e string) bool { return gone[e] })
	r.changed = r.changed || len(r.ids) != n
}

// Backlogs returns the spilled webhooks among ids (all with ids nil) with, when count is set,
// how many events each still owes.
func (d *Driver) Backlogs(ctx context.Context, ids []string, count bool) (map[string]*storedriver.Backlog, error) {
	var rows []struct {
		WebhookID string
		Since     time.Time
		Owed      int64
	}
	q := `SELECT sp.webhook_id, sp.since, 0 AS owed FROM webhook_spills sp`
	if count {
		q = `SELECT sp.webhook_id, sp.since, COALESCE((SELECT SUM(o.count) FROM webhook_owed o
			WHERE o.webhook_id = sp.webhook_id), 0) AS owed FROM webhook_spills sp`
	}
	var args []any
	if ids != nil {
		q += ` WHERE sp.webhook_id IN ?`
		args = append(args, ids)
	}
	if err := d.Reader.WithContext(ctx).Raw(q, args...).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("spilled webhooks: %w", err)
	}
	out := make(map[string]*storedriver.Backlog, len(rows))
	for _, r := range rows {
		out[r.WebhookID] = sqlcommon.BacklogOf(r.Since, r.Owed, count)
	}
	return out, nil
}

// PendingCounts adds to the rows the shared count finds the events each webhook owes.
func (d *Driver) PendingCounts(ctx context.Context, ids []string) (map[string]int64, error) {
	out, err := d.Base.PendingCounts(ctx, ids)
	if err != nil || len(ids) == 0 {
		return out, err
	}
	var rows []struct {
		WebhookID string
		N         int64
	}
	if err := d.Reader.WithContext(ctx).Raw(`SELECT webhook_id, SUM(count) AS n FROM webhook_owed
		WHERE webhook_id IN ? GROUP BY webhook_id`, ids).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("count owed deliveries: %w", err)
	}
	for _, r := range rows {
		out[r.WebhookID] += r.N
	}
	return out, nil
}

// QueueStats adds the spills and what they owe to the shared count.
func (d *Driver) QueueStats(ctx context.Context) (storedriver.QueueStats, error) {
	st, err := d.Base.QueueStats(ctx)
	if err != nil {
		return st, err
	}
	var owed struct {
		Spilled int64
		Owed    int64
		Oldest  *time.Time
	}
	if err := d.Reader.WithContext(ctx).Raw(`SELECT (SELECT COUNT(*) FROM webhook_spills) AS spilled,
		COALESCE(SUM(count), 0) AS owed, MIN(created_at) AS oldest FROM webhook_owed`).Scan(&owed).Error; err != nil {
		return st, fmt.Errorf("count owed deliveries: %w", err)
	}
	st.Spilled, st.Owed = owed.Spilled, owed.Owed
	if owed.Oldest != nil {
		if at := owed.Oldest.UnixMilli(); st.OldestDue == 0 || at < st.OldestDue {
			st.OldestDue = at
		}
	}
	return st, nil
}

// owedEvents is the events owed, one row per webhook and event, for the owed view.
const owedEvents = `SELECT o.webhook_id, e.id, e.type, e.created_at FROM webhook_owed o
	CROSS JOIN LATERAL unnest(string_to_array(o.events, ',')) AS u(eid) JOIN events e ON e.id = u.eid`

type owedEvent struct {
	WebhookID string
	ID        string
	Type      string
	CreatedAt time.Time
}

func (e owedEvent) delivery() *models.Delivery {
	return &models.Delivery{ID: sqlcommon.OwedDeliveryID(e.ID, e.WebhookID), EventID: e.ID, WebhookID: e.WebhookID,
		EventType: e.Type, Status: models.StatusPending, CreatedAt: e.CreatedAt, UpdatedAt: e.CreatedAt,
		Owed: &models.OwedDelivery{}}
}

// listOwed returns, newest first, up to limit+2 owed deliveries that match f and sort before
// the cursor (a delivery id; empty for the first page). They are shown as the pending rows a
// take will write, under the same ids.
func (d *Driver) listOwed(ctx context.Context, f storedriver.DeliveryFilter, cursor string, limit int) ([]*models.Delivery, error) {
	if f.Status != "" && f.Status != models.StatusPending {
		return nil, nil
	}
	q, args := owedEvents+` WHERE true`, []any{}
	if f.WebhookID != "" {
		q += ` AND o.webhook_id = ?`
		args = append(args, f.WebhookID)
	}
	if f.EventType != "" {
		q += ` AND e.type = ?`
		args = append(args, f.EventType)
	}
	if f.EventID != "" {
		q += ` AND o.events LIKE ? AND u.eid = ?`
		args = append(args, "%"+f.EventID+"%", f.EventID)
	}
	if len(cursor) >= 20 {
		// An owed delivery's id begins with its event's (see OwedDeliveryID).
		q += ` AND u.eid < ?`
		args = append(args, "evt_"+cursor[4:20]+"g")
	}
	q += ` ORDER BY e.id DESC LIMIT ?`
	args = append(args, limit+2)
	var evs []owedEvent
	if err := d.Reader.WithContext(ctx).Raw(q, args...).Scan(&evs).Error; err != nil {
		return nil, fmt.Errorf("list owed deliveries: %w", err)
	}
	var out []*models.Delivery
	for _, e := range evs {
		if dl := e.delivery(); cursor == "" || dl.ID < cursor {
			out = append(out, dl)
		}
	}
	return out, nil
}

// getOwed finds the owed delivery with the given id, or returns models.ErrNotFound.
func (d *Driver) getOwed(ctx context.Context, id string) (*models.Delivery, error) {
	if len(id) != 36 || !strings.HasPrefix(id, "dlv_") {
		return nil, models.ErrNotFound
	}
	prefix := "evt_" + id[4:20]
	var evs []owedEvent
	if err := d.Reader.WithContext(ctx).Raw(owedEvents+` WHERE u.eid >= ? AND u.eid < ?`, prefix, prefix+"g").
		Scan(&evs).Error; err != nil {
		return nil, fmt.Errorf("get owed delivery: %w", err)
	}
	for _, e := range evs {
		if dl := e.delivery(); dl.ID == id {
			return dl, nil
		}
	}
	return nil, models.ErrNotFound
}
