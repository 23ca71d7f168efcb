package sqlcommon

import (
	"context"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/models"
)

// WebhooksToSend returns the webhooks with the given ids for sending their deliveries
// (missing ones are absent). The dispatcher asks for every batch it starts, so they are kept
// for sendCacheFor: a webhook change made through this store is seen by the next call (it
// moves the subscriber generation), one made by another replica within sendCacheFor. The
// returned webhooks are shared: callers must not change them.
func (s *Base) WebhooksToSend(ctx context.Context, ids []string) (map[string]*models.Webhook, error) {
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
