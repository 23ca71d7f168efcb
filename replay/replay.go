// Package replay runs replay jobs: sending a webhook past events again. A job is stored first
// (the API answers with it), then queued a batch at a time; each batch moves the job's
// position in the same transaction as the deliveries it writes, so a crash or a restart loses
// nothing and repeats nothing, and the job goes on from its position when a process runs it
// again. Every process resumes the running jobs at start and looks for orphaned ones (a
// replica that died mid-job) every Every.
package replay

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/models"
)

// Store is what running jobs needs.
type Store interface {
	StepReplayJob(ctx context.Context, id string, batch int) (*models.ReplayJob, int, error)
	RunningReplayJobs(ctx context.Context) ([]string, error)
}

// Batch is how many events one step queues: small enough that a step never holds the writer
// for long, so publishing goes on between steps.
const Batch = 500

// Runner runs jobs in the background, each at most once at a time in this process.
type Runner struct {
	store  Store
	logger *slog.Logger
	// Every is how often running jobs nobody here runs are looked for (30 s).
	Every time.Duration

	mu      sync.Mutex
	ctx     context.Context
	running map[string]bool
	wg      sync.WaitGroup
}

// New returns a Runner; jobs start once Start has been called.
func New(store Store, logger *slog.Logger) *Runner {
	if logger == nil {
		logger = slog.Default()
	}
	return &Runner{store: store, logger: logger, Every: 30 * time.Second, running: map[string]bool{}}
}

// Start resumes the running jobs and looks for orphaned ones until ctx is done; Wait then
// waits for the steps under way.
func (r *Runner) Start(ctx context.Context) {
	r.mu.Lock()
	r.ctx = ctx
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(r.Every)
		defer t.Stop()
		for {
			r.resume(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func (r *Runner) resume(ctx context.Context) {
	ids, err := r.store.RunningReplayJobs(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.logger.Warn("replay: list running jobs", "err", err)
		}
		return
	}
	for _, id := range ids {
		r.Run(id)
	}
}

// Run runs the job in the background unless it runs here already.
func (r *Runner) Run(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx == nil || r.ctx.Err() != nil || r.running[id] {
		return
	}
	r.running[id] = true
	r.wg.Add(1)
	go func(ctx context.Context) {
		defer r.wg.Done()
		defer func() {
			r.mu.Lock()
			delete(r.running, id)
			r.mu.Unlock()
		}()
		r.run(ctx, id)
	}(r.ctx)
}

func (r *Runner) run(ctx context.Context, id string) {
	start := time.Now()
	for ctx.Err() == nil {
		j, _, err := r.store.StepReplayJob(ctx, id, Batch)
		if err != nil {
			if ctx.Err() == nil {
				r.logger.Error("replay", "job", id, "err", err)
			}
			return
		}
		switch j.Status {
		case models.ReplayDone:
			r.logger.Info("replay queued", "job", id, "webhook", j.WebhookID, "queued", j.Queued, "duration", time.Since(start))
			return
		case models.ReplayStopped:
			r.logger.Warn("replay stopped", "job", id, "webhook", j.WebhookID, "queued", j.Queued, "reason", j.Error)
			return
		}
	}
}

// Wait waits for the jobs' goroutines after Start's context is done.
func (r *Runner) Wait() { r.wg.Wait() }
