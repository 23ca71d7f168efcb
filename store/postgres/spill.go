package postgres

import (
	"context"

	"github.com/hookrelay/hookrelay/store/storedriver"
)

// Nothing spills on PostgreSQL (see the package comment): each of these answers as for a
// store where no webhook is spilled.

// Spill spills nothing.
func (d *Driver) Spill(ctx context.Context, webhookIDs []string) (map[string]bool, error) {
	return map[string]bool{}, nil
}

// RequestSpill does nothing.
func (d *Driver) RequestSpill(webhookIDs []string) {}

// SpillWhenPending does nothing.
func (d *Driver) SpillWhenPending(n int) {}

// Backlogs finds no spilled webhook.
func (d *Driver) Backlogs(ctx context.Context, ids []string, count bool) (map[string]*storedriver.Backlog, error) {
	return map[string]*storedriver.Backlog{}, nil
}

// TakeSpilled takes nothing.
func (d *Driver) TakeSpilled(ctx context.Context, r storedriver.TakeRequest) (map[string]storedriver.SpillTake, error) {
	return make(map[string]storedriver.SpillTake, len(r.Hooks)), nil
}

// AbandonOwed has nothing to abandon.
func (d *Driver) AbandonOwed(webhookIDs []string) {}
