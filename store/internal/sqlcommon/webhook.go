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

// CreateWebhook stores a new webhook.
func (s *Base) CreateWebhook(ctx context.Context, w *models.Webhook) error {
	if w.ID == "" {
		w.ID = models.NewID("wh")
	}
	if w.Format == "" {
		w.Format = models.FormatJSON
	}
	now := time.Now().UTC()
	w.CreatedAt, w.UpdatedAt = now, now
	if err := s.Writer.WithContext(ctx).Create(w).Error; err != nil {
		return fmt.Errorf("create webhook: %w", err)
	}
	s.WebhooksChanged()
	return nil
}

// GetWebhook reads one webhook.
func (s *Base) GetWebhook(ctx context.Context, id string) (*models.Webhook, error) {
	return getByID[models.Webhook](ctx, s.Reader, id, "get webhook")
}

// GetWebhooks reads the webhooks with the given ids (missing ones are simply absent).
func (s *Base) GetWebhooks(ctx context.Context, ids []string) (map[string]*models.Webhook, error) {
	var list []*models.Webhook
	if err := s.Reader.WithContext(ctx).Where("id IN ?", ids).Find(&list).Error; err != nil {
		return nil, fmt.Errorf("get webhooks: %w", err)
	}
	out := make(map[string]*models.Webhook, len(list))
	for _, w := range list {
		out[w.ID] = w
	}
	return out, nil
}

// ListWebhooks returns one page of webhooks, newest first.
func (s *Base) ListWebhooks(ctx context.Context, p models.Page) ([]*models.Webhook, string, error) {
	q := s.Reader.WithContext(ctx).Order("id DESC").Limit(p.Limit + 1)
	if p.Cursor != "" {
		q = q.Where("id < ?", p.Cursor)
	}
	var list []*models.Webhook
	if err := q.Find(&list).Error; err != nil {
		return nil, "", fmt.Errorf("list webhooks: %w", err)
	}
	list, next := pageOf(list, p.Limit, func(w *models.Webhook) string { return w.ID })
	return list, next, nil
}

// UpdateWebhook saves w. When the webhook goes from enabled to disabled, its pending
// deliveries are cancelled in the same transaction.
func (s *Base) UpdateWebhook(ctx context.Context, w *models.Webhook) error {
	w.UpdatedAt = time.Now().UTC()
	err := s.Writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Select("*").Omit("created_at").Where("id = ?", w.ID).Updates(w)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return models.ErrNotFound
		}
		s.WebhooksChanged()
		if !w.Enabled {
			return s.cancelPending(tx, w.ID, "webhook disabled")
		}
		return nil
	})
	if err != nil && !errors.Is(err, models.ErrNotFound) {
		return fmt.Errorf("update webhook: %w", err)
	}
	return err
}

// ModifyWebhook reads a webhook inside a write transaction, lets change edit it, and saves it.
// Read and write in one transaction means concurrent changes (two PATCHes, a rotation, the
// dispatcher disabling the webhook after a 410) apply one after the other instead of the
// later writer silently restoring what it read before. An error from change (such as a
// *ValidationError) aborts without saving and is returned as it is. Going from enabled to
// disabled cancels the pending deliveries in the same transaction.
func (s *Base) ModifyWebhook(ctx context.Context, id string, change func(w *models.Webhook) error) (*models.Webhook, error) {
	var out models.Webhook
	err := s.Writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		q := s.hooks.LockForChange(tx.Where("id = ?", id))
		if err := q.Take(&out).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return models.ErrNotFound
			}
			return err
		}
		wasEnabled := out.Enabled
		if err := change(&out); err != nil {
			return err
		}
		out.ID = id
		out.UpdatedAt = time.Now().UTC()
		if err := tx.Select("*").Omit("created_at").Where("id = ?", id).Updates(&out).Error; err != nil {
			return err
		}
		s.WebhooksChanged()
		if wasEnabled && !out.Enabled {
			return s.cancelPending(tx, id, "webhook disabled")
		}
		return nil
	})
	if err != nil {
		var verr *models.ValidationError
		if errors.Is(err, models.ErrNotFound) || errors.Is(err, models.ErrConflict) || errors.As(err, &verr) {
			return nil, err
		}
		return nil, fmt.Errorf("modify webhook %s: %w", id, err)
	}
	return &out, nil
}

// cancelPending cancels a webhook's pending deliveries and ends its spill; callers call
// WebhooksChanged.
func (s *Base) cancelPending(tx *gorm.DB, webhookID, reason string) error {
	if err := s.hooks.DropSpill(tx, webhookID); err != nil {
		return err
	}
	return tx.Exec(`UPDATE deliveries SET status = 'cancelled', next_attempt_at = 0, locked_until = 0, last_error = ?, updated_at = ?
		WHERE webhook_id = ? AND status = 'pending'`, reason, time.Now().UTC(), webhookID).Error
}

// DisableWebhook turns a webhook off with a reason shown to admins, cancelling what is pending.
func (s *Base) DisableWebhook(ctx context.Context, id, reason string) error {
	return s.Writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec(`UPDATE webhooks SET enabled = ?, disabled_reason = ?, updated_at = ? WHERE id = ?`,
			false, reason, time.Now().UTC(), id).Error; err != nil {
			return fmt.Errorf("disable webhook: %w", err)
		}
		s.WebhooksChanged()
		return s.cancelPending(tx, id, reason)
	})
}

// DeleteWebhook removes a webhook with its deliveries and their attempts.
func (s *Base) DeleteWebhook(ctx context.Context, id string) error {
	return s.Writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Exec(`DELETE FROM webhooks WHERE id = ?`, id)
		if res.Error != nil {
			return fmt.Errorf("delete webhook: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return models.ErrNotFound
		}
		s.WebhooksChanged()
		// Test events belong to the one webhook they were sent to; published events stay.
		if err := tx.Exec(`DELETE FROM events WHERE test = ? AND id IN (SELECT event_id FROM deliveries WHERE webhook_id = ? AND test = ?)`+s.hooks.KeepOwed(),
			true, id, true).Error; err != nil {
			return fmt.Errorf("delete test events: %w", err)
		}
		if err := tx.Exec(`DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE webhook_id = ?)`, id).Error; err != nil {
			return fmt.Errorf("delete attempts: %w", err)
		}
		if err := tx.Exec(`DELETE FROM webhook_activity WHERE webhook_id = ?`, id).Error; err != nil {
			return fmt.Errorf("delete webhook activity: %w", err)
		}
		if err := tx.Exec(`DELETE FROM deliveries WHERE webhook_id = ?`, id).Error; err != nil {
			return fmt.Errorf("delete deliveries: %w", err)
		}
		if err := s.hooks.DropSpill(tx, id); err != nil {
			return err
		}
		// Inspector bins linked to it keep their captures but lose the dangling link.
		if err := tx.Exec(`UPDATE bins SET webhook_id = '' WHERE webhook_id = ?`, id).Error; err != nil {
			return fmt.Errorf("unlink inspector bins: %w", err)
		}
		return nil
	})
}

// WebhookActivity returns, per webhook id, 24 hourly buckets of attempt outcomes (oldest
// first, the last one the hour now is in), and the last attempt.
func (s *Base) WebhookActivity(ctx context.Context, ids []string, now time.Time) (map[string][]models.WebhookStats, map[string]*models.LastDelivery, error) {
	stats := map[string][]models.WebhookStats{}
	last := map[string]*models.LastDelivery{}
	if len(ids) == 0 {
		return stats, last, nil
	}
	first := now.Unix()/3600 - 23
	var rows []activityRow
	if err := s.Reader.WithContext(ctx).Raw(`SELECT webhook_id, hour, succeeded, failed, tests_succeeded, tests_failed, last_at, last_outcome, last_status
		FROM webhook_activity WHERE webhook_id IN ? AND hour >= ? ORDER BY hour`, ids, first).Scan(&rows).Error; err != nil {
		return nil, nil, fmt.Errorf("webhook activity: %w", err)
	}
	for _, id := range ids {
		stats[id] = make([]models.WebhookStats, 24)
	}
	for _, r := range rows {
		if h := r.Hour - first; h >= 0 && h < 24 {
			stats[r.WebhookID][h] = models.WebhookStats{Succeeded: int(r.Succeeded), Failed: int(r.Failed),
				TestsSucceeded: int(r.TestsSucceeded), TestsFailed: int(r.TestsFailed)}
		}
		last[r.WebhookID] = r.lastDelivery()
	}
	// Webhooks quiet for a day still show their last outcome.
	for _, id := range ids {
		if last[id] != nil {
			continue
		}
		var older []activityRow
		if err := s.Reader.WithContext(ctx).Raw(`SELECT webhook_id, hour, succeeded, failed, tests_succeeded, tests_failed, last_at, last_outcome, last_status
			FROM webhook_activity WHERE webhook_id = ? ORDER BY hour DESC LIMIT 1`, id).Scan(&older).Error; err != nil {
			return nil, nil, fmt.Errorf("webhook activity: %w", err)
		}
		if len(older) > 0 {
			last[id] = older[0].lastDelivery()
		}
	}
	return stats, last, nil
}

// activityRow is one webhook's attempts in one hour (unix time / 3600).
type activityRow struct {
	WebhookID         string
	Hour              int64
	Succeeded, Failed int64
	// The test action's requests, apart from deliveries' attempts.
	TestsSucceeded, TestsFailed int64
	LastAt                      time.Time
	LastOutcome                 string
	LastStatus                  *int
}

func (r activityRow) lastDelivery() *models.LastDelivery {
	return &models.LastDelivery{Status: r.LastOutcome, StatusCode: r.LastStatus, At: r.LastAt.UTC()}
}

// ActivityRows is what attempts add to their webhooks' hourly rollup: a row per webhook and
// hour, in that order, which is the order a statement writing them takes their rows' locks
// in (replicas' transactions then queue for the rows instead of deadlocking, see
// RecordResults). Their Then adds them to the rows already there.
func ActivityRows(attempts []*models.Attempt) Rows {
	type key struct {
		webhook string
		hour    int64
	}
	sums := map[key]*activityRow{}
	var order []key
	for _, a := range attempts {
		k := key{a.WebhookID, a.StartedAt.Unix() / 3600}
		r := sums[k]
		if r == nil {
			r = &activityRow{WebhookID: k.webhook, Hour: k.hour}
			sums[k] = r
			order = append(order, k)
		}
		switch {
		case a.Test && a.Outcome == models.OutcomeSucceeded:
			r.TestsSucceeded++
		case a.Test:
			r.TestsFailed++
		case a.Outcome == models.OutcomeSucceeded:
			r.Succeeded++
		default:
			r.Failed++
		}
		if !a.StartedAt.Before(r.LastAt) {
			r.LastAt, r.LastOutcome, r.LastStatus = a.StartedAt, a.Outcome, a.ResponseStatus
		}
	}
	slices.SortFunc(order, func(a, b key) int {
		if c := strings.Compare(a.webhook, b.webhook); c != 0 {
			return c
		}
		return int(a.hour - b.hour)
	})
	return Rows{Table: "webhook_activity", Cols: activityCols, N: len(order), Then: activityUpsert,
		Row: func(i int, args []any) []any {
			r := sums[order[i]]
			var status any
			if r.LastStatus != nil {
				status = *r.LastStatus
			}
			return append(args, r.WebhookID, r.Hour, r.Succeeded, r.Failed, r.TestsSucceeded, r.TestsFailed, r.LastAt.UTC(), r.LastOutcome, status)
		}}
}

var activityCols = []string{"webhook_id", "hour", "succeeded", "failed", "tests_succeeded", "tests_failed", "last_at", "last_outcome", "last_status"}

// activityUpsert adds a row of activity to the row of its webhook and hour, where there is one.
const activityUpsert = ` ON CONFLICT (webhook_id, hour) DO UPDATE SET
	succeeded = webhook_activity.succeeded + excluded.succeeded,
	failed = webhook_activity.failed + excluded.failed,
	tests_succeeded = webhook_activity.tests_succeeded + excluded.tests_succeeded,
	tests_failed = webhook_activity.tests_failed + excluded.tests_failed,
	last_outcome = CASE WHEN excluded.last_at >= webhook_activity.last_at THEN excluded.last_outcome ELSE webhook_activity.last_outcome END,
	last_status = CASE WHEN excluded.last_at >= webhook_activity.last_at THEN excluded.last_status ELSE webhook_activity.last_status END,
	last_at = CASE WHEN excluded.last_at >= webhook_activity.last_at THEN excluded.last_at ELSE webhook_activity.last_at END`

// InsertValues writes r's rows in one statement of VALUES, followed by r.Then (SQLite's
// activity of a record, either store's activity of a test).
func InsertValues(tx *gorm.DB, r Rows) error {
	if r.N == 0 {
		return nil
	}
	var sb strings.Builder
	args := make([]any, 0, len(r.Cols)*r.N)
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(r.Cols)), ", ") + ")"
	sb.WriteString("INSERT INTO " + r.Table + " (" + strings.Join(r.Cols, ", ") + ") VALUES ")
	for i := range r.N {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(one)
		args = r.Row(i, args)
	}
	sb.WriteString(r.Then)
	if err := tx.Exec(sb.String(), args...).Error; err != nil {
		return fmt.Errorf("insert %s: %w", r.Table, err)
	}
	return nil
}

// subscribersOf returns the webhooks of enabled listening to eventType, in a list of their
// own: a publish of several types filters the one list once per type.
func subscribersOf(enabled []*models.Webhook, eventType string) []*models.Webhook {
	var out []*models.Webhook
	for _, w := range enabled {
		if w.Subscribes(eventType) {
			out = append(out, w)
		}
	}
	return out
}
