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
//
// A bin missing from the cache is read once however many requests want it at the same time:
// the others wait for that read. Without it, every request in flight to a busy bin read it
// at once whenever its entry ran out, once a second; on PostgreSQL the first of those waves
// opened a pool connection for each (32 new server processes for the bench's 32 senders).
type binCache struct {
	mu      sync.Mutex
	m       map[string]binEntry
	loading map[string]*binLoad
}

type binEntry struct {
	bin     models.Bin
	missing bool
	at      time.Time
}

// binLoad is a read of one bin under way; done is closed when bin and err are set.
type binLoad struct {
	done chan struct{}
	bin  *models.Bin
	err  error
}

const (
	binCacheTTL = time.Second
	binCacheMax = 10_000
	// binReadTimeout bounds a shared read: it runs apart from the requests that wait for it, so
	// that one of them going away does not fail the others.
	binReadTimeout = 10 * time.Second
)

// GetBin reads a bin through the cache; the caller gets its own copy.
func (s *Store) GetBin(ctx context.Context, id string) (*models.Bin, error) {
	now := time.Now()
	c := &s.bins
	c.mu.Lock()
	e, ok := c.m[id]
	if ok && now.Sub(e.at) < binCacheTTL {
		c.mu.Unlock()
		if e.missing {
			return nil, models.ErrNotFound
		}
		b := e.bin
		return &b, nil
	}
	l := c.loading[id]
	if l == nil {
		l = &binLoad{done: make(chan struct{})}
		if c.loading == nil {
			c.loading = make(map[string]*binLoad)
		}
		c.loading[id] = l
		go s.loadBin(context.WithoutCancel(ctx), id, l, now)
	}
	c.mu.Unlock()
	select {
	case <-l.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if l.err != nil {
		return nil, l.err
	}
	if l.bin == nil {
		return nil, models.ErrNotFound
	}
	b := *l.bin
	return &b, nil
}

// loadBin reads bin id for everyone waiting on l and keeps the answer, unless the bin was
// changed while it was read (forgetBin took l off the map): the answer may predate the
// change, so it goes to the waiters, who asked before the change, and no further.
func (s *Store) loadBin(ctx context.Context, id string, l *binLoad, at time.Time) {
	ctx, cancel := context.WithTimeout(ctx, binReadTimeout)
	defer cancel()
	b, err := s.engine.GetBin(ctx, id)
	missing := errors.Is(err, models.ErrNotFound)
	c := &s.bins
	c.mu.Lock()
	if c.loading[id] == l {
		delete(c.loading, id)
		if err == nil || missing {
			if c.m == nil || len(c.m) >= binCacheMax {
				c.m = make(map[string]binEntry)
			}
			e := binEntry{missing: missing, at: at}
			if b != nil {
				e.bin = *b
			}
			c.m[id] = e
		}
	}
	c.mu.Unlock()
	l.bin, l.err = b, err
	close(l.done)
}

func (s *Store) forgetBin(id string) {
	s.bins.mu.Lock()
	delete(s.bins.m, id)
	delete(s.bins.loading, id)
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
	s.bins.m, s.bins.loading = nil, nil
	s.bins.mu.Unlock()
	return err
}
