package store

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookrelay/hookrelay/models"
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
	all     []*models.Webhook
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

// enabledSubscribers returns the enabled webhooks listening to eventType, read inside tx (or
// from the cache, on SQLite) so the event and its fan-out are decided atomically.
func (s *Store) enabledSubscribers(tx *gorm.DB, eventType string) ([]*models.Webhook, error) {
	c := s.subs
	if c == nil {
		return enabledSubscribers(tx, eventType)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.load(tx); err != nil {
		return nil, err
	}
	var out []*models.Webhook
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

// WebhooksToSend returns the webhooks with the given ids for sending their deliveries
// (missing ones are absent). The dispatcher asks for every batch it starts, so they are kept
// for sendCacheFor: a webhook change made through this store is seen by the next call (it
// moves the subscriber generation), one made by another replica within sendCacheFor. The
// returned webhooks are shared: callers must not change them.
func (s *Store) WebhooksToSend(ctx context.Context, ids []string) (map[string]*models.Webhook, error) {
	out := make(map[string]*models.Webhook, len(ids))
	gen := s.webhookGen.Load()
	now := time.Now()
	var miss []string
	s.sendCache.mu.Lock()
	for _, id := range ids {
		if e, ok := s.sendCache.byID[id]; ok && e.gen == gen && now.Sub(e.at) < sendCacheFor {
			out[id] = e.w
		} else {
			miss = append(miss, id)
		}
	}
	s.sendCache.mu.Unlock()
	if len(miss) == 0 {
		return out, nil
	}
	// The generation read before the webhooks: a change committed meanwhile moved it, so what
	// is kept here is not taken for current by the next call.
	read, err := s.GetWebhooks(ctx, miss)
	if err != nil {
		return nil, err
	}
	s.sendCache.mu.Lock()
	if s.sendCache.byID == nil || len(s.sendCache.byID) > 4096 {
		s.sendCache.byID = map[string]cachedWebhook{}
	}
	for id, w := range read {
		out[id] = w
		s.sendCache.byID[id] = cachedWebhook{w: w, gen: gen, at: now}
	}
	s.sendCache.mu.Unlock()
	return out, nil
}

// sendCacheFor bounds how long WebhooksToSend keeps a webhook. A change of this process that
// commits between the generation read and the webhook read (the generation moves inside the
// change's transaction) is also seen after it at the latest.
const sendCacheFor = 250 * time.Millisecond

type sendCache struct {
	mu   sync.Mutex
	byID map[string]cachedWebhook
}

type cachedWebhook struct {
	w   *models.Webhook
	gen uint64
	at  time.Time
}

// webhooksChanged records a change of webhooks (or of the spilled set) made inside the
// current write transaction: the subscriber cache (SQLite) re-reads them, and WebhooksToSend
// does not serve what it kept from before.
func (s *Store) webhooksChanged() {
	s.webhookGen.Add(1)
	s.subs.invalidate()
}
