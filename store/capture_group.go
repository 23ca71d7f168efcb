package store

import (
	"context"
	"time"

	"github.com/hookrelay/hookrelay/models"
)

// Group commit of inspector captures (see group). A bin taking requests as fast as senders
// send them would otherwise cost a transaction and a pruning query per request, on the one
// writer that deliveries need too.

// A capture transaction holds at most maxCaptureGroup captures and, past the first,
// maxCaptureGroupBytes of bodies: a few large bodies must not make one transaction hold the
// writer for long.
const (
	maxCaptureGroup      = 64
	maxCaptureGroupBytes = 4 << 20
)

// Under load, a capture transaction waits up to captureGatherWait for captureGatherTo
// captures (see gathering). In the inspector scenario (32 senders, SQLite) a transaction held
// about 6 captures without it and about 13 with it, and a capture took 7% less CPU; waiting
// for 24 left a third of the machine idle (docs/performance.md).
const (
	captureGatherTo   = 16
	captureGatherWait = 150 * time.Microsecond
)

type captureIn struct {
	c    *models.Capture
	keep int
}

type captureCall = call[captureIn, struct{}]

func takeCaptures(q []*captureCall) int {
	n, bytes := 0, 0
	for _, c := range q {
		if n == maxCaptureGroup || (n > 0 && bytes+len(c.in.c.Body) > maxCaptureGroupBytes) {
			break
		}
		n, bytes = n+1, bytes+len(c.in.c.Body)
	}
	return n
}

// InsertCapture stores a capture as InsertCaptures does, in a transaction shared with
// whatever other InsertCapture calls are waiting at the same moment.
func (s *Store) InsertCapture(ctx context.Context, c *models.Capture, keep int) error {
	_, err := s.captures.do(ctx, captureIn{c: c, keep: keep})
	return err
}

func (s *Store) captureBatch(batch []*captureCall) {
	batch = live(batch)
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	one := func(ctx context.Context, in captureIn) (struct{}, error) {
		return struct{}{}, s.InsertCaptures(ctx, []*models.Capture{in.c}, in.keep)
	}
	cs := make([]*models.Capture, len(batch))
	for i, c := range batch {
		cs[i] = c.in.c
		if c.in.keep != batch[0].in.keep { // never so today: every bin keeps as many
			runEach(ctx, batch, one)
			return
		}
	}
	err := s.InsertCaptures(ctx, cs, batch[0].in.keep)
	if err == nil || len(batch) == 1 {
		for _, c := range batch {
			c.err = err
		}
		return
	}
	runEach(ctx, batch, one)
}
