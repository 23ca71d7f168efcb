package store

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/models"
)

// binCache keeps bins read by id for a moment: the inspector reads its bin on every request
// it receives, and a bin changes rarely. This Store's own changes to a bin drop its entry at
// once; another replica's change (PostgreSQL) is seen within binCacheTTL. Unknown ids are
// remembered too, so a stranger posting to made-up bins costs no query each, and the cache
// is emptied when it holds binCacheMax entries, so such a stranger cannot grow it either.
type binCache struct {
	mu sync.Mutex
	m  map[string]binEntry
}

type binEntry struct {
	bin     models.Bin
	missing bool
	at      time.Time
}

const (
	binCacheTTL = time.Second
	binCacheMax = 10_000
)

// GetBin reads a bin through the cache; the caller gets its own copy.
func (s *Store) GetBin(ctx context.Context, id string) (*models.Bin, error) {
	now := time.Now()
	s.bins.mu.Lock()
	e, ok := s.bins.m[id]
	s.bins.mu.Unlock()
	if ok && now.Sub(e.at) < binCacheTTL {
		if e.missing {
			return nil, models.ErrNotFound
		}
		b := e.bin
		return &b, nil
	}
	b, err := s.engine.GetBin(ctx, id)
	missing := errors.Is(err, models.ErrNotFound)
	if err != nil && !missing {
		return nil, err
	}
	s.bins.mu.Lock()
	if s.bins.m == nil || len(s.bins.m) >= binCacheMax {
		s.bins.m = make(map[string]binEntry)
	}
	e = binEntry{missing: missing, at: now}
	if b != nil {
		e.bin = *b
	}
	s.bins.m[id] = e
	s.bins.mu.Unlock()
	return b, err
}

func (s *Store) forgetBin(id string) {
	s.bins.mu.Lock()
	delete(s.bins.m, id)
	s.bins.mu.Unlock()
}

// CreateBin stores a new bin (an id looked up before it existed is forgotten).
func (s *Store) CreateBin(ctx context.Context, b *models.Bin) error {
	err := s.engine.CreateBin(ctx, b)
	s.forgetBin(b.ID)
	return err
}

// UpdateBin changes a bin; this Store's next read sees the change.
func (s *Store) UpdateBin(ctx context.Context, b *models.Bin) error {
	err := s.engine.UpdateBin(ctx, b)
	s.forgetBin(b.ID)
	return err
}

// DeleteBin removes a bin and its captures; this Store's next read finds it gone.
func (s *Store) DeleteBin(ctx context.Context, id string) error {
	err := s.engine.DeleteBin(ctx, id)
	s.forgetBin(id)
	return err
}

// DeleteWebhook removes a webhook and unlinks the bins that verified with it; cached bins
// would still name it, so the cache starts again.
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	err := s.engine.DeleteWebhook(ctx, id)
	s.bins.mu.Lock()
	s.bins.m = nil
	s.bins.mu.Unlock()
	return err
}
