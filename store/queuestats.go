package store

import (
	"context"
	"fmt"
)

// QueueStats is a snapshot of the outbox for monitoring.
type QueueStats struct {
	Pending   int64 // deliveries not yet finished, including those waiting for a retry
	OldestDue int64 // unix ms at which the longest-waiting pending delivery became due; 0 when none
	Spilled   int64 // webhooks spilled (spill.go)
	Owed      int64 // events the spilled webhooks owe, without delivery rows yet
}

// QueueStats counts the outbox. Both queries stay on the partial index of pending deliveries
// (the MIN is one index probe per webhook, the COUNT an index-only scan), so the cost grows
// with the backlog, never with the delivery history; callers still should not run it per
// request.
func (s *Store) QueueStats(ctx context.Context) (QueueStats, error) {
	var st QueueStats
	db := s.R.WithContext(ctx)
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
	owed, err := s.owed(ctx, nil, true)
	if err != nil {
		return st, err
	}
	for _, o := range owed {
		st.Spilled++
		st.Owed += o.Events
		if o.Events > 0 && (st.OldestDue == 0 || o.OldestAt < st.OldestDue) {
			st.OldestDue = o.OldestAt
		}
	}
	return st, nil
}
