package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"
)

// PostgreSQL-only parts of the store: LISTEN/NOTIFY, advisory locks (claims with SKIP LOCKED
// are in claim.go).
// Each has a SQLite twin that needs none of it (one process owns a SQLite file).

// Notification channels.
const (
	ChannelWake     = "hookrelay_wake"     // deliveries became due
	ChannelCaptures = "hookrelay_captures" // an inspector capture was stored; payload: "<bin id> <capture id>"
)

// Notify sends a notification to every replica listening on channel (PostgreSQL only; a
// no-op on SQLite, where there is one process).
func (s *Store) Notify(ctx context.Context, channel, payload string) error {
	if !s.IsPostgres() {
		return nil
	}
	return s.W.WithContext(ctx).Exec(`SELECT pg_notify(?, ?)`, channel, payload).Error
}

// Listen calls fn for every notification on channel until ctx is done, reconnecting after
// errors. fn must not block. On SQLite it just waits for ctx.
func (s *Store) Listen(ctx context.Context, channel string, fn func(payload string)) {
	if !s.IsPostgres() {
		<-ctx.Done()
		return
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, channel, fn, func() { backoff = 100 * time.Millisecond })
		if ctx.Err() != nil {
			return
		}
		slog.Warn("listen for notifications", "channel", channel, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (s *Store) listenOnce(ctx context.Context, channel string, fn func(string), connected func()) error {
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return err
	}
	connected()
	// Whatever was announced while we were not listening is found by the fallback poll; wake
	// once now so nothing waits for it.
	fn("")
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(n.Payload)
	}
}

// WithJobLock runs fn only if no other replica is running the job named key right now
// (a transaction-scoped advisory lock on PostgreSQL; always on SQLite). It reports whether
// fn ran.
func (s *Store) WithJobLock(ctx context.Context, key int64, fn func(ctx context.Context) error) (bool, error) {
	if !s.IsPostgres() {
		return true, fn(ctx)
	}
	ran := false
	err := s.W.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var got bool
		if err := tx.Raw(`SELECT pg_try_advisory_xact_lock(?)`, key).Scan(&got).Error; err != nil {
			return err
		}
		if !got {
			return nil
		}
		ran = true
		return fn(ctx)
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return ran, fmt.Errorf("job %d: %w", key, err)
	}
	return ran, err
}
