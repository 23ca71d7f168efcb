package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"
)

// How replicas sharing the database tell each other things: LISTEN/NOTIFY, and advisory
// locks for jobs only one of them should run at a time.

// Notify sends a notification to every replica listening on channel.
func (s *Driver) Notify(ctx context.Context, channel, payload string) error {
	return s.Writer.WithContext(ctx).Exec(`SELECT pg_notify(?, ?)`, channel, payload).Error
}

// Listen calls fn for every notification on channel until ctx is done, reconnecting after
// errors. fn must not block.
func (s *Driver) Listen(ctx context.Context, channel string, fn func(payload string)) {
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

func (s *Driver) listenOnce(ctx context.Context, channel string, fn func(string), connected func()) error {
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
// (a transaction-scoped advisory lock). It reports whether fn ran.
func (s *Driver) WithJobLock(ctx context.Context, key int64, fn func(ctx context.Context) error) (bool, error) {
	ran := false
	err := s.Writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
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
