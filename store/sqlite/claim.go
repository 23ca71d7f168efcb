package sqlite

import (
	"context"
	"fmt"
	"strconv"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store/storedriver"
)

// dueQuery lists one webhook's due deliveries after its claim cursor, from the
// deliveries_webhook_due index alone (it covers the query). Ties in next_attempt_at are
// ordered by rowid in the index, which the cursor relies on.
const dueQuery = `SELECT rowid, next_attempt_at FROM deliveries
	WHERE webhook_id = ? AND status = 'pending' AND next_attempt_at <= ?
		AND next_attempt_at >= ? AND (next_attempt_at > ? OR rowid > ?)
	ORDER BY next_attempt_at LIMIT ?`

// claim leases due deliveries in memory: one process owns the file (start-up releases
// whatever a crashed run left), so a claim writes nothing.
func (s *Driver) claim(ctx context.Context, r storedriver.ClaimForRequest, hooks []storedriver.WebhookQuota) ([]*models.Delivery, []string, error) {
	now := r.Now.UnixMilli()
	until := r.Now.Add(r.Lease).UnixMilli()
	start := s.leases.begin(now)
	defer s.leases.end()
	var picked []int64
	var exhausted []string
	for _, h := range hooks {
		got, more, err := s.claimHook(ctx, h, start, now, until)
		if err != nil {
			s.leases.forget(picked)
			return nil, nil, err
		}
		picked = append(picked, got...)
		if !more {
			exhausted = append(exhausted, h.WebhookID)
		}
	}
	if len(picked) == 0 {
		return nil, exhausted, nil
	}
	claimed, err := s.leasedRows(ctx, picked, now)
	if err != nil {
		s.leases.forget(picked)
		return nil, nil, err
	}
	if len(claimed) < len(picked) {
		// Gone meanwhile (deleted with the webhook), finished, or leased in the table.
		found := make(map[int64]bool, len(claimed))
		for _, d := range claimed {
			found[d.rowid] = true
		}
		var lost []int64
		for _, id := range picked {
			if !found[id] {
				lost = append(lost, id)
			}
		}
		s.leases.forget(lost)
	}
	out := make([]*models.Delivery, len(claimed))
	for i, c := range claimed {
		s.leases.bind(c.rowid, c.ID)
		c.LockedUntil, c.LockedBy = until, r.Owner
		out[i] = &c.Delivery
	}
	return out, exhausted, nil
}

// claimHook leases up to h.Free of a webhook's due rows. The scan starts at the
// webhook's cursor, just past the last row a claim took, so the rows taken earlier and still
// in flight or awaiting their record are not read again; it stops as soon as it has enough.
// more reports that due rows may remain.
func (s *Driver) claimHook(ctx context.Context, h storedriver.WebhookQuota, start uint64, now, until int64) ([]int64, bool, error) {
	cur, rewinds := s.leases.cursorOf(h.WebhookID)
	// An upper bound: the rows after the cursor still held are at most all held rows.
	limit := h.Free + s.leases.count(h.WebhookID)
	rows, err := s.Reader.WithContext(ctx).Raw(dueQuery, h.WebhookID, now, cur.next, cur.next, cur.rowid, limit).Rows()
	if err != nil {
		return nil, false, fmt.Errorf("find due deliveries: %w", err)
	}
	defer rows.Close()
	var got []int64
	read, stale := 0, false
	for len(got) < h.Free && rows.Next() {
		var rowid, next int64
		if err := rows.Scan(&rowid, &next); err != nil {
			return nil, false, fmt.Errorf("find due deliveries: %w", err)
		}
		read++
		switch s.leases.takeOne(h.WebhookID, rowid, start, now, until) {
		case taken:
			got = append(got, rowid)
			cur = claimCursor{next: next, rowid: rowid}
		case skippedStale:
			stale = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("find due deliveries: %w", err)
	}
	s.leases.advance(h.WebhookID, cur, rewinds)
	more := len(got) == h.Free || read == limit || stale
	return got, more, nil
}

type leasedRow struct {
	models.Delivery
	rowid int64
}

// leasedRows reads what the dispatcher needs of the deliveries just leased in memory. Rows
// whose lease in the row holds were written leased by a publish (Driver.LeaseAtPublish) and
// are in flight: they are left out, and the claim forgets them. The rowids go as one JSON
// array parameter (see jsonRows for why not a list of parameters).
func (s *Driver) leasedRows(ctx context.Context, rowids []int64, now int64) ([]*leasedRow, error) {
	list := make([]byte, 0, 12*len(rowids)+2)
	list = append(list, '[')
	for i, id := range rowids {
		if i > 0 {
			list = append(list, ',')
		}
		list = strconv.AppendInt(list, id, 10)
	}
	list = append(list, ']')
	rows, err := s.Reader.WithContext(ctx).Raw(`SELECT rowid, id, event_id, webhook_id, event_type, attempt_count, next_attempt_at
		FROM deliveries WHERE rowid IN (SELECT value FROM json_each(?)) AND status = 'pending' AND locked_until < ?`,
		string(list), now).Rows()
	if err != nil {
		return nil, fmt.Errorf("read claimed deliveries: %w", err)
	}
	defer rows.Close()
	out := make([]*leasedRow, 0, len(rowids))
	for rows.Next() {
		d := &leasedRow{Delivery: models.Delivery{Status: models.StatusPending}}
		if err := rows.Scan(&d.rowid, &d.ID, &d.EventID, &d.WebhookID, &d.EventType, &d.AttemptCount, &d.NextAttemptAt); err != nil {
			return nil, fmt.Errorf("read claimed deliveries: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read claimed deliveries: %w", err)
	}
	return out, nil
}

// releaseLeases ends leases in memory after their rows were written.
func (s *Driver) releaseLeases(ids []string) {
	if len(ids) > 0 {
		s.leases.release(ids)
	}
}

// ReleaseLeases frees deliveries this process claimed but will not attempt (shutdown), in
// the table and in memory.
func (s *Driver) ReleaseLeases(ctx context.Context, ids []string) error {
	if err := s.Base.ReleaseLeases(ctx, ids); err != nil {
		return err
	}
	s.releaseLeases(ids)
	return nil
}
