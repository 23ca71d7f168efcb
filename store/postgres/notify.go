package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hookrelay/hookrelay/store/storedriver"
	"github.com/jackc/pgx/v5"
)

// How replicas sharing the database tell each other things: LISTEN/NOTIFY, and advisory
// locks for jobs only one of them should run at a time.

// Notify sends a notification to every replica listening on channel, in a transaction of its
// own: one that writes nothing else commits without waiting for the disk, so it holds
// PostgreSQL's database-wide notification lock only briefly (waker.go).
func (s *Driver) Notify(ctx context.Context, channel, payload string) error {
	return s.Writer.WithContext(ctx).Exec(`SELECT pg_notify(?, ?)`, channel, payload).Error
}

// Listen calls fn for every notification on channel until ctx is done, reconnecting after
// errors. fn must not block. On storedriver.ChannelWake, fn gets what the notification
// announces, and never this driver's own (waker.go).
func (s *Driver) Listen(ctx context.Context, channel string, fn func(payload string)) {
	if channel == storedriver.ChannelWake {
		all := fn
		fn = func(payload string) {
			if sender, ids := wakeFrom(payload); sender != s.instance {
				all(ids)
			}
		}
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

// WithJobLock runs fn only if no other replica is running the job named key right now, and
// reports whether it ran. The lock is held by a connection of its own, not one of the pool:
// fn needs pool connections for its work, and a lock holding one of them while fn waits for
// another could starve the job, or with every other connection busy, stall it for good
// (pool_test.go). If that connection drops, the server releases the lock, as it would a
// transaction's.
func (s *Driver) WithJobLock(ctx context.Context, key int64, fn func(ctx context.Context) error) (bool, error) {
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return false, fmt.Errorf("job %d: %w", key, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil {
		return false, fmt.Errorf("job %d: %w", key, err)
	}
	if !got {
		return false, nil
	}
	err = fn(ctx)
	// Closing the connection would release it too; unlocking first frees it at once.
	if _, uerr := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, key); uerr != nil && err == nil {
		err = uerr
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return true, fmt.Errorf("job %d: %w", key, err)
	}
	return true, err
}
