package models

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Event is a published chat event with the exact body bytes every webhook receives.
type Event struct {
	ID             string `gorm:"primaryKey"`
	Type           string
	Payload        []byte
	OccurredAt     time.Time
	IdempotencyKey *string
	RequestHash    string
	Test           bool
	DeliveryCount  int
	CreatedAt      time.Time
}

// PublishInput is one event to publish.
type PublishInput struct {
	Type           string
	Payload        []byte // from EventType.BuildBody
	OccurredAt     time.Time
	IdempotencyKey string // optional
	RequestHash    string // hash of the request, to tell a retry from a key reused for other content
}

// Published is the outcome of publishing one event.
type Published struct {
	Event      *Event
	Deliveries []*Delivery
	Replayed   bool // the Idempotency-Key was seen before with the same request
}

// Publish writes the events and one pending delivery per enabled subscribed webhook in one
// transaction (the outbox): once it returns, a crash cannot lose them. A batch shares the
// transaction, which is how many events per second stay cheap on one SQLite writer.
func (s *Store) Publish(ctx context.Context, in []PublishInput) ([]Published, error) {
	out := make([]Published, len(in))
	now := time.Now().UTC()
	err := s.W.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var subsByType = map[string][]*Webhook{}
		var events []*Event
		var deliveries []*Delivery
		for i, p := range in {
			if p.IdempotencyKey != "" {
				var prev Event
				err := tx.Where("idempotency_key = ?", p.IdempotencyKey).Take(&prev).Error
				if err == nil {
					if prev.RequestHash != p.RequestHash {
						return fmt.Errorf("%w: Idempotency-Key %q was used for a different request", ErrConflict, p.IdempotencyKey)
					}
					var ds []*Delivery
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
				var err error
				if subs, err = enabledSubscribers(tx, p.Type); err != nil {
					return err
				}
				subsByType[p.Type] = subs
			}
			ev := &Event{ID: NewID("evt"), Type: p.Type, Payload: p.Payload, OccurredAt: p.OccurredAt.UTC(),
				RequestHash: p.RequestHash, DeliveryCount: len(subs), CreatedAt: now}
			if p.IdempotencyKey != "" {
				k := p.IdempotencyKey
				ev.IdempotencyKey = &k
			}
			events = append(events, ev)
			ds := make([]*Delivery, 0, len(subs))
			for _, w := range subs {
				d := &Delivery{ID: NewID("dlv"), EventID: ev.ID, WebhookID: w.ID, EventType: p.Type,
					Status: StatusPending, NextAttemptAt: now.UnixMilli(), CreatedAt: now, UpdatedAt: now}
				ds = append(ds, d)
			}
			deliveries = append(deliveries, ds...)
			out[i] = Published{Event: ev, Deliveries: ds}
		}
		if len(events) > 0 {
			if err := tx.CreateInBatches(events, 200).Error; err != nil {
				return err
			}
		}
		if len(deliveries) > 0 {
			if err := tx.CreateInBatches(deliveries, 200).Error; err != nil {
				return err
			}
			if s.IsPostgres() {
				// Delivered at commit, and coalesced within the transaction: wakes the other
				// replicas' dispatchers so they share the work at once.
				if err := tx.Exec(`SELECT pg_notify(?, '')`, ChannelWake).Error; err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrConflict) {
			return nil, err
		}
		return nil, fmt.Errorf("publish: %w", err)
	}
	return out, nil
}

// GetEvent reads one event.
func (s *Store) GetEvent(ctx context.Context, id string) (*Event, error) {
	var e Event
	err := s.R.WithContext(ctx).Where("id = ?", id).Take(&e).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get event: %w", err)
	}
	return &e, nil
}

// ListEvents returns one page of published (non-test) events, newest first.
func (s *Store) ListEvents(ctx context.Context, eventType string, p Page) ([]*Event, string, error) {
	q := s.R.WithContext(ctx).Where("test = ?", false).Order("id DESC").Limit(p.Limit + 1)
	if eventType != "" {
		q = q.Where("type = ?", eventType)
	}
	if p.Cursor != "" {
		q = q.Where("id < ?", p.Cursor)
	}
	var list []*Event
	if err := q.Find(&list).Error; err != nil {
		return nil, "", fmt.Errorf("list events: %w", err)
	}
	list, next := pageOf(list, p.Limit, func(e *Event) string { return e.ID })
	return list, next, nil
}

// EventPayloads reads the body bytes of the given events.
func (s *Store) EventPayloads(ctx context.Context, ids []string) (map[string]*Event, error) {
	var list []*Event
	if err := s.R.WithContext(ctx).Select("id", "type", "payload", "occurred_at").Where("id IN ?", ids).Find(&list).Error; err != nil {
		return nil, fmt.Errorf("event payloads: %w", err)
	}
	out := make(map[string]*Event, len(list))
	for _, e := range list {
		out[e.ID] = e
	}
	return out, nil
}
