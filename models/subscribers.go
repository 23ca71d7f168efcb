package models

import (
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
	spilled map[string]bool // webhooks that get no delivery row at publish (spill.go)
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
	c.all, c.spilled, c.loaded = list, spilled, gen+1
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
