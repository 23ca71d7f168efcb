package sqlcommon

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store/storedriver"
	"gorm.io/gorm"
)

// Publish writes the events and one pending delivery per enabled subscribed webhook in one
// transaction (the outbox): once it returns, a crash cannot lose them. A spilled webhook
// (see storedriver.Spiller) gets no row: the event is owed to it through its spill instead, and
// still counts in the event's DeliveryCount. A batch shares the
// transaction, which is how many events per second stay cheap on one SQLite writer.
func (s *Base) Publish(ctx context.Context, in []PublishInput) ([]Published, error) {
	out, err := s.publish(ctx, in)
	if err != nil && s.hooks.IsUniqueViolation(err) {
		// Two requests with the same new Idempotency-Key raced (possible on PostgreSQL, where
		// writers run concurrently): the loser runs again and now sees the winner's event.
		out, err = s.publish(ctx, in)
	}
	return out, err
}

func (s *Base) publish(ctx context.Context, in []PublishInput) ([]Published, error) {
	out := make([]Published, len(in))
	now := time.Now().UTC()
	due := map[string]int64{}
	var owedOnly map[string]bool // webhooks in due for owed events alone
	var newSpills []string
	var lessee storedriver.Lessee
	if l := s.lessee.Load(); l != nil {
		lessee = *l
	}
	var granted map[string]int
	var leased []*models.Delivery
	committed := false
	defer func() {
		// Every grant is settled, even by a panic under the transaction: the dispatcher's
		// shutdown waits for it.
		switch {
		case len(granted) == 0:
		case committed:
			lessee.Leased(leased) // after s.queued below: the bodies come first
		default:
			lessee.Release(granted)
		}
	}()
	err := s.hooks.RunPublish(s.Writer.WithContext(ctx), func(tx *gorm.DB) error {
		// A driver may run this again, in a transaction, after a try without one found it
		// needs one (RunPublish): nothing of the try stays.
		if len(granted) > 0 {
			lessee.Release(granted)
			granted, leased = nil, nil
		}
		clear(due)
		owedOnly, newSpills = nil, nil
		var subsByType = map[string][]*models.Webhook{}
		begun, err := s.hooks.BeginPublish(tx, len(in))
		if err != nil {
			return err
		}
		spilled := begun.Spilled
		newSpills = begun.Started
		var events []*models.Event
		var deliveries []*models.Delivery
		// What spilled webhooks are sent (the event's index in in): written leased where the
		// lessee grants a slot, owed otherwise. Most of them are owed (webhooks that fell
		// behind get no grant), so a row is made only for a grant.
		type spilledSend struct {
			webhookID string
			at        int
		}
		var toSpilled []spilledSend
		var spilledWant map[string]int
		var owedEvents map[string]bool // marked owed (MarksOwed)
		markOwed := len(spilled) > 0 && s.hooks.MarksOwed()
		// Only owed events marked one by one can leave one out for a leased row: SQLite's
		// spill position owes every later event, and a take would send the event again
		// beside its row.
		leaseSpilled := lessee != nil && markOwed
		owe := func(webhookID, eventID string) {
			due[webhookID] = now.UnixMilli() // owed through its spill, with no row of its own yet
			if owedOnly == nil {
				owedOnly = map[string]bool{}
			}
			owedOnly[webhookID] = true
			if markOwed {
				if owedEvents == nil {
					owedEvents = map[string]bool{}
				}
				owedEvents[eventID] = true
			}
		}
		for i, p := range in {
			if p.IdempotencyKey != "" {
				var prev models.Event
				err := tx.Where("idempotency_key = ?", p.IdempotencyKey).Take(&prev).Error
				if err == nil {
					if prev.RequestHash != p.RequestHash {
						return fmt.Errorf("%w: Idempotency-Key %q was used for a different request", models.ErrConflict, p.IdempotencyKey)
					}
					var ds []*models.Delivery
					if err := tx.Where("event_id = ?", prev.ID).Find(&ds).Error; err != nil {
						return err
					}
					out[i] = Published{Event: &prev, Deliveries: ds, Replayed: true}
					continue
				}
				if !errors.Is(err, gorm.ErrRecordNotFound) {
					return err
				}
			}
			subs, ok := subsByType[p.Type]
			if !ok {
				subs = subscribersOf(begun.Enabled, p.Type)
				subsByType[p.Type] = subs
			}
			ev := &models.Event{ID: models.NewID("evt"), Type: p.Type, Payload: p.Payload, OccurredAt: p.OccurredAt.UTC(),
				RequestHash: p.RequestHash, DeliveryCount: len(subs), CreatedAt: now}
			if p.IdempotencyKey != "" {
				k := p.IdempotencyKey
				ev.IdempotencyKey = &k
			}
			if p.TraceParent != "" {
				tp := p.TraceParent
				ev.TraceParent = &tp
			}
			events = append(events, ev)
			ds := make([]*models.Delivery, 0, len(subs))
			for _, w := range subs {
				switch {
				case spilled[w.ID] && !leaseSpilled:
					owe(w.ID, ev.ID)
					continue
				case spilled[w.ID]:
					if spilledWant == nil {
						spilledWant = map[string]int{}
					}
					spilledWant[w.ID]++
					toSpilled = append(toSpilled, spilledSend{webhookID: w.ID, at: i})
					continue
				}
				ds = append(ds, newDelivery(ev, w.ID, now))
			}
			deliveries = append(deliveries, ds...)
			out[i] = Published{Event: ev, Deliveries: ds}
		}
		cols := deliveryColumns
		if lessee != nil && len(deliveries)+len(toSpilled) > 0 {
			// Asked last, once every read is done: a granted slot is held until the commit.
			var owner string
			var until int64
			granted, leased, owner, until = leaseNew(lessee, deliveries, spilledWant, now)
			// A spilled webhook is granted slots when it keeps up again (the engine's
			// table.reserve): its first events get leased rows, the rest are owed.
			left := make(map[string]int, len(spilledWant))
			for id := range spilledWant {
				left[id] = granted[id]
			}
			for _, sp := range toSpilled {
				ev := out[sp.at].Event
				if left[sp.webhookID] == 0 {
					owe(sp.webhookID, ev.ID)
					continue
				}
				left[sp.webhookID]--
				d := newDelivery(ev, sp.webhookID, now)
				leased = append(leased, leaseTo(d, owner, until))
				deliveries = append(deliveries, d)
				out[sp.at].Deliveries = append(out[sp.at].Deliveries, d)
			}
			if len(leased) > 0 {
				cols = leasedColumns
			}
		}
		for _, d := range deliveries {
			if d.LockedBy == "" {
				due[d.WebhookID] = d.NextAttemptAt
				delete(owedOnly, d.WebhookID)
			}
		}
		defer s.hooks.WritingRows(deliveries)()
		if err := s.hooks.InsertPublished(tx, begun, eventRows(events, owedEvents), deliveryRows(deliveries, cols, "")); err != nil {
			return err
		}
		s.hooks.WroteRows(deliveries)
		return nil
	})
	committed = err == nil
	if err != nil {
		if errors.Is(err, models.ErrConflict) {
			return nil, err
		}
		return nil, fmt.Errorf("publish: %w", err)
	}
	if len(due) > 0 {
		s.hooks.Published(due, owedOnly)
	}
	q := Queued{Due: due, Payloads: make(map[string]EventBody, len(in)), Spilled: newSpills}
	for _, p := range out {
		// Owed events (spilled webhooks) have no rows but are sent all the same.
		if !p.Replayed && p.Event.DeliveryCount > 0 {
			b := EventBody{Payload: p.Event.Payload, Deliveries: p.Event.DeliveryCount}
			if p.Event.TraceParent != nil {
				b.TraceParent = *p.Event.TraceParent
			}
			q.Payloads[p.Event.ID] = b
		}
	}
	s.queued(q)
	return out, nil
}

var (
	eventColumns       = []string{"id", "type", "payload", "occurred_at", "idempotency_key", "request_hash", "test", "delivery_count", "created_at"}
	tracedEventColumns = append(append([]string{}, eventColumns...), "trace_parent")
)

// eventRows are new events' rows. trace_parent is written only by batches that carry one, so
// the statement of the others stays as it was.
// eventRows are a publish's events; those in owed (MarksOwed) are marked owed.
func eventRows(events []*models.Event, owed map[string]bool) Rows {
	cols := eventColumns
	traced := slices.ContainsFunc(events, func(e *models.Event) bool { return e.TraceParent != nil })
	if traced {
		cols = tracedEventColumns
	}
	if len(owed) > 0 {
		cols = append(slices.Clip(cols), "owed")
	}
	return Rows{Table: "events", Cols: cols, N: len(events), Row: func(i int, args []any) []any {
		e := events[i]
		var key any
		if e.IdempotencyKey != nil {
			key = *e.IdempotencyKey
		}
		args = append(args, e.ID, e.Type, e.Payload, e.OccurredAt, key, e.RequestHash, e.Test, int64(e.DeliveryCount), e.CreatedAt)
		if traced {
			var tp any
			if e.TraceParent != nil {
				tp = *e.TraceParent
			}
			args = append(args, tp)
		}
		if len(owed) > 0 {
			args = append(args, owed[e.ID])
		}
		return args
	}}
}

var deliveryColumns = []string{"id", "event_id", "webhook_id", "event_type", "status", "next_attempt_at", "created_at", "updated_at"}

var (
	replayedColumns = append(append([]string{}, deliveryColumns...), "replay_id")
	leasedColumns   = append(append([]string{}, deliveryColumns...), "locked_until", "locked_by")
)

// deliveryRows are new pending deliveries' rows (cols: deliveryColumns; replayedColumns for a
// replay job's, each naming the job; leasedColumns for a publish that leased some of them);
// the columns left out start at their defaults.
func deliveryRows(ds []*models.Delivery, cols []string, replayID string) Rows {
	return Rows{Table: "deliveries", Cols: cols, N: len(ds), Row: func(i int, args []any) []any {
		d := ds[i]
		args = append(args, d.ID, d.EventID, d.WebhookID, d.EventType, d.Status, d.NextAttemptAt, d.CreatedAt, d.UpdatedAt)
		switch len(cols) {
		case len(replayedColumns):
			args = append(args, replayID)
		case len(leasedColumns):
			args = append(args, d.LockedUntil, d.LockedBy)
		}
		return args
	}}
}

// newDelivery is a new pending delivery of ev to a webhook.
func newDelivery(ev *models.Event, webhookID string, now time.Time) *models.Delivery {
	return &models.Delivery{ID: models.NewID("dlv"), EventID: ev.ID, WebhookID: webhookID, EventType: ev.Type,
		Status: models.StatusPending, NextAttemptAt: now.UnixMilli(), CreatedAt: now, UpdatedAt: now}
}

// leaseNew offers a publish's new deliveries to the lessee, with spilledWant more for spilled
// webhooks (none of which is in ds), and leases to it, in publish order, as many of each
// webhook's in ds as it grants. It returns the grant, the deliveries leased, and the lease
// that what it granted the spilled webhooks is to be written with.
func leaseNew(l storedriver.Lessee, ds []*models.Delivery, spilledWant map[string]int, now time.Time) (granted map[string]int, leased []*models.Delivery, owner string, until int64) {
	want := maps.Clone(spilledWant)
	if want == nil {
		want = map[string]int{}
	}
	for _, d := range ds {
		want[d.WebhookID]++
	}
	granted, owner, until = l.Reserve(want, now)
	if len(granted) == 0 {
		return nil, nil, "", 0
	}
	left := maps.Clone(granted)
	for _, d := range ds {
		if left[d.WebhookID] > 0 {
			left[d.WebhookID]--
			leased = append(leased, leaseTo(d, owner, until))
		}
	}
	return granted, leased, owner, until
}

// leaseTo writes a lease into a new delivery and returns a copy for the lessee: the publish's
// caller keeps d, and the lessee's attempt gets its own.
func leaseTo(d *models.Delivery, owner string, until int64) *models.Delivery {
	d.LockedUntil, d.LockedBy = until, owner
	c := *d
	return &c
}

// GetEvent reads one event.
func (s *Base) GetEvent(ctx context.Context, id string) (*models.Event, error) {
	return getByID[models.Event](ctx, s.Reader, id, "get event")
}

// ListEvents returns one page of published (non-test) events, newest first.
func (s *Base) ListEvents(ctx context.Context, eventType string, p models.Page) ([]*models.Event, string, error) {
	q := s.Reader.WithContext(ctx).Where("test = ?", false).Order("id DESC").Limit(p.Limit + 1)
	if eventType != "" {
		q = q.Where("type = ?", eventType)
	}
	if p.Cursor != "" {
		q = q.Where("id < ?", p.Cursor)
	}
	var list []*models.Event
	if err := q.Find(&list).Error; err != nil {
		return nil, "", fmt.Errorf("list events: %w", err)
	}
	list, next := pageOf(list, p.Limit, func(e *models.Event) string { return e.ID })
	return list, next, nil
}

// EventPayloads reads the body bytes of the given events.
func (s *Base) EventPayloads(ctx context.Context, ids []string) (map[string]EventBody, error) {
	// Read without the ORM's reflection: the dispatcher asks for every batch it starts.
	cond, arg := s.hooks.IDsIn("id", ids)
	rows, err := s.Reader.WithContext(ctx).Raw(`SELECT id, payload, delivery_count, trace_parent FROM events WHERE `+cond, arg).Rows()
	if err != nil {
		return nil, fmt.Errorf("event payloads: %w", err)
	}
	defer rows.Close()
	out := make(map[string]EventBody, len(ids))
	for rows.Next() {
		var id string
		var b EventBody
		var tp sql.NullString
		if err := rows.Scan(&id, &b.Payload, &b.Deliveries, &tp); err != nil {
			return nil, fmt.Errorf("event payloads: %w", err)
		}
		b.TraceParent = tp.String
		out[id] = b
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("event payloads: %w", err)
	}
	return out, nil
}

// replayWhere selects the events of a replay (see ReplayFilter). The period is a range of
// the events' time-ordered ids, which events_type_id serves per type. Ids tell the
// millisecond, so a bound within one takes in the whole of it: an event published in the
// millisecond a replay until now is asked is in it.
func (s *Base) replayWhere(q *gorm.DB, f ReplayFilter) *gorm.DB {
	q = q.Table("events").
		Where("events.test = ? AND events.type IN ? AND events.id >= ? AND events.id < ?",
			false, f.Types, idBefore("evt", f.Since), idBefore("evt", f.Until.Add(time.Millisecond-1))).
		Where(`NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id AND d.webhook_id = ? AND d.status = 'pending')`, f.WebhookID)
	// Owed through the webhook's spill: on their way already, like pending ones.
	q = s.hooks.SkipOwed(q, f.WebhookID)
	if f.OnlyFailed {
		q = q.Where(`EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id AND d.webhook_id = ? AND d.status IN ('failed', 'cancelled'))`, f.WebhookID).
			Where(`NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id AND d.webhook_id = ? AND d.status = 'succeeded')`, f.WebhookID)
	}
	return q
}

// CountReplay returns how many events a replay with this filter would queue now.
func (s *Base) CountReplay(ctx context.Context, f ReplayFilter) (int64, error) {
	var n int64
	if err := s.replayWhere(s.Reader.WithContext(ctx), f).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count replay: %w", err)
	}
	return n, nil
}

// QueueReplay creates one pending delivery to the webhook per matching event, batch events
// per write transaction so a replay of millions of events never holds the writer for long
// and publishing continues between batches. Events are walked in id (publication) order.
// Each batch is chosen inside its transaction, so two replays running at once do not queue
// an event twice, and a webhook disabled or deleted meanwhile stops the replay (ErrConflict,
// ErrNotFound). afterBatch, when set, is told how many deliveries each batch added. It
// returns the number queued.
func (s *Base) QueueReplay(ctx context.Context, f ReplayFilter, batch int, afterBatch func(n int)) (int, error) {
	if batch <= 0 {
		batch = 500
	}
	total, cursor := 0, ""
	for {
		var n int
		err := s.Writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			var err error
			n, cursor, err = s.queueReplayBatch(tx, f, cursor, batch, "")
			return err
		})
		if err != nil {
			if errors.Is(err, models.ErrNotFound) || errors.Is(err, models.ErrConflict) {
				return total, err
			}
			return total, fmt.Errorf("queue replay after %d: %w", total, err)
		}
		if n == 0 {
			return total, nil
		}
		total += n
		s.queued(Queued{Due: map[string]int64{f.WebhookID: time.Now().UnixMilli()}})
		if afterBatch != nil {
			afterBatch(n)
		}
		if ctx.Err() != nil {
			return total, ctx.Err()
		}
	}
}

// queueReplayBatch queues, inside tx, the next batch of events after the event id after that
// the filter matches, and returns how many and the last id. The webhook must still exist and
// be enabled (ErrNotFound, ErrConflict). The deliveries name replayID, the job queuing them
// (empty outside a job).
func (s *Base) queueReplayBatch(tx *gorm.DB, f ReplayFilter, after string, batch int, replayID string) (int, string, error) {
	var hook models.Webhook
	if err := tx.Select("id", "enabled").Where("id = ?", f.WebhookID).Take(&hook).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return 0, after, models.ErrNotFound
		}
		return 0, after, err
	}
	if !hook.Enabled {
		return 0, after, fmt.Errorf("%w: the webhook was disabled", models.ErrConflict)
	}
	var rows []struct{ ID, Type string }
	q := s.replayWhere(tx, f).Select("events.id", "events.type").Order("events.id").Limit(batch)
	if after != "" {
		q = q.Where("events.id > ?", after)
	}
	if err := q.Scan(&rows).Error; err != nil {
		return 0, after, err
	}
	if len(rows) == 0 {
		return 0, after, nil
	}
	now := time.Now().UTC()
	ids := make([]string, len(rows))
	ds := make([]*models.Delivery, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
		ds[i] = &models.Delivery{ID: models.NewID("dlv"), EventID: r.ID, WebhookID: f.WebhookID, EventType: r.Type,
			Status: models.StatusPending, NextAttemptAt: now.UnixMilli(), ReplayID: replayID, CreatedAt: now, UpdatedAt: now}
	}
	dr := deliveryRows(ds, replayedColumns, replayID)
	if err := s.hooks.InsertRows(tx, dr.Table, dr.Cols, dr.N, dr.Row); err != nil {
		return 0, after, err
	}
	if err := tx.Exec(`UPDATE events SET delivery_count = delivery_count + 1 WHERE id IN ?`, ids).Error; err != nil {
		return 0, after, err
	}
	return len(rows), rows[len(rows)-1].ID, nil
}
