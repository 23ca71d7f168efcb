package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store/internal/sqlcommon"
	"github.com/hookrelay/hookrelay/store/storedriver"
)

// What spills owe, as the rest of Hookrelay sees it: counts, queue figures, and owed
// deliveries listed and read under the ids their rows will have (spill.go).

// Backlogs returns the spilled webhooks among ids (all with ids nil) with, when count is set,
// how many events each still owes.
func (d *Driver) Backlogs(ctx context.Context, ids []string, count bool) (map[string]*storedriver.Backlog, error) {
	var rows []struct {
		WebhookID string
		Since     time.Time
		Owed      int64
	}
	q := `SELECT sp.webhook_id, sp.since, 0 AS owed FROM webhook_spills sp`
	if count {
		q = `SELECT sp.webhook_id, sp.since, COALESCE((SELECT SUM(o.count) FROM webhook_owed o
			WHERE o.webhook_id = sp.webhook_id), 0) + (SELECT COUNT(*) FROM webhooks w` + unlistedSQL + `
			WHERE w.id = sp.webhook_id) AS owed FROM webhook_spills sp`
	}
	var args []any
	if ids != nil {
		q += ` WHERE sp.webhook_id IN ?`
		args = append(args, ids)
	}
	if err := d.Reader.WithContext(ctx).Raw(q, args...).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("spilled webhooks: %w", err)
	}
	out := make(map[string]*storedriver.Backlog, len(rows))
	for _, r := range rows {
		out[r.WebhookID] = sqlcommon.BacklogOf(r.Since, r.Owed, count)
	}
	return out, nil
}

// PendingCounts adds to the rows the shared count finds the events each webhook owes.
func (d *Driver) PendingCounts(ctx context.Context, ids []string) (map[string]int64, error) {
	out, err := d.Base.PendingCounts(ctx, ids)
	if err != nil || len(ids) == 0 {
		return out, err
	}
	var rows []struct {
		WebhookID string
		N         int64
	}
	if err := d.Reader.WithContext(ctx).Raw(`SELECT webhook_id, SUM(n) AS n FROM (
			SELECT webhook_id, count AS n FROM webhook_owed WHERE webhook_id IN ?
			UNION ALL
			SELECT sp.webhook_id, 1 FROM webhook_spills sp JOIN webhooks w ON w.id = sp.webhook_id`+unlistedSQL+`
			WHERE sp.webhook_id IN ?) AS ow GROUP BY webhook_id`, ids, ids).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("count owed deliveries: %w", err)
	}
	for _, r := range rows {
		out[r.WebhookID] += r.N
	}
	return out, nil
}

// QueueStats adds the spills and what they owe to the shared count.
func (d *Driver) QueueStats(ctx context.Context) (storedriver.QueueStats, error) {
	st, err := d.Base.QueueStats(ctx)
	if err != nil {
		return st, err
	}
	var owed struct {
		Spilled int64
		Owed    int64
		Oldest  *time.Time
	}
	if err := d.Reader.WithContext(ctx).Raw(`SELECT (SELECT COUNT(*) FROM webhook_spills) AS spilled,
		COALESCE(SUM(n), 0) AS owed, MIN(created_at) AS oldest FROM (
			SELECT count AS n, created_at FROM webhook_owed
			UNION ALL
			SELECT 1, e.created_at FROM webhook_spills sp JOIN webhooks w ON w.id = sp.webhook_id` + unlistedSQL + `) AS ow`).Scan(&owed).Error; err != nil {
		return st, fmt.Errorf("count owed deliveries: %w", err)
	}
	st.Spilled, st.Owed = owed.Spilled, owed.Owed
	if owed.Oldest != nil {
		if at := owed.Oldest.UnixMilli(); st.OldestDue == 0 || at < st.OldestDue {
			st.OldestDue = at
		}
	}
	return st, nil
}

// owedEvents is the events owed, one row per webhook and event, for the owed view: those
// webhook_owed lists and those no take has listed yet (collect.go). One statement reads
// both, so a take listing events meanwhile moves none from one part to the other unseen.
const owedEvents = `SELECT o.webhook_id, e.id, e.type, e.created_at FROM webhook_owed o
	CROSS JOIN LATERAL unnest(string_to_array(o.events, ',')) AS u(eid) JOIN events e ON e.id = u.eid
	UNION ALL
	SELECT sp.webhook_id, e.id, e.type, e.created_at FROM webhook_spills sp JOIN webhooks w ON w.id = sp.webhook_id` + unlistedSQL

type owedEvent struct {
	WebhookID string
	ID        string
	Type      string
	CreatedAt time.Time
}

func (e owedEvent) delivery() *models.Delivery {
	return &models.Delivery{ID: sqlcommon.OwedDeliveryID(e.ID, e.WebhookID), EventID: e.ID, WebhookID: e.WebhookID,
		EventType: e.Type, Status: models.StatusPending, CreatedAt: e.CreatedAt, UpdatedAt: e.CreatedAt,
		Owed: &models.OwedDelivery{}}
}

// listOwed returns, newest first, up to limit+2 owed deliveries that match f and sort before
// the cursor (a delivery id; empty for the first page). They are shown as the pending rows a
// take will write, under the same ids.
func (d *Driver) listOwed(ctx context.Context, f storedriver.DeliveryFilter, cursor string, limit int) ([]*models.Delivery, error) {
	if f.Status != "" && f.Status != models.StatusPending {
		return nil, nil
	}
	q, args := `SELECT * FROM (`+owedEvents+`) AS ow WHERE true`, []any{}
	if f.WebhookID != "" {
		q += ` AND webhook_id = ?`
		args = append(args, f.WebhookID)
	}
	if f.EventType != "" {
		q += ` AND type = ?`
		args = append(args, f.EventType)
	}
	if f.EventID != "" {
		q += ` AND id = ?`
		args = append(args, f.EventID)
	}
	if len(cursor) >= 20 {
		// An owed delivery's id begins with its event's (see OwedDeliveryID).
		q += ` AND id < ?`
		args = append(args, "evt_"+cursor[4:20]+"g")
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit+2)
	var evs []owedEvent
	if err := d.Reader.WithContext(ctx).Raw(q, args...).Scan(&evs).Error; err != nil {
		return nil, fmt.Errorf("list owed deliveries: %w", err)
	}
	var out []*models.Delivery
	for _, e := range evs {
		if dl := e.delivery(); cursor == "" || dl.ID < cursor {
			out = append(out, dl)
		}
	}
	return out, nil
}

// getOwed finds the owed delivery with the given id, or returns models.ErrNotFound.
func (d *Driver) getOwed(ctx context.Context, id string) (*models.Delivery, error) {
	if len(id) != 36 || !strings.HasPrefix(id, "dlv_") {
		return nil, models.ErrNotFound
	}
	prefix := "evt_" + id[4:20]
	var evs []owedEvent
	if err := d.Reader.WithContext(ctx).Raw(`SELECT * FROM (`+owedEvents+`) AS ow WHERE id >= ? AND id < ?`, prefix, prefix+"g").Scan(&evs).Error; err != nil {
		return nil, fmt.Errorf("get owed delivery: %w", err)
	}
	for _, e := range evs {
		if dl := e.delivery(); dl.ID == id {
			return dl, nil
		}
	}
	return nil, models.ErrNotFound
}
