package sqlcommon

import (
	"context"
	"fmt"
)

// QueueStats counts the outbox. Both queries stay on the partial index of pending deliveries
// (the MIN is one index probe per webhook, the COUNT an index-only scan), so the cost grows
// with the backlog, never with the delivery history; callers still should not run it per
// request. A driver whose webhooks can owe events without rows adds those.
func (s *Base) QueueStats(ctx context.Context) (QueueStats, error) {
	var st QueueStats
	db := s.Reader.WithContext(ctx)
	if err := db.Raw(`SELECT COUNT(*) FROM deliveries WHERE status = 'pending'`).Scan(&st.Pending).Error; err != nil {
		return st, fmt.Errorf("count pending deliveries: %w", err)
	}
	var oldest *int64
	// The queue is indexed per webhook: one probe per webhook, not a walk of the backlog.
	if err := db.Raw(`SELECT MIN(next) FROM (SELECT (SELECT MIN(d.next_attempt_at) FROM deliveries d
		WHERE d.webhook_id = w.id AND d.status = 'pending') AS next FROM webhooks w) AS per_webhook`).Scan(&oldest).Error; err != nil {
		return st, fmt.Errorf("oldest pending delivery: %w", err)
	}
	if oldest != nil {
		st.OldestDue = *oldest
	}
	return st, nil
}
