package sqlite

import (
	"sync"
	"sync/atomic"

	"github.com/hookrelay/hookrelay/models"
	"gorm.io/gorm"
)

// subscriberCache keeps the enabled webhooks between publishes, so a publish does
// not read and decode the whole webhooks table for every transaction. Every webhook write of
// this process bumps gen inside its write transaction, and a publish checks gen inside its
// own; with one writer connection the two cannot interleave, so a publish never fans out from
// a list older than the last committed webhook change.
type subscriberCache struct {
	gen atomic.Uint64

	mu      sync.Mutex
	loaded  uint64 // gen the list was read at, plus one; 0: never read
	all     []*models.Webhook
	spilled map[string]bool // webhooks that get no delivery row at publish (spill.go)
}

// invalidate marks the cached list stale.
func (c *subscriberCache) invalidate() { c.gen.Add(1) }

// load returns the enabled webhooks and the spilled set, re-read inside tx when a webhook or
// spill change of this process came after the last read; called with c.mu held.
func (c *subscriberCache) load(tx *gorm.DB) error {
	gen := c.gen.Load()
	if c.loaded == gen+1 {
		return nil
	}
	var list []*models.Webhook
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

// enabledAndSpilled returns the enabled webhooks and the spilled set as the cache knows them,
// read inside tx when stale, so an event and its fan-out are decided atomically. A reload
// replaces both, so the caller may keep them.
func (s *Driver) enabledAndSpilled(tx *gorm.DB) ([]*models.Webhook, map[string]bool, error) {
	c := &s.subs
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.load(tx); err != nil {
		return nil, nil, err
	}
	return c.all, c.spilled, nil
}
