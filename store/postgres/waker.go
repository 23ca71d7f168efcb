package postgres

import (
	"context"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/store/storedriver"
)

// waker tells the other replicas of committed publishes, in notifications of its own, sent
// after the commit and shared by the publishes that committed while the previous one went out.
//
// A NOTIFY inside the publish would cost more than the notification: at commit, PostgreSQL
// takes one database-wide lock for every notifying transaction and holds it until the commit is
// flushed to disk, so notifying publishes commit one flush after another instead of sharing
// flushes (sampled in pg_stat_activity through the bench's batch throughput phase: an eighth of
// the active backends' samples were commits waiting for that lock). Sent afterwards, in a
// transaction that writes nothing and so need not wait for its flush, the lock is not held
// across a flush. What that gives up is only the notification's atomicity with the publish: a
// process that dies between its commit and the notification leaves the other replicas to find
// the work by their fallback poll, as they would after a dropped LISTEN connection.
//
// A notification names its sender ("<sender> <webhook ids>"), and the sender's own Listen
// drops it (wakeFrom): its publishes have told its own dispatcher already (Queued), and
// hearing them again cost a claim that found nothing, nearly one per publish at 1,000
// publishes/s, while the other replicas still hear every one.
type waker struct {
	sender string // this driver's instance (Driver.instance)
	notify func(ctx context.Context, channel, payload string) error
	mu     sync.Mutex
	due    map[string]int64 // webhooks announced by publishes not yet notified
	kick   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
}

func newWaker(sender string, notify func(ctx context.Context, channel, payload string) error) *waker {
	w := &waker{sender: sender, notify: notify, due: map[string]int64{}, kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// add queues a committed publish's webhooks for the next notification; it never blocks.
func (w *waker) add(due map[string]int64) {
	w.mu.Lock()
	maps.Copy(w.due, due) // only the ids are announced
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *waker) run() {
	defer close(w.done)
	for {
		select {
		case <-w.kick:
			w.send()
		case <-w.stop:
			w.send() // what the last publishes before Close announced
			return
		}
	}
}

// send notifies what is queued, if anything. A failure is logged and not retried: the other
// replicas' fallback poll finds the work.
func (w *waker) send() {
	w.mu.Lock()
	if len(w.due) == 0 {
		w.mu.Unlock()
		return
	}
	due := w.due
	w.due = map[string]int64{}
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.notify(ctx, storedriver.ChannelWake, w.sender+" "+storedriver.WakePayload(due)); err != nil {
		slog.Warn("notify other replicas of new deliveries", "err", err)
	}
}

// close sends what is queued and stops.
func (w *waker) close() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

// wakeFrom splits a wake notification into its sender and what it announces (the webhook ids,
// or "" for all). A payload without a sender, as replicas sent before they named themselves,
// announces all of it.
func wakeFrom(payload string) (sender, ids string) {
	if s, rest, ok := strings.Cut(payload, " "); ok {
		return s, rest
	}
	return "", payload
}
