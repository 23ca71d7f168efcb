package sqlcommon

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store/storedriver"
)

// ClaimFor leases up to Free due deliveries of each listed webhook, oldest due first. The
// cost follows what is claimed, not the size of the queue: each webhook's due deliveries are
// read from its own index range, so webhooks that are saturated (not listed) cost nothing
// however large their backlog, and a healthy webhook is never stuck behind them.
//
// next reports, for each listed webhook whose due deliveries were all taken (fewer than Free
// were available), when its next pending delivery becomes due (unix ms), or 0 when nothing
// else is pending for it; a listed webhook absent from next may have more due work now.
//
// The lease itself is the driver's (Hooks.Claim).
func (s *Base) ClaimFor(ctx context.Context, r ClaimForRequest) ([]*models.Delivery, map[string]int64, error) {
	hooks := make([]storedriver.WebhookQuota, 0, len(r.Hooks))
	for _, h := range r.Hooks {
		if h.Free > 0 {
			hooks = append(hooks, h)
		}
	}
	if len(hooks) == 0 {
		return nil, map[string]int64{}, nil
	}
	claimed, exhausted, next, err := s.hooks.Claim(ctx, r, hooks)
	if err != nil {
		return nil, nil, err
	}
	if next == nil {
		if next, err = s.nextDueAfter(ctx, exhausted, r.Now.UnixMilli()); err != nil {
			return nil, nil, err
		}
	}
	return claimed, next, nil
}

// nextDueAfter returns, per webhook, the earliest next_attempt_at of its pending deliveries
// later than now, or 0 when there is none.
func (s *Base) nextDueAfter(ctx context.Context, hooks []string, now int64) (map[string]int64, error) {
	out := make(map[string]int64, len(hooks))
	for _, id := range hooks {
		// Scan, not Row: GORM's Row hands back an empty row, which panics on Scan, when the
		// query fails (a cancelled context at shutdown).
		var next []sql.NullInt64
		err := s.Reader.WithContext(ctx).Raw(`SELECT MIN(next_attempt_at) FROM deliveries
			WHERE webhook_id = ? AND status = 'pending' AND next_attempt_at > ?`, id, now).Scan(&next).Error
		if err != nil {
			return nil, fmt.Errorf("next due delivery: %w", err)
		}
		out[id] = 0
		if len(next) > 0 && next[0].Valid {
			out[id] = next[0].Int64
		}
	}
	return out, nil
}

// PendingByWebhook returns, for every webhook with pending deliveries not under a lease, when
// the earliest of them is or was due (unix ms). It costs one index probe per webhook, whatever
// the backlog (rows under a lease, skipped, are at most what is in flight), so the dispatcher
// can rescan periodically for work it was not told about. Leased rows are left out so that
// work in flight does not make its webhook look due: a claim would find nothing, and the
// webhook's next publishes would not be leased meanwhile (engine/lease.go). SQLite's leases
// are not in the rows, which it reports as they are.
func (s *Base) PendingByWebhook(ctx context.Context) (map[string]int64, error) {
	var rows []struct {
		ID   string
		Next *int64
	}
	s.hooks.Rescanning()
	err := s.Reader.WithContext(ctx).Raw(`SELECT w.id AS id, (SELECT MIN(d.next_attempt_at) FROM deliveries d
		WHERE d.webhook_id = w.id AND d.status = 'pending' AND d.locked_until < ?) AS next FROM webhooks w`,
		time.Now().UnixMilli()).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("pending deliveries by webhook: %w", err)
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		if r.Next != nil {
			out[r.ID] = *r.Next
		}
	}
	return out, nil
}

// SpilledWebhooks returns the ids of the spilled webhooks.
func (s *Base) SpilledWebhooks(ctx context.Context) ([]string, error) {
	var ids []string
	if err := s.Reader.WithContext(ctx).Raw(`SELECT webhook_id FROM webhook_spills ORDER BY webhook_id`).Scan(&ids).Error; err != nil {
		return nil, fmt.Errorf("spilled webhooks: %w", err)
	}
	return ids, nil
}
