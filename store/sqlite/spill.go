package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store/internal/sqlcommon"
	"github.com/hookrelay/hookrelay/store/storedriver"
	"gorm.io/gorm"
)

// Spilling keeps a saturated webhook from costing the writer a row per event.
//
// Publishing normally writes one pending delivery row per subscribed webhook. When a webhook
// cannot keep up (it hangs until the timeout, or is slower than the event rate), those rows
// pile up: fifty dead endpoints at 1,000 events/s are 50,000 inserts a second on the one
// SQLite writer, and every healthy webhook's events wait behind them. A spilled webhook
// instead owes every event after a position in the events table (its rowid, which on SQLite's
// single writer grows in commit order) that matches its subscription; publishing writes no
// row for it. The dispatcher takes owed events a chunk at a time, as the webhook frees
// capacity (TakeSpilled, take.go), and each one's row is written once, in its final state,
// when its attempt is recorded; the spill ends when nothing more is owed or in flight. Nothing
// is lost in between: the events and the spill position are durable, and the position moves
// only in the transactions that write the rows it passes.
//
// On PostgreSQL, concurrent writers commit out of id order, so a position in the events table
// cannot say which events are owed: that driver marks the events owed, and its takes list
// them by the ids of the transactions that wrote them (store/postgres/collect.go). When a spill starts is the same on both
// (sqlcommon.SpillPolicy).

// SpillWhenPending sets the backlog at which publishing spills a webhook (the engine's
// policy, sqlcommon.SpillPolicy).
func (s *Driver) SpillWhenPending(t storedriver.SpillThreshold) { s.spills.SpillWhenPending(t) }

// Spill makes the given enabled webhooks owe the events published from now on instead of
// getting a delivery row for each, in one transaction. It returns the ids spilled afterwards
// (none on PostgreSQL; a webhook gone or disabled is not spilled).
func (s *Driver) Spill(ctx context.Context, webhookIDs []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(webhookIDs) == 0 {
		return out, nil
	}
	err := s.Writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		now := time.Now().UTC()
		for _, id := range webhookIDs {
			if err := startSpill(tx, id, now); err != nil {
				return err
			}
		}
		var ids []string
		if err := tx.Raw(`SELECT webhook_id FROM webhook_spills WHERE webhook_id IN ?`, webhookIDs).Scan(&ids).Error; err != nil {
			return err
		}
		for _, id := range ids {
			out[id] = true
		}
		s.WebhooksChanged()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("spill webhooks: %w", err)
	}
	return out, nil
}

// startSpill spills an enabled webhook from the newest event on; a spilled one stays as it is.
func startSpill(tx *gorm.DB, webhookID string, now time.Time) error {
	err := tx.Exec(`INSERT INTO webhook_spills (webhook_id, after_seq, since)
		SELECT id, (SELECT COALESCE(MAX(rowid), 0) FROM events), ? FROM webhooks WHERE id = ? AND enabled
		ON CONFLICT (webhook_id) DO NOTHING`, now, webhookID).Error
	if err != nil {
		return fmt.Errorf("spill webhook %s: %w", webhookID, err)
	}
	return nil
}

// dropSpill ends a webhook's spill: what it still owed is not sent (the webhook was disabled
// or deleted, which cancels its pending deliveries too; a replay can send the events again).
// Callers invalidate the subscriber cache, which holds the spilled set.
func (s *Driver) dropSpill(tx *gorm.DB, webhookID string) error {
	if err := tx.Exec(`DELETE FROM webhook_spills WHERE webhook_id = ?`, webhookID).Error; err != nil {
		return fmt.Errorf("end spill: %w", err)
	}
	// Also when the transaction rolls back: the next take then starts again from the stored
	// position, which at worst sends again what was in flight.
	s.forgetTrack(webhookID)
	return nil
}

// Owed is what one spilled webhook owes.
type Owed struct {
	WebhookID    string
	SpilledSince time.Time
	Events       int64 // events matching its subscription after its position (when counted)
	OldestAt     int64 // unix ms the oldest of them was published; 0 when none (when counted)
}

// owed lists the spilled webhooks among ids (all of them when ids is nil) and, with count,
// what each owes. Like the pending count, counting costs as much as the backlog: callers
// should not count per request of a list.
func (s *Driver) owed(ctx context.Context, ids []string, count bool) ([]Owed, error) {
	var spills []struct {
		WebhookID string
		AfterSeq  int64
		Since     time.Time
		Events    string
	}
	db := s.Reader.WithContext(ctx)
	q := db.Table("webhook_spills AS sp").Select("sp.webhook_id, sp.after_seq, sp.since, w.events").
		Joins("JOIN webhooks w ON w.id = sp.webhook_id").Order("sp.webhook_id")
	if ids != nil {
		q = q.Where("sp.webhook_id IN ?", ids)
	}
	if err := q.Scan(&spills).Error; err != nil {
		return nil, fmt.Errorf("spilled webhooks: %w", err)
	}
	out := make([]Owed, 0, len(spills))
	for _, sp := range spills {
		o := Owed{WebhookID: sp.WebhookID, SpilledSince: sp.Since}
		if count {
			types := (&models.Webhook{Events: sp.Events}).EventList()
			var first []time.Time
			if err := db.Raw(`SELECT COUNT(*) FROM events WHERE `+owedWhere,
				sp.AfterSeq, false, types).Scan(&o.Events).Error; err != nil {
				return nil, fmt.Errorf("count owed events: %w", err)
			}
			if err := db.Raw(`SELECT created_at FROM events WHERE `+owedWhere+` ORDER BY rowid LIMIT 1`,
				sp.AfterSeq, false, types).Scan(&first).Error; err != nil {
				return nil, fmt.Errorf("oldest owed event: %w", err)
			}
			if len(first) > 0 {
				o.OldestAt = first[0].UnixMilli()
			}
		}
		out = append(out, o)
	}
	return out, nil
}

// Backlogs returns the spilled webhooks among ids with, when count is set, how many events
// each still owes. Webhooks not spilled are absent.
func (s *Driver) Backlogs(ctx context.Context, ids []string, count bool) (map[string]*storedriver.Backlog, error) {
	list, err := s.owed(ctx, ids, count)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*storedriver.Backlog, len(list))
	for _, o := range list {
		out[o.WebhookID] = sqlcommon.BacklogOf(o.SpilledSince, o.Events, count)
	}
	return out, nil
}

// RequestSpill asks the next publish to spill these webhooks (sqlcommon.SpillPolicy).
func (s *Driver) RequestSpill(webhookIDs []string) { s.spills.RequestSpill(webhookIDs) }

// spillBacklogged runs at the start of a publish transaction: when a dispatcher listens
// (OnQueued), it spills the webhooks whose pending deliveries reached the SpillWhenPending
// threshold (looking only at those that got that many rows since their last look), and
// returns the enabled webhooks and the spilled set the publish must skip. A spill made here
// starts before this transaction's events, so they are owed like any later ones.
func (s *Driver) spillBacklogged(tx *gorm.DB) (sqlcommon.PublishStart, error) {
	enabled, spilled, err := s.enabledAndSpilled(tx)
	if err != nil || !s.Listening() {
		// No dispatcher in this process to take what a spill would owe: spills made
		// explicitly still count, but backlogs start none.
		return sqlcommon.PublishStart{Spilled: spilled, Enabled: enabled}, err
	}
	toSpill, err := s.spills.ToSpill(tx, spilled)
	if err != nil {
		return sqlcommon.PublishStart{}, err
	}
	var started []string
	for _, id := range toSpill {
		if err := startSpill(tx, id, time.Now().UTC()); err != nil {
			return sqlcommon.PublishStart{}, err
		}
		started = append(started, id)
	}
	if len(started) == 0 {
		return sqlcommon.PublishStart{Spilled: spilled, Enabled: enabled}, nil
	}
	s.WebhooksChanged()
	enabled, spilled, err = s.enabledAndSpilled(tx)
	return sqlcommon.PublishStart{Spilled: spilled, Started: started, Enabled: enabled}, err
}
