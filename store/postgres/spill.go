package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"
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
// by the same policy as on SQLite, sqlcommon.SpillPolicy) instead gets nothing at publish:
// the publish marks the events it owes, and a take lists them in webhook_owed rows, per
// webhook, up to the transactions that have all ended (collect.go). SQLite's spill position
// cannot work here as it is: concurrent publishes commit out of id order, so no position in
// the events' ids separates what is owed from what is not; the ids of the transactions that
// wrote them can, once those have all ended.
//
// A take (TakeSpilled), once it has listed them, locks a webhook's oldest owed rows that no
// live lease holds, with FOR UPDATE SKIP LOCKED, and leases them to the taker (locked_by,
// locked_until), splitting the row that meets its quota: replicas taking the same webhook get
// disjoint events. The events go to the dispatcher as deliveries without rows (Delivery.Owed
// names the owed row), and the record of each attempt writes the delivery's row once, in its
// final state, and takes the event off its owed row (owed_record.go). So an event is owed until
// its attempt is recorded; a taker that dies leaves its rows leased until the lease runs out,
// when any replica takes them again, under the same delivery ids. A take writes no delivery
// rows: writing a leased row per event at the take and updating it at the record cost two
// writes to every index of deliveries, and was what limited PostgreSQL's throughput once
// webhooks spill.
//
// Ending a spill must not strand an owed event written by a publish that still thought the
// webhook spilled. A publish holds a shared advisory lock per spilled webhook it owes to
// until it commits, taken before the read of the spilled set it acts on; ending a spill (or
// dropping it with its webhook) takes the lock exclusively, so it waits for those publishes
// and then sees their owed events; a take ends a spill only if it gets that lock at once. Locks
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
func (d *Driver) beginPublish(tx *gorm.DB, events int) (sqlcommon.PublishStart, error) {
	locked := *d.spilledSeen.Load()
	noTx := !inTx(tx)
	if noTx && d.Listening() && d.spills.Asked() {
		return sqlcommon.PublishStart{}, errNeedsTx // a spill to start: its rows need one
	}
	if len(locked) > 0 {
		// Without a transaction only the insert can take the locks, before its check
		// (publish_cache.go): only with the cache, and with no spill to start.
		if noTx && (d.spills.Asked() || d.cached(tx, locked) == nil) {
			return sqlcommon.PublishStart{}, errNeedsTx
		}
		if !noTx {
			if err := lockSpills(tx, locked, true); err != nil {
				return sqlcommon.PublishStart{}, fmt.Errorf("lock spills: %w", err)
			}
		}
	}
	// Without a dispatcher in this process, nothing here would take what a backlog's spill
	// owed: spills made explicitly count, backlogs start none (as on SQLite).
	listening := d.Listening()
	var check sqlcommon.BacklogCheck
	if listening {
		check = d.spills.TakeChecks()
	}
	var enabled []*models.Webhook
	var read []string
	var backlogs map[string]sqlcommon.Backlog
	var guard int64
	var look sqlcommon.BacklogCheck
	c := d.cachedSubscribers(tx, locked)
	if c != nil && len(check.IDs) > 0 && events >= d.spills.LookEvery() {
		// A look made by the insert spills with the next publish, after this one's rows. A
		// publish of a look's interval of events or more looks here, before its rows, and
		// spills at once.
		c = nil
	}
	if c == nil && noTx && len(locked) > 0 {
		d.spills.Unlook(check.IDs)
		return sqlcommon.PublishStart{}, errNeedsTx // a spill asked for meanwhile, or a look to make here
	}
	if c != nil {
		enabled, read, guard = c.enabled, c.spilled, c.gen // spilled is locked
		// The backlogs due for a look are looked at by the insert (publish_cache.go).
		look = check
		look.IDs = slices.DeleteFunc(slices.Clone(check.IDs), func(id string) bool {
			_, spilled := slices.BinarySearch(read, id)
			return spilled
		})
	} else {
		var gen int64
		var err error
		if enabled, read, backlogs, gen, err = enabledWithSpills(tx, check); err != nil {
			return sqlcommon.PublishStart{}, err
		}
		slices.Sort(read) // in Go's order for the searches below; a collation could order some ids otherwise
		d.readSubscribers(gen, enabled, read)
	}
	if !slices.Equal(read, locked) {
		d.spilledSeen.Store(&read)
	}
	var started []string
	var err error
	if listening {
		readSet := make(map[string]bool, len(read))
		for _, id := range read {
			readSet[id] = true
		}
		toSpill := d.spills.Decide(backlogs, readSet)
		if len(toSpill) > 0 && c != nil {
			// Asked for while this publish took the cache (which it does only when none is):
			// the next one reads and starts them.
			d.spills.RequestSpill(toSpill)
			toSpill = nil
		}
		if len(toSpill) > 0 && !inTx(tx) {
			// Asked for again: the run inside a transaction decides them anew.
			d.spills.RequestSpill(toSpill)
			return sqlcommon.PublishStart{}, errNeedsTx
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
	out := sqlcommon.PublishStart{Started: started, Enabled: enabled, Guard: guard, Look: look}
	if noTx {
		out.Locks = locked
	}
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
// the order their locks are taken in), the backlogs that check asks to look at, and the
// generation of webhooks it read (0 when it read none; publish_cache.go). A disabled
// webhook's spill does not matter to a publish, which writes nothing for it; disabling one
// drops its spill. Of each webhook it reads what a publish uses, its id and subscription,
// scanned by hand: gorm's scan of whole rows (secrets, times) was an eighth of all CPU with 51
// webhooks at 1,000 publishes/s.
//
// The backlogs are part of the same statement: a publish looks at a webhook's backlog once per
// 32 rows it writes for it, and as statements of their own the looks were about two round
// trips in each group transaction of single publishes with four webhooks, 0.33 ms apiece
// (statement times summed by a pgx tracer), on the path every publish waits behind.
func enabledWithSpills(tx *gorm.DB, check sqlcommon.BacklogCheck) (enabled []*models.Webhook, spilled []string, backlogs map[string]sqlcommon.Backlog, gen int64, err error) {
	q, args := `SELECT w.id, w.events, sp.webhook_id IS NOT NULL, 0, 0, `+generationSQL+` FROM webhooks w
		LEFT JOIN webhook_spills sp ON sp.webhook_id = w.id WHERE w.enabled ORDER BY w.id`, []any(nil)
	if len(check.IDs) > 0 {
		// The look is the one ToSpill makes on SQLite, for the listed webhooks only: the
		// condition on w.id alone is tested before the index is read.
		q, args = webhooksAndBacklogsSQL, []any{check.IDs, check.DueBefore, check.Limit}
	}
	rows, err := tx.Statement.ConnPool.QueryContext(tx.Statement.Context, q, args...)
	if err != nil {
		return nil, nil, nil, 0, fmt.Errorf("webhooks and spills: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		w := &models.Webhook{Enabled: true}
		var isSpilled bool
		var b sqlcommon.Backlog
		if err := rows.Scan(&w.ID, &w.Events, &isSpilled, &b.Pending, &b.Due, &gen); err != nil {
			return nil, nil, nil, 0, fmt.Errorf("webhooks and spills: %w", err)
		}
		enabled = append(enabled, w)
		if isSpilled {
			spilled = append(spilled, w.ID)
		}
		if slices.Contains(check.IDs, w.ID) {
			if backlogs == nil {
				backlogs = map[string]sqlcommon.Backlog{}
			}
			backlogs[w.ID] = b
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, nil, 0, fmt.Errorf("webhooks and spills: %w", err)
	}
	return enabled, spilled, backlogs, gen, nil
}

// webhooksAndBacklogsSQL is enabledWithSpills's statement when it looks at backlogs: $1 the
// webhooks whose backlogs to count, $2 the time before which a delivery counts as due, $3 the
// most deliveries to count of each.
const webhooksAndBacklogsSQL = `SELECT w.id, w.events, sp.webhook_id IS NOT NULL, b.pending, b.due, ` + generationSQL + ` FROM webhooks w
	LEFT JOIN webhook_spills sp ON sp.webhook_id = w.id
	CROSS JOIN LATERAL (SELECT COUNT(*) AS pending, COUNT(*) FILTER (WHERE x.next_attempt_at <= $2) AS due
		FROM (SELECT d.next_attempt_at FROM deliveries d
			WHERE w.id = ANY($1::text[]) AND d.webhook_id = w.id AND d.status = 'pending'
			ORDER BY d.next_attempt_at LIMIT $3) AS x) AS b
	WHERE w.enabled ORDER BY w.id`

// dropSpill ends a webhook's spill without sending what it still owed (it was disabled or
// deleted, which cancels its pending deliveries too; a replay can send the events again).
func dropSpill(tx *gorm.DB, webhookID string) error {
	if err := lockSpills(tx, []string{webhookID}, false); err != nil {
		return fmt.Errorf("end spill: %w", err)
	}
	// The spill's row first: a take listing owed rows holds it, and the owed rows it adds
	// must be there for the DELETE below to see (collect.go).
	if err := tx.Exec(`SELECT 1 FROM webhook_spills WHERE webhook_id = ? FOR UPDATE`, webhookID).Error; err != nil {
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
