package inspector

import (
	"context"
	"log/slog"
	"strings"
	"time"

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
//
// Announcing leaves the request's path: a busy bin's captures queue while one NOTIFY is out,
// and the next announces all of them. A NOTIFY per capture cost each request a round trip and a
// transaction holding PostgreSQL's database-wide notification lock, which the engine's wake-ups
// need too. A payload is "<sender> <bin> <capture> [<bin> <capture>]…". (Replicas from
// before batching read only payloads of one capture: while a rolling upgrade runs, their
// viewers miss the captures announced together. History has them.)
type Replicated struct {
	store    ReplicaStore
	hub      *Hub
	self     string
	logger   *slog.Logger
	loads    chan [2]string // bin id, capture id: read back off the listener goroutine
	announce chan [2]string // bin id, capture id: this replica's captures, to announce
}

// NewReplicated wraps hub for cross-replica fan-out.
func NewReplicated(store ReplicaStore, hub *Hub, logger *slog.Logger) *Replicated {
	if logger == nil {
		logger = slog.Default()
	}
	return &Replicated{store: store, hub: hub, self: models.RandomToken(8), logger: logger,
		loads: make(chan [2]string, 256), announce: make(chan [2]string, 4096)}
}

// Publish implements Publisher.
func (r *Replicated) Publish(binID, captureID string, msg func() []byte) {
	publishLocal(r.hub, binID, msg)
	select {
	case r.announce <- [2]string{binID, captureID}:
	default:
		// Live view only, as on the receiving side: other replicas' viewers miss this one.
		r.logger.Warn("capture announcement queue full; other replicas skip a live update", "bin", binID)
	}
}

// announceMax bounds a payload below PostgreSQL's 8000 bytes, with room for one more entry
// (server-made ids: a bin's 48 characters, a capture's 36).
const announceMax = 7000

// Announcements go out at most every announceEvery, unless a full payload's worth
// (announceFull entries) is waiting. Each one is a transaction of its own on PostgreSQL:
// sent whenever the previous had returned, a bin taking 10,000 captures/s announced them 13 at
// a time, 750 transactions a second, and the bin's captures, written one group at a time, took
// 10% fewer per second beside them than with none sent. Other replicas' viewers see a capture
// up to announceEvery later than this one's, which no one watching can tell.
const (
	announceEvery = 10 * time.Millisecond
	announceFull  = announceMax / (1 + 48 + 1 + 36)
)

// nextAnnouncement is the payload announcing first and whatever else is queued in more, as
// much as one NOTIFY holds.
func nextAnnouncement(self string, first [2]string, more <-chan [2]string) string {
	var b strings.Builder
	b.WriteString(self)
	add := func(a [2]string) {
		b.WriteByte(' ')
		b.WriteString(a[0])
		b.WriteByte(' ')
		b.WriteString(a[1])
	}
	add(first)
	for b.Len() < announceMax {
		select {
		case a := <-more:
			add(a)
		default:
			return b.String()
		}
	}
	return b.String()
}

// announced splits a payload into its sender and its (bin, capture) pairs; ok is false for a
// payload of another form.
func announced(payload string) (sender string, pairs [][2]string, ok bool) {
	parts := strings.Fields(payload)
	if len(parts) < 3 || len(parts)%2 == 0 {
		return "", nil, false
	}
	for i := 1; i < len(parts); i += 2 {
		pairs = append(pairs, [2]string{parts[i], parts[i+1]})
	}
	return parts[0], pairs, true
}

// Run announces this replica's captures and listens for other replicas' until ctx is done.
func (r *Replicated) Run(ctx context.Context) {
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case first := <-r.announce:
				sent := time.Now()
				payload := nextAnnouncement(r.self, first, r.announce)
				if err := r.store.Notify(ctx, store.ChannelCaptures, payload); err != nil && ctx.Err() == nil {
					r.logger.Warn("announce captures to other replicas", "err", err)
				}
				if len(r.announce) >= announceFull {
					continue
				}
				wait := time.NewTimer(announceEvery - time.Since(sent))
				select {
				case <-ctx.Done():
					wait.Stop()
					return
				case <-wait.C:
				}
			}
		}
	}()
	go r.store.Listen(ctx, store.ChannelCaptures, func(payload string) {
		if strings.HasPrefix(payload, r.self+" ") {
			return // this replica's own announcement, heard back: its viewers have it
		}
		_, pairs, ok := announced(payload)
		if !ok {
			return
		}
		for _, p := range pairs {
			if r.hub.Clients(p[0]) == 0 {
				continue
			}
			select {
			case r.loads <- p:
			default:
				// Live view only: a burst beyond the buffer is dropped here; history has it.
				r.logger.Warn("capture fan-out queue full; a live update was skipped", "bin", p[0])
			}
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
