package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"gorm.io/gorm"
)

// GetDelivery reads one delivery.
func (s *Store) GetDelivery(ctx context.Context, id string) (*models.Delivery, error) {
	var d models.Delivery
	err := s.R.WithContext(ctx).Where("id = ?", id).Take(&d).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return s.getOwed(ctx, id)
	}
	if err != nil {
		return nil, fmt.Errorf("get delivery: %w", err)
	}
	return &d, nil
}

// DeliveryFilter narrows ListDeliveries.
type DeliveryFilter struct {
	WebhookID, Status, EventType, EventID string
}

// ListDeliveries returns one page of deliveries, newest first.
func (s *Store) ListDeliveries(ctx context.Context, f DeliveryFilter, p models.Page) ([]*models.Delivery, string, error) {
	q := s.R.WithContext(ctx).Order("id DESC").Limit(p.Limit + 1)
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
	if p.Cursor != "" {
		q = q.Where("id < ?", p.Cursor)
	}
	var list []*models.Delivery
	if err := q.Find(&list).Error; err != nil {
		return nil, "", fmt.Errorf("list deliveries: %w", err)
	}
	owed, err := s.listOwed(ctx, f, p.Cursor, p.Limit)
	if err != nil {
		return nil, "", err
	}
	list, next := pageOf(mergeNewestFirst(list, owed), p.Limit, func(d *models.Delivery) string { return d.ID })
	return list, next, nil
}

// ListAttempts returns a delivery's attempts in order.
func (s *Store) ListAttempts(ctx context.Context, deliveryID string) ([]*models.Attempt, error) {
	var list []*models.Attempt
	if err := s.R.WithContext(ctx).Where("delivery_id = ?", deliveryID).Order("number").Find(&list).Error; err != nil {
		return nil, fmt.Errorf("list attempts: %w", err)
	}
	return list, nil
}

// RequeueDelivery makes a delivery due now again (manual redelivery): same event, same body,
// same message id, the next attempt number.
func (s *Store) RequeueDelivery(ctx context.Context, id string) (*models.Delivery, error) {
	now := time.Now().UTC()
	if s.leases != nil && s.leases.live(id, now.UnixMilli()) {
		return nil, fmt.Errorf("%w: the delivery is being attempted right now", models.ErrConflict)
	}
	res := s.W.WithContext(ctx).Exec(`UPDATE deliveries SET status = 'pending', next_attempt_at = ?, updated_at = ?
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
// a delivery still pending. The outcomes go in one bulk statement (see jsonRows) and the
// attempt rows in multi-row inserts: the cost of a result is a few row writes, not a few
// statements.
func (s *Store) RecordResults(ctx context.Context, results []models.Result) error {
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
	err := s.W.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if s.IsPostgres() {
			// Two replicas can record the same delivery (a lease that expired while its
			// attempt was out): locking the batch's rows in id order first keeps their
			// transactions from taking the same rows in opposite orders and deadlocking.
			ids := make([]string, 0, len(results))
			for _, r := range results {
				ids = append(ids, r.DeliveryID)
			}
			slices.Sort(ids)
			if err := tx.Exec(`SELECT 1 FROM deliveries WHERE id IN ? ORDER BY id FOR UPDATE`, slices.Compact(ids)).Error; err != nil {
				return fmt.Errorf("record deliveries: %w", err)
			}
		}
		written := map[string]bool{}
		if len(owed) > 0 {
			var err error
			if written, applyOwed, err = s.owedRecord(tx, owed, now); err != nil {
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
		for from := 0; from < len(rowed); from += maxBulkRows {
			ids, err := s.updateDelivered(tx, rowed[from:min(from+maxBulkRows, len(rowed))], now)
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
				s.webhooksChanged()
				if err := s.cancelPending(tx, r.WebhookID, r.DisableReason); err != nil {
					return err
				}
			}
		}
		if err := insertAttempts(tx, attempts); err != nil {
			return err
		}
		if err := recordActivity(tx, attempts); err != nil {
			return err
		}
		// Last in the transaction and in id order: on PostgreSQL replicas record at the same
		// time, and these rows are shared by all of them; in one order, their transactions
		// queue for the rows instead of deadlocking. A success refreshes last_success_at at
		// most once a second, so most batches do not lock the row at all.
		ids := make([]string, 0, len(hooks))
		for id := range hooks {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			h := hooks[id]
			var err error
			if h.success {
				err = tx.Exec(`UPDATE webhooks SET last_success_at = ?, failing_since = NULL WHERE id = ?
					AND (failing_since IS NOT NULL OR last_success_at IS NULL OR last_success_at < ?)`,
					now, id, now.Add(-time.Second)).Error
			} else {
				err = tx.Exec(`UPDATE webhooks SET failing_since = ? WHERE id = ? AND failing_since IS NULL`, now, id).Error
			}
			if err != nil {
				return fmt.Errorf("record webhook health: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if applyOwed != nil {
		applyOwed()
	}
	ids := make([]string, len(results))
	for i, r := range results {
		ids[i] = r.DeliveryID
		if r.Status == models.StatusPending && s.leases != nil {
			s.leases.rewind(r.WebhookID, r.NextAttemptAt) // a retry due at once would sort behind the cursor
		}
	}
	s.releaseLeases(ids)
	return nil
}

// updateDelivered applies the outcome of sent attempts to deliveries still pending, in one
// statement, and returns the ids it updated.
func (s *Store) updateDelivered(tx *gorm.DB, rs []models.Result, now time.Time) ([]string, error) {
	data := newJSONRows(96 * len(rs))
	for _, r := range rs {
		data.row()
		data.str(r.DeliveryID)
		data.str(r.Status)
		data.int(int64(r.Attempt.Number))
		data.int(r.NextAttemptAt)
		data.intPtr(r.Attempt.ResponseStatus)
		data.strPtr(r.Attempt.Error)
	}
	q := `UPDATE deliveries SET status = ` + s.jsonCol(1, "text") + `, attempt_count = ` + s.jsonCol(2, "int") +
		`, next_attempt_at = ` + s.jsonCol(3, "bigint") + `, locked_until = 0, locked_by = '', last_status_code = ` +
		s.jsonCol(4, "int") + `, last_error = ` + s.jsonCol(5, "text") + `, updated_at = ?
		FROM ` + s.jsonSource() + ` WHERE deliveries.id = ` + s.jsonCol(0, "text") + ` AND deliveries.status = 'pending'
		RETURNING deliveries.id`
	rows, err := tx.Raw(q, now, data.String()).Rows()
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

var (
	attemptShared = []string{"webhook_id", "number", "response_status", "error", "outcome", "test"}
	attemptOwn    = []string{"id", "delivery_id", "started_at", "duration_ms", "request_headers", "response_headers", "response_body"}
)

var attemptColumns = append(append([]string{}, attemptShared...), attemptOwn...)

// attemptGroup is what attempts inserted together share: their values of attemptShared.
type attemptGroup struct {
	webhook   string
	number    int
	status    int
	hasStatus bool
	errText   string
	hasErr    bool
	outcome   string
	test      bool
}

// groupOf is what an attempt shares with the others of its insert.
func groupOf(a *models.Attempt) attemptGroup {
	g := attemptGroup{webhook: a.WebhookID, number: a.Number, outcome: a.Outcome, test: a.Test}
	if a.ResponseStatus != nil {
		g.status, g.hasStatus = *a.ResponseStatus, true
	}
	if a.Error != nil {
		g.errText, g.hasErr = *a.Error, true
	}
	return g
}

// appendArgs appends the group's values in attemptShared order, NULLs as nil.
func (g attemptGroup) appendArgs(args []any) []any {
	var status, errText any
	if g.hasStatus {
		status = int64(g.status)
	}
	if g.hasErr {
		errText = g.errText
	}
	return append(args, g.webhook, int64(g.number), status, errText, g.outcome, g.test)
}

// appendOwnArgs appends an attempt's own columns (attemptOwn order).
func appendOwnArgs(a *models.Attempt, args []any) []any {
	return append(args, a.ID, a.DeliveryID, a.StartedAt, a.DurationMs, a.RequestHeaders, a.ResponseHeaders, a.ResponseBody)
}

// insertAttempts writes attempt rows. On SQLite, those with the same outcome for the same
// webhook (most of a batch) go in one grouped insert: record 26 -> 24 µs a result in the
// models benchmark. On PostgreSQL one array insert takes them all (grouping measured slower).
func insertAttempts(tx *gorm.DB, attempts []*models.Attempt) error {
	if tx.Dialector.Name() == "postgres" {
		return insertRows(tx, "attempts", attemptColumns, len(attempts), func(i int, args []any) []any {
			return appendOwnArgs(attempts[i], groupOf(attempts[i]).appendArgs(args))
		})
	}
	groups := map[attemptGroup][]*models.Attempt{}
	var order []attemptGroup
	for _, a := range attempts {
		k := groupOf(a)
		if groups[k] == nil {
			order = append(order, k)
		}
		groups[k] = append(groups[k], a)
	}
	for _, k := range order {
		g := groups[k]
		err := insertGrouped(tx, "attempts", attemptShared, k.appendArgs(nil), attemptOwn, len(g), func(i int, args []any) []any {
			return appendOwnArgs(g[i], args)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// ReleaseLeases frees deliveries this process claimed but will not attempt (shutdown), so
// another process or the next start takes them at once instead of after the lease.
func (s *Store) ReleaseLeases(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	err := s.W.WithContext(ctx).Exec(`UPDATE deliveries SET locked_until = 0, locked_by = '' WHERE id IN ? AND status = 'pending'`, ids).Error
	if err == nil {
		s.releaseLeases(ids)
	}
	return err
}

// ReleaseAllLeases frees every lease. Only for SQLite, whose file belongs to one process:
// leases found at start-up were left by a crash of this same server.
func (s *Store) ReleaseAllLeases(ctx context.Context) error {
	return s.W.WithContext(ctx).Exec(`UPDATE deliveries SET locked_until = 0, locked_by = '' WHERE status = 'pending' AND locked_until > 0`).Error
}

// RecordTest stores a test action: a test event, its delivery in its final state and the
// attempt, so it shows in the delivery log marked as a test.
func (s *Store) RecordTest(ctx context.Context, ev *models.Event, d *models.Delivery, a *models.Attempt) error {
	return s.W.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(ev).Error; err != nil {
			return err
		}
		if err := tx.Create(d).Error; err != nil {
			return err
		}
		if err := tx.Create(a).Error; err != nil {
			return err
		}
		return recordActivity(tx, []*models.Attempt{a})
	})
}
