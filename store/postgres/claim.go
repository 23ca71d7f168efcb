package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store/storedriver"
)

// claim leases due deliveries in the locked_until column, taken with FOR UPDATE SKIP LOCKED
// so replicas claim disjoint rows.
func (s *Driver) claim(ctx context.Context, r storedriver.ClaimForRequest, hooks []storedriver.WebhookQuota) ([]*models.Delivery, []string, error) {
	now := r.Now.UnixMilli()
	var sb strings.Builder
	args := make([]any, 0, 2*len(hooks)+4)
	sb.WriteString(`WITH picked AS (SELECT d.id FROM (VALUES `)
	for i, h := range hooks {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`(?::text, ?::int)`)
		args = append(args, h.WebhookID, h.Free)
	}
	// SKIP LOCKED inside the lateral subquery: replicas claiming at the same moment take
	// disjoint rows of the same webhook instead of queueing behind each other's row locks.
	sb.WriteString(`) AS h(webhook_id, n) CROSS JOIN LATERAL (
		SELECT id FROM deliveries WHERE webhook_id = h.webhook_id AND status = 'pending'
			AND next_attempt_at <= ? AND locked_until < ?
		ORDER BY next_attempt_at LIMIT h.n FOR UPDATE SKIP LOCKED) d)
	UPDATE deliveries SET locked_until = ?, locked_by = ? FROM picked WHERE deliveries.id = picked.id
	RETURNING deliveries.*`)
	args = append(args, now, now, r.Now.Add(r.Lease).UnixMilli(), r.Owner)
	var claimed []*models.Delivery
	if err := s.Writer.WithContext(ctx).Raw(sb.String(), args...).Scan(&claimed).Error; err != nil {
		return nil, nil, fmt.Errorf("claim deliveries: %w", err)
	}
	per := map[string]int{}
	for _, d := range claimed {
		per[d.WebhookID]++
	}
	var exhausted []string
	for _, h := range hooks {
		if per[h.WebhookID] >= h.Free {
			continue
		}
		// Short of what was asked: either nothing more is due, or another replica's claim had
		// the rows locked at that moment and SKIP LOCKED passed them. Only the first is
		// exhausted; in the second case the rows it did not take are due again at once, and
		// waiting for the next hint or rescan would leave them idle for up to a second.
		var more []int
		if err := s.Writer.WithContext(ctx).Raw(`SELECT 1 FROM deliveries WHERE webhook_id = ? AND status = 'pending'
			AND next_attempt_at <= ? AND locked_until < ? LIMIT 1`, h.WebhookID, now, now).Scan(&more).Error; err != nil {
			return nil, nil, fmt.Errorf("claim deliveries: %w", err)
		}
		if len(more) == 0 {
			exhausted = append(exhausted, h.WebhookID)
		}
	}
	return claimed, exhausted, nil
}
