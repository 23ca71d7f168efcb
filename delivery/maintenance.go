package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hookrelay/hookrelay/models"
)

// Maintenance runs the periodic jobs: retention pruning and auto-disabling webhooks that have
// failed without a single success for too long.
type Maintenance struct {
	Store            *models.Store
	Retention        time.Duration
	AutoDisableAfter time.Duration
	Every            time.Duration
	Logger           *slog.Logger
}

// Run repeats the jobs until ctx is done.
func (m *Maintenance) Run(ctx context.Context) {
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

// Once runs every job one time.
func (m *Maintenance) Once(ctx context.Context) {
	now := time.Now().UTC()
	if m.Retention > 0 {
		if n, err := m.Store.Prune(ctx, now.Add(-m.Retention)); err != nil && ctx.Err() == nil {
			m.Logger.Error("retention pruning", "err", err)
		} else if n > 0 {
			m.Logger.Info("retention pruning", "rows", n)
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
		}
	}
}
