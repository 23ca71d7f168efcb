package inspector

import (
	"context"
	"log/slog"
	"strings"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

// ReplicaStore is what crossing captures between replicas needs: PostgreSQL's NOTIFY and
// LISTEN, and reading the capture another replica stored.
type ReplicaStore interface {
	Notify(ctx context.Context, channel, payload string) error
	Listen(ctx context.Context, channel string, fn func(payload string))
	GetCapture(ctx context.Context, binID, id string) (*models.Capture, error)
}

// Replicated is the Publisher for several replicas on PostgreSQL: a capture is pushed to this
// process's WebSocket clients at once and announced with NOTIFY; every other replica reads the
// capture back by id (a NOTIFY payload is limited to 8000 bytes, a capture may hold 1 MiB) and
// pushes it to its own clients.
type Replicated struct {
	store  ReplicaStore
	hub    *Hub
	self   string
	logger *slog.Logger
	loads  chan [2]string // bin id, capture id: read back off the listener goroutine
}

// NewReplicated wraps hub for cross-replica fan-out.
func NewReplicated(store ReplicaStore, hub *Hub, logger *slog.Logger) *Replicated {
	if logger == nil {
		logger = slog.Default()
	}
	return &Replicated{store: store, hub: hub, self: models.RandomToken(8), logger: logger, loads: make(chan [2]string, 256)}
}

// Publish implements Publisher.
func (r *Replicated) Publish(binID, captureID string, msg func() []byte) {
	publishLocal(r.hub, binID, msg)
	if err := r.store.Notify(context.Background(), store.ChannelCaptures, r.self+" "+binID+" "+captureID); err != nil {
		r.logger.Warn("announce capture to other replicas", "bin", binID, "err", err)
	}
}

// Run listens for other replicas' captures until ctx is done.
func (r *Replicated) Run(ctx context.Context) {
	go r.store.Listen(ctx, store.ChannelCaptures, func(payload string) {
		parts := strings.Fields(payload)
		if len(parts) != 3 || parts[0] == r.self || r.hub.Clients(parts[1]) == 0 {
			return
		}
		select {
		case r.loads <- [2]string{parts[1], parts[2]}:
		default:
			// Live view only: a burst beyond the buffer is dropped here; history has it.
			r.logger.Warn("capture fan-out queue full; a live update was skipped", "bin", parts[1])
		}
	})
	for {
		select {
		case <-ctx.Done():
			return
		case l := <-r.loads:
			c, err := r.store.GetCapture(ctx, l[0], l[1])
			if err != nil {
				if ctx.Err() == nil {
					r.logger.Warn("read capture announced by another replica", "bin", l[0], "capture", l[1], "err", err)
				}
				continue
			}
			publishLocal(r.hub, l[0], func() []byte { v := verdictsOf(c); return message(c, &v) })
		}
	}
}
