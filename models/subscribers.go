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

	mu     sync.Mutex
	loaded uint64 // gen the list was read at, plus one; 0: never read
	all    []*Webhook
}

// invalidate marks the cached list stale; nil-safe (PostgreSQL has no cache).
func (c *subscriberCache) invalidate() {
	if c != nil {
		c.gen.Add(1)
	}
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
	if gen := c.gen.Load(); c.loaded != gen+1 {
		var list []*Webhook
		if err := tx.Where("enabled = ?", true).Find(&list).Error; err != nil {
			return nil, err
		}
		c.all, c.loaded = list, gen+1
	}
	var out []*Webhook
	for _, w := range c.all {
		if w.Subscribes(eventType) {
			out = append(out, w)
		}
	}
	return out, nil
}
