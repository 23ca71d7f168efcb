package models

import (
	"context"
	"sync"
	"sync/atomic"

	"gorm.io/gorm"
)

// subscriberCache keeps the enabled webhooks between publishes on SQLite, so a publish does
// not read and decode the whole webhooks table for every transaction. Every webhook write of
// this process bumps gen inside its write transaction, and a publish checks gen inside its
// own; with one writer connection the two cannot interleave, so a publish never fans out from
// a list older than the last committed webhook change.
type subscriberCache struct {
	gen atomic.Uint64

	mu      sync.Mutex
	loaded  uint64 // gen the list was read at, plus one; 0: never read
	all     []*Webhook
	byID    map[string]*Webhook // all, by id
	spilled map[string]bool     // webhooks that get no delivery row at publish (spill.go)
}

// invalidate marks the cached list stale; nil-safe (PostgreSQL has no cache).
func (c *subscriberCache) invalidate() {
	if c != nil {
		c.gen.Add(1)
	}
}

// load returns the enabled webhooks and the spilled set, re-read inside tx when a webhook or
// spill change of this process came after the last read; called with c.mu held.
func (c *subscriberCache) load(tx *gorm.DB) error {
	gen := c.gen.Load()
	if c.loaded == gen+1 {
		return nil
	}
	var list []*Webhook
	if err := tx.Where("enabled = ?", true).Find(&list).Error; err != nil {
		return err
	}
	var ids []string
	if err := tx.Raw(`SELECT webhook_id FROM webhook_spills`).Scan(&ids).Error; err != nil {
		return err
	}
	spilled := make(map[string]bool, len(ids))
	for _, id := range ids {
		spilled[id] = true
	}
	byID := make(map[string]*Webhook, len(list))
	for _, w := range list {
		byID[w.ID] = w
	}
	c.all, c.byID, c.spilled, c.loaded = list, byID, spilled, gen+1
	return nil
}

// enabledSubscribers returns the enabled webhooks listening to eventType, read inside tx (or
// from the cache, on SQLite) so the event and its fan-out are decided atomically.
func (s *Store) enabledSubscribers(tx *gorm.DB, eventType string) ([]*Webhook, error) {
	c := s.subs
	if c == nil {
		return enabledSubscribers(tx, eventType)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.load(tx); err != nil {
		return nil, err
	}
	var out []*Webhook
	for _, w := range c.all {
		if w.Subscribes(eventType) {
			out = append(out, w)
		}
	}
	return out, nil
}

// spilledSet returns the spilled webhooks as the cache knows them, read inside tx when stale.
func (s *Store) spilledSet(tx *gorm.DB) (map[string]bool, error) {
	c := s.subs
	if c == nil {
		return nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.load(tx); err != nil {
		return nil, err
	}
	return c.spilled, nil
}

// WebhooksToSend returns the webhooks with the given ids for sending their deliveries. On
// SQLite the enabled ones come from the subscriber cache while no webhook changed since a
// publish read it (the dispatcher asks for every batch it starts); the others are read.
// Missing ones are absent. The returned webhooks are shared: callers must not change them.
func (s *Store) WebhooksToSend(ctx context.Context, ids []string) (map[string]*Webhook, error) {
	out := make(map[string]*Webhook, len(ids))
	miss := ids
	if c := s.subs; c != nil {
		c.mu.Lock()
		if c.loaded != 0 && c.loaded == c.gen.Load()+1 {
			miss = nil
			for _, id := range ids {
				if w := c.byID[id]; w != nil {
					out[id] = w
				} else {
					miss = append(miss, id)
				}
			}
		}
		c.mu.Unlock()
	}
	if len(miss) == 0 {
		return out, nil
	}
	read, err := s.GetWebhooks(ctx, miss)
	if err != nil {
		return nil, err
	}
	for id, w := range read {
		out[id] = w
	}
	return out, nil
}
