package sqlite

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store/storedriver"
)

// Showing what spilled webhooks owe.
//
// A spilled webhook's newer events have no delivery row until their attempt is recorded, yet
// each is a pending delivery to the admin who looks at the webhook. So lists and reads of
// deliveries show them as rows would be: pending, with no attempts, under the id their row
// will have (owedDeliveryID), marked by Delivery.Owed. Their ids sort like their events, so a
// list merges them with the rows it read by id, and a cursor taken from either works for both.

// owedSpill is one spilled webhook, as the view needs it.
type owedSpill struct {
	WebhookID string
	AfterSeq  int64
	Events    string
}

// spillsFor reads the spills a delivery filter can see.
func (s *Driver) spillsFor(ctx context.Context, f storedriver.DeliveryFilter) ([]owedSpill, error) {
	if f.Status != "" && f.Status != models.StatusPending {
		return nil, nil
	}
	q := s.Reader.WithContext(ctx).Table("webhook_spills AS sp").Select("sp.webhook_id, sp.after_seq, w.events").
		Joins("JOIN webhooks w ON w.id = sp.webhook_id").Order("sp.webhook_id")
	if f.WebhookID != "" {
		q = q.Where("sp.webhook_id = ?", f.WebhookID)
	}
	var spills []owedSpill
	if err := q.Scan(&spills).Error; err != nil {
		return nil, fmt.Errorf("spilled webhooks: %w", err)
	}
	return spills, nil
}

// owedTypes is what a spill owes of the filter's event type: its subscription, narrowed.
func owedTypes(sp owedSpill, f storedriver.DeliveryFilter) []string {
	types := (&models.Webhook{Events: sp.Events}).EventList()
	if f.EventType != "" {
		if !slices.Contains(types, f.EventType) {
			return nil
		}
		types = []string{f.EventType}
	}
	return types
}

// owedEvent is an owed event's columns the view shows.
type owedEvent struct {
	Seq       int64
	ID        string
	Type      string
	CreatedAt time.Time
}

// owedDelivery is the pending delivery an owed event stands for.
func owedDelivery(e owedEvent, webhookID string) *models.Delivery {
	return &models.Delivery{ID: owedDeliveryID(e.ID, webhookID), EventID: e.ID, WebhookID: webhookID,
		EventType: e.Type, Status: models.StatusPending, CreatedAt: e.CreatedAt, UpdatedAt: e.CreatedAt,
		Owed: &models.OwedDelivery{Seq: e.Seq}}
}

// notRecorded keeps the owed events whose row is not written yet: attempts finish out of
// order, so rows past the spill position exist (they show as rows).
const notRecorded = ` AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id AND d.webhook_id = ?)`

// listOwed returns, newest first, up to limit+1 owed deliveries per spilled webhook that
// match f and sort before the cursor (a delivery id; empty for the first page).
func (s *Driver) listOwed(ctx context.Context, f storedriver.DeliveryFilter, cursor string, limit int) ([]*models.Delivery, error) {
	spills, err := s.spillsFor(ctx, f)
	if err != nil || len(spills) == 0 {
		return nil, err
	}
	db := s.Reader.WithContext(ctx)
	var out []*models.Delivery
	for _, sp := range spills {
		types := owedTypes(sp, f)
		if len(types) == 0 {
			continue
		}
		q := `SELECT rowid AS seq, id, type, created_at FROM events WHERE ` + owedWhere + notRecorded
		args := []any{sp.AfterSeq, false, types, sp.WebhookID}
		if f.EventID != "" {
			q += ` AND id = ?`
			args = append(args, f.EventID)
		}
		if len(cursor) >= 20 {
			// An owed delivery's id begins with its event's; every event whose id begins at or
			// before the cursor's may sort before it (the rest of the id decides, below).
			q += ` AND id < ?`
			args = append(args, "evt_"+cursor[4:20]+"g")
		}
		// Events get their rowids in the order their ids were made (one writer), so the
		// primary key walks them newest first without sorting the backlog.
		q += ` ORDER BY rowid DESC LIMIT ?`
		args = append(args, limit+2)
		var evs []owedEvent
		if err := db.Raw(q, args...).Scan(&evs).Error; err != nil {
			return nil, fmt.Errorf("list owed deliveries: %w", err)
		}
		for _, e := range evs {
			if d := owedDelivery(e, sp.WebhookID); cursor == "" || d.ID < cursor {
				out = append(out, d)
			}
		}
	}
	return out, nil
}

// getOwed finds the owed delivery with the given id, or returns models.ErrNotFound.
func (s *Driver) getOwed(ctx context.Context, id string) (*models.Delivery, error) {
	if len(id) != 36 || !strings.HasPrefix(id, "dlv_") {
		return nil, models.ErrNotFound
	}
	spills, err := s.spillsFor(ctx, storedriver.DeliveryFilter{})
	if err != nil || len(spills) == 0 {
		return nil, errOr(err, models.ErrNotFound)
	}
	// The id begins with its event's time and order: few events (one, almost always) share it.
	var evs []owedEvent
	prefix := "evt_" + id[4:20]
	if err := s.Reader.WithContext(ctx).Raw(`SELECT rowid AS seq, id, type, created_at FROM events
		WHERE id >= ? AND id < ? AND test = ?`, prefix, prefix+"g", false).Scan(&evs).Error; err != nil {
		return nil, fmt.Errorf("get owed delivery: %w", err)
	}
	for _, e := range evs {
		for _, sp := range spills {
			if owedDeliveryID(e.ID, sp.WebhookID) != id || e.Seq <= sp.AfterSeq ||
				!slices.Contains(owedTypes(sp, storedriver.DeliveryFilter{}), e.Type) {
				continue
			}
			var recorded int64
			if err := s.Reader.WithContext(ctx).Raw(`SELECT COUNT(*) FROM deliveries WHERE event_id = ? AND webhook_id = ?`,
				e.ID, sp.WebhookID).Scan(&recorded).Error; err != nil {
				return nil, fmt.Errorf("get owed delivery: %w", err)
			}
			if recorded == 0 {
				return owedDelivery(e, sp.WebhookID), nil
			}
		}
	}
	return nil, models.ErrNotFound
}

func errOr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// PendingCounts adds to the rows the shared count finds the events each spilled webhook
// owes without a row.
func (s *Driver) PendingCounts(ctx context.Context, ids []string) (map[string]int64, error) {
	out, err := s.Base.PendingCounts(ctx, ids)
	if err != nil || len(ids) == 0 {
		return out, err
	}
	var spills []owedSpill
	if err := s.Reader.WithContext(ctx).Table("webhook_spills AS sp").Select("sp.webhook_id, sp.after_seq, w.events").
		Joins("JOIN webhooks w ON w.id = sp.webhook_id").Where("sp.webhook_id IN ?", ids).
		Scan(&spills).Error; err != nil {
		return nil, fmt.Errorf("spilled webhooks: %w", err)
	}
	for _, sp := range spills {
		var n int64
		if err := s.Reader.WithContext(ctx).Raw(`SELECT COUNT(*) FROM events WHERE `+owedWhere+notRecorded,
			sp.AfterSeq, false, owedTypes(sp, storedriver.DeliveryFilter{}), sp.WebhookID).Scan(&n).Error; err != nil {
			return nil, fmt.Errorf("count owed deliveries: %w", err)
		}
		out[sp.WebhookID] += n
	}
	return out, nil
}

// QueueStats adds what the spilled webhooks owe to the shared count.
func (s *Driver) QueueStats(ctx context.Context) (storedriver.QueueStats, error) {
	st, err := s.Base.QueueStats(ctx)
	if err != nil {
		return st, err
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
