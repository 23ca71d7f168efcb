// Package maintenance runs Hookrelay's periodic jobs: retention pruning and auto-disabling
// webhooks that have failed for too long. They share one advisory lock, so with replicas on
// PostgreSQL one process at a time runs them.
package maintenance

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hookrelay/hookrelay/models"
)

// Store is what the periodic jobs need from storage.
type Store interface {
	WithJobLock(ctx context.Context, key int64, fn func(ctx context.Context) error) (bool, error)
	Prune(ctx context.Context, before time.Time) (int64, error)
	StaleFailingWebhooks(ctx context.Context, cutoff time.Time) ([]*models.Webhook, error)
	DisableWebhook(ctx context.Context, id, reason string) error
}

// Jobs runs the periodic jobs: retention pruning and auto-disabling webhooks that have
// failed without a single success for too long.
type Jobs struct {
	Store            Store
	Retention        time.Duration
	AutoDisableAfter time.Duration
	Every            time.Duration
	Logger           *slog.Logger
	// Changed is told what the jobs changed (auto-disabled webhooks, pruned events), for the
	// admin change stream; optional.
	Changed func(webhookIDs []string, pruned bool)
}

// Run repeats the jobs until ctx is done.
func (m *Jobs) Run(ctx context.Context) {
	if m.Every <= 0 {
		m.Every = time.Minute
	}
	t := time.NewTicker(m.Every)
	defer t.Stop()
	for {
		m.Once(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// jobLock is the advisory lock key that keeps the jobs on one replica at a time.
const jobLock = 0x686f6f6b // "hook"

// Once runs every job one time, unless another replica is running them right now.
func (m *Jobs) Once(ctx context.Context) {
	if _, err := m.Store.WithJobLock(ctx, jobLock, func(ctx context.Context) error {
		m.jobs(ctx)
		return nil
	}); err != nil && ctx.Err() == nil {
		m.Logger.Error("maintenance", "err", err)
	}
}

func (m *Jobs) jobs(ctx context.Context) {
	now := time.Now().UTC()
	if m.Retention > 0 {
		if n, err := m.Store.Prune(ctx, now.Add(-m.Retention)); err != nil && ctx.Err() == nil {
			m.Logger.Error("retention pruning", "err", err)
		} else if n > 0 {
			m.Logger.Info("retention pruning", "rows", n)
			m.changed(nil, true)
		}
	}
	if m.AutoDisableAfter > 0 {
		hooks, err := m.Store.StaleFailingWebhooks(ctx, now.Add(-m.AutoDisableAfter))
		if err != nil {
			if ctx.Err() == nil {
				m.Logger.Error("auto-disable", "err", err)
			}
			return
		}
		for _, w := range hooks {
			reason := fmt.Sprintf("disabled automatically: every attempt since %s failed (no success for %s)",
				w.FailingSince.UTC().Format(time.RFC3339), m.AutoDisableAfter)
			if err := m.Store.DisableWebhook(ctx, w.ID, reason); err != nil {
				m.Logger.Error("auto-disable", "webhook", w.ID, "err", err)
				continue
			}
			m.Logger.Warn("webhook auto-disabled", "webhook", w.ID, "name", w.Name, "reason", reason)
			m.changed([]string{w.ID}, false)
		}
	}
}

func (m *Jobs) changed(webhookIDs []string, pruned bool) {
	if m.Changed != nil {
		m.Changed(webhookIDs, pruned)
	}
}
