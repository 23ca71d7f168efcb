package sqlcommon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"gorm.io/gorm"
)

// GetDelivery reads one delivery.
func (s *Base) GetDelivery(ctx context.Context, id string) (*models.Delivery, error) {
	var d models.Delivery
	err := s.Reader.WithContext(ctx).Where("id = ?", id).Take(&d).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return s.hooks.GetOwed(ctx, id)
	}
	if err != nil {
		return nil, fmt.Errorf("get delivery: %w", err)
	}
	return &d, nil
}

// ListDeliveries returns one page of deliveries, newest first.
func (s *Base) ListDeliveries(ctx context.Context, f DeliveryFilter, p models.Page) ([]*models.Delivery, string, error) {
	q := s.Reader.WithContext(ctx).Order("id DESC").Limit(p.Limit + 1)
	if f.WebhookID != "" {
		q = q.Where("webhook_id = ?", f.WebhookID)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.EventType != "" {
		q = q.Where("event_type = ?", f.EventType)
	}
	if f.EventID != "" {
		q = q.Where("event_id = ?", f.EventID)
	}
	if f.NoTests {
		q = q.Where("test = ?", false) // owed deliveries are never tests
	}
	if p.Cursor != "" {
		q = q.Where("id < ?", p.Cursor)
	}
	var list []*models.Delivery
	if err := q.Find(&list).Error; err != nil {
		return nil, "", fmt.Errorf("list deliveries: %w", err)
	}
	owed, err := s.hooks.ListOwed(ctx, f, p.Cursor, p.Limit)
	if err != nil {
		return nil, "", err
	}
	list, next := pageOf(mergeNewestFirst(list, owed), p.Limit, func(d *models.Delivery) string { return d.ID })
	return list, next, nil
}

// ListAttempts returns a delivery's attempts in order.
func (s *Base) ListAttempts(ctx context.Context, deliveryID string) ([]*models.Attempt, error) {
	var list []*models.Attempt
	if err := s.Reader.WithContext(ctx).Where("delivery_id = ?", deliveryID).Order("number").Find(&list).Error; err != nil {
		return nil, fmt.Errorf("list attempts: %w", err)
	}
	return list, nil
}

// RequeueDelivery makes a delivery due now again (manual redelivery): same event, same body,
// same message id, the next attempt number.
func (s *Base) RequeueDelivery(ctx context.Context, id string) (*models.Delivery, error) {
	now := time.Now().UTC()
	if s.hooks.Leased(id, now.UnixMilli()) {
		return nil, fmt.Errorf("%w: the delivery is being attempted right now", models.ErrConflict)
	}
	res := s.Writer.WithContext(ctx).Exec(`UPDATE deliveries SET status = 'pending', next_attempt_at = ?, updated_at = ?
		WHERE id = ? AND test = ? AND NOT (status = 'pending' AND locked_until > ?)`, now.UnixMilli(), now, id, false, now.UnixMilli())
	if res.Error != nil {
		return nil, fmt.Errorf("requeue delivery: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		d, err := s.GetDelivery(ctx, id)
		if err != nil {
			return nil, err
		}
		if d.Test {
			return nil, fmt.Errorf("%w: test deliveries cannot be redelivered; use the webhook's test action", models.ErrConflict)
		}
		if d.Owed != nil {
			return nil, fmt.Errorf("%w: the delivery has not been attempted yet: its webhook fell behind, and it is sent in order as the endpoint catches up", models.ErrConflict)
		}
		return nil, fmt.Errorf("%w: the delivery is being attempted right now", models.ErrConflict)
	}
	d, err := s.GetDelivery(ctx, id)
	if err == nil {
		s.queued(Queued{Due: map[string]int64{d.WebhookID: d.NextAttemptAt}})
	}
	return d, err
}

// RecordResults writes a batch of attempt results in one transaction (group commit). A
// delivery cancelled or deleted meanwhile keeps its state: the status update only applies to
// a delivery still pending. The outcomes go in one bulk statement (see JSONRows) and the
// attempt rows in multi-row inserts: the cost of a result is a few row writes, not a few
// statements.
func (s *Base) RecordResults(ctx context.Context, results []models.Result) error {
	if len(results) == 0 {
		return nil
	}
	now := time.Now().UTC()
	var owed []models.Result
	for _, r := range results {
		if r.Owed != nil {
			owed = append(owed, r)
		}
	}
	var applyOwed func()
	var health map[string]bool // the webhooks' health the transaction wrote
	err := s.recorder.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := s.hooks.BeginRecord(tx, results); err != nil {
			return fmt.Errorf("record deliveries: %w", err)
		}
		written := map[string]bool{}
		if len(owed) > 0 {
			var err error
			if written, applyOwed, err = s.hooks.RecordOwed(tx, owed, now); err != nil {
				return err
			}
		}
		sent := make([]models.Result, 0, len(results))
		for _, r := range results {
			if r.Owed != nil {
				if r.Attempt != nil && written[r.DeliveryID] {
					sent = append(sent, r)
				}
				continue
			}
			if r.Attempt != nil {
				sent = append(sent, r)
				continue
			}
			if err := tx.Exec(`UPDATE deliveries SET status = ?, next_attempt_at = 0, locked_until = 0, locked_by = '', updated_at = ?
				WHERE id = ? AND status = 'pending'`, r.Status, now, r.DeliveryID).Error; err != nil {
				return fmt.Errorf("record delivery %s: %w", r.DeliveryID, err)
			}
		}
		updated := written // rows written in their final state need no update
		var rowed []models.Result
		for _, r := range sent {
			if r.Owed == nil {
				rowed = append(rowed, r)
			}
		}
		for from := 0; from < len(rowed); from += MaxBulkRows {
			ids, err := s.updateDelivered(tx, rowed[from:min(from+MaxBulkRows, len(rowed))], now)
			if err != nil {
				return err
			}
			for _, id := range ids {
				updated[id] = true
			}
		}
		attempts := make([]*models.Attempt, 0, len(sent))
		type hookState struct{ success, failure bool }
		hooks := map[string]*hookState{}
		for _, r := range sent {
			if !updated[r.DeliveryID] {
				// Cancelled while in flight: the status stays, but the attempt was made and
				// belongs in the log and the count. Deleted with its webhook: an attempt row
				// would be an orphan that nothing shows or prunes.
				res := tx.Exec(`UPDATE deliveries SET attempt_count = ?, updated_at = ? WHERE id = ?`,
					r.Attempt.Number, now, r.DeliveryID)
				if res.Error != nil {
					return fmt.Errorf("record delivery %s: %w", r.DeliveryID, res.Error)
				}
				if res.RowsAffected == 0 {
					continue
				}
			}
			attempts = append(attempts, r.Attempt)
			h := hooks[r.WebhookID]
			if h == nil {
				h = &hookState{}
				hooks[r.WebhookID] = h
			}
			if r.Succeeded {
				h.success = true
			} else {
				h.failure = true
			}
			if r.DisableReason != "" {
				if err := tx.Exec(`UPDATE webhooks SET enabled = ?, disabled_reason = ?, updated_at = ? WHERE id = ?`,
					false, r.DisableReason, now, r.WebhookID).Error; err != nil {
					return err
				}
				s.WebhooksChanged()
				if err := s.cancelPending(tx, r.WebhookID, r.DisableReason); err != nil {
					return err
				}
			}
		}
		if err := s.hooks.InsertAttempts(tx, attempts, ActivityRows(attempts)); err != nil {
			return err
		}
		// Last in the transaction and in id order: on PostgreSQL replicas record at the same
		// time, and these rows are shared by all of them; in one order, their transactions
		// queue for the rows instead of deadlocking. A success refreshes last_success_at at
		// most once a second, so most batches do not lock the row at all; and a state this
		// process wrote less than a second ago is not sent again (healthMarks).
		ids := make([]string, 0, len(hooks))
		for id := range hooks {
			if !s.health.current(id, hooks[id].success, now) {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		health = make(map[string]bool, len(ids))
		for _, id := range ids {
			health[id] = hooks[id].success
		}
		return s.writeHealth(tx, ids, health, now)
	})
	if err != nil {
		return err
	}
	s.health.wrote(health, now)
	if applyOwed != nil {
		applyOwed()
	}
	s.hooks.Recorded(results)
	return nil
}

// writeHealth writes the health of the webhooks ids (sorted) in one statement: a success
// (health[id]) clears failing_since and refreshes last_success_at if a second old; a failure
// sets failing_since if not set. It was a statement per webhook: with 50 endpoints timing out
// together, a record of their failures sent 50 (docs/performance.md). The rows are locked in
// the order given, the JSON rows' (PostgreSQL's record connections join by nested loops only,
// hooks.go recordPlan).
func (s *Base) writeHealth(tx *gorm.DB, ids []string, health map[string]bool, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	data := NewJSONRows(40 * len(ids))
	for _, id := range ids {
		data.Row()
		data.Str(id)
		ok := int64(0)
		if health[id] {
			ok = 1
		}
		data.Int(ok)
	}
	if err := tx.Exec(HealthSQL(s.hooks), now, now, data.String(), now.Add(-time.Second)).Error; err != nil {
		return fmt.Errorf("record webhook health: %w", err)
	}
	return nil
}

// HealthSQL is writeHealth's statement for a driver; its arguments are the time twice, the
// rows as JSON (id, 1 for a success or 0), and the time a second earlier.
func HealthSQL(h Hooks) string {
	ok := h.JSONCol(1, "int") + ` = 1`
	return `UPDATE webhooks SET last_success_at = CASE WHEN ` + ok + ` THEN ? ELSE last_success_at END,
		failing_since = CASE WHEN ` + ok + ` THEN NULL ELSE COALESCE(failing_since, ?) END
		FROM ` + h.JSONSource() + ` WHERE webhooks.id = ` + h.JSONCol(0, "text") + `
			AND CASE WHEN ` + ok + ` THEN failing_since IS NOT NULL OR last_success_at IS NULL OR last_success_at < ?
				ELSE failing_since IS NULL END`
}

// updateDelivered applies the outcome of sent attempts to deliveries still pending, in one
// statement, and returns the ids it updated.
//
// "Still pending" is compared with a value each row carries rather than with the constant
// 'pending': against the constant, PostgreSQL may answer the condition from the partial
// index of pending deliveries, and with statistics that lag a fast-growing queue (a young
// table, a burst) it estimates a handful of pending rows and hashes all of them, tens of
// thousands, on every record. Compared with a value from the other side of the join, the
// condition can only filter rows found by id.
func (s *Base) updateDelivered(tx *gorm.DB, rs []models.Result, now time.Time) ([]string, error) {
	data := NewJSONRows(104 * len(rs))
	for _, r := range rs {
		data.Row()
		data.Str(r.DeliveryID)
		data.Str(r.Status)
		data.Int(int64(r.Attempt.Number))
		data.Int(r.NextAttemptAt)
		data.IntPtr(r.Attempt.ResponseStatus)
		data.StrPtr(r.Attempt.Error)
		data.Str(models.StatusPending)
	}
	rows, err := tx.Raw(UpdateDeliveredSQL(s.hooks), now, data.String()).Rows()
	if err != nil {
		return nil, fmt.Errorf("record deliveries: %w", err)
	}
	defer rows.Close()
	ids := make([]string, 0, len(rs))
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("record deliveries: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("record deliveries: %w", err)
	}
	return ids, nil
}

// UpdateDeliveredSQL is updateDelivered's statement for a driver; its arguments are the time
// and the rows as JSON (id, status, attempts, next attempt, status code, error, "pending").
func UpdateDeliveredSQL(h Hooks) string {
	return `UPDATE deliveries SET status = ` + h.JSONCol(1, "text") + `, attempt_count = ` + h.JSONCol(2, "int") +
		`, next_attempt_at = ` + h.JSONCol(3, "bigint") + `, locked_until = 0, locked_by = '', last_status_code = ` +
		h.JSONCol(4, "int") + `, last_error = ` + h.JSONCol(5, "text") + `, updated_at = ?
		FROM ` + h.JSONSource() + ` WHERE deliveries.id = ` + h.JSONCol(0, "text") + `
			AND deliveries.status = ` + h.JSONCol(6, "text") + `
		RETURNING deliveries.id`
}

// ReleaseLeases frees deliveries this process claimed but will not attempt (shutdown), so
// another process or the next start takes them at once instead of after the lease.
func (s *Base) ReleaseLeases(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	return s.Writer.WithContext(ctx).Exec(`UPDATE deliveries SET locked_until = 0, locked_by = '' WHERE id IN ? AND status = 'pending'`, ids).Error
}

// ReleaseAllLeases frees every lease. Only for SQLite, whose file belongs to one process:
// leases found at start-up were left by a crash of this same server.
func (s *Base) ReleaseAllLeases(ctx context.Context) error {
	return s.Writer.WithContext(ctx).Exec(`UPDATE deliveries SET locked_until = 0, locked_by = '' WHERE status = 'pending' AND locked_until > 0`).Error
}

// RecordTest stores a test action: a test event, its delivery in its final state and the
// attempt, so it shows in the delivery log marked as a test.
func (s *Base) RecordTest(ctx context.Context, ev *models.Event, d *models.Delivery, a *models.Attempt) error {
	return s.Writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(ev).Error; err != nil {
			return err
		}
		if err := tx.Create(d).Error; err != nil {
			return err
		}
		if err := tx.Create(a).Error; err != nil {
			return err
		}
		return InsertValues(tx, ActivityRows([]*models.Attempt{a}))
	})
}

// mergeNewestFirst merges deliveries read as rows with owed ones, newest (largest id) first.
func mergeNewestFirst(rows, owed []*models.Delivery) []*models.Delivery {
	if len(owed) == 0 {
		return rows
	}
	all := append(rows, owed...)
	slices.SortFunc(all, func(a, b *models.Delivery) int { return strings.Compare(b.ID, a.ID) })
	return all
}

// PendingCounts returns, for each of the given webhooks, its pending delivery rows: not yet
// finished (in flight, due, or waiting for a retry). A driver that spills adds what spilled
// webhooks owe without a row. Like any count of a backlog, it costs as much as the backlog.
func (s *Base) PendingCounts(ctx context.Context, ids []string) (map[string]int64, error) {
	out := make(map[string]int64, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var rows []struct {
		WebhookID string
		N         int64
	}
	// One probe of the pending index per webhook, never a walk of other webhooks' rows.
	if err := s.Reader.WithContext(ctx).Raw(`SELECT w.id AS webhook_id, (SELECT COUNT(*) FROM deliveries d
		WHERE d.webhook_id = w.id AND d.status = 'pending') AS n FROM webhooks w WHERE w.id IN ?`, ids).
		Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("count pending deliveries: %w", err)
	}
	for _, r := range rows {
		out[r.WebhookID] = r.N
	}
	return out, nil
}

// EventDeliveryCounts returns, per event id, its deliveries by status: the rows, counted in
// one grouped read of the event index, and on a driver that spills the deliveries owed
// without a row yet, as pending.
func (s *Base) EventDeliveryCounts(ctx context.Context, eventIDs []string) (map[string]models.DeliveryCounts, error) {
	out := make(map[string]models.DeliveryCounts, len(eventIDs))
	if len(eventIDs) == 0 {
		return out, nil
	}
	var rows []struct {
		EventID string
		Status  string
		N       int
	}
	if err := s.Reader.WithContext(ctx).Raw(`SELECT event_id, status, COUNT(*) AS n FROM deliveries
		WHERE event_id IN ? GROUP BY event_id, status`, eventIDs).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("count event deliveries: %w", err)
	}
	for _, r := range rows {
		c := out[r.EventID]
		for range r.N {
			c.Add(r.Status)
		}
		out[r.EventID] = c
	}
	for _, id := range eventIDs {
		owed, err := s.hooks.ListOwed(ctx, DeliveryFilter{EventID: id}, "", maxOwedPerEvent)
		if err != nil {
			return nil, err
		}
		if len(owed) > 0 {
			c := out[id]
			c.Pending += len(owed)
			out[id] = c
		}
	}
	return out, nil
}

// maxOwedPerEvent bounds the owed deliveries one event's count reads: one per spilled
// webhook, and no deployment has this many.
const maxOwedPerEvent = 10000
