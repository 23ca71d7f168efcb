package postgres

import (
	"context"
	"log/slog"
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
//
// Webhooks announced only for events they owe through a spill (a publish wrote them no row)
// are announced at most once per owedWakeEvery. Every publish owes events to every spilled
// webhook, so with fifty of them spilled (endpoints hanging) each publish's notification named
// all fifty: at 1,000 publishes/s, 520 notifications a second of 1.5 KB each, a third of a
// millisecond of the server apiece, which the healthy webhooks' publishes waited behind
// (their p50 from publish to receipt rose from 2.9 to 3.6 ms with them, p99 from 8.1 to 11.3).
// A spilled webhook is behind by definition, and its owed events wait for a take anyway;
// waking the other replicas' takes for it within owedWakeEvery loses nothing. Webhooks
// with new rows are announced at once, and carry the owed ones waiting with them.
type waker struct {
	sender string // this driver's instance (Driver.instance)
	notify func(ctx context.Context, channel, payload string) error
	mu     sync.Mutex
	due    map[string]int64 // webhooks with new rows, not yet notified
	owed   map[string]bool  // webhooks owed events only, not yet notified
	// owedSent is when a notification last named webhooks owed events only.
	owedSent  time.Time
	owedEvery time.Duration // owedWakeEvery, but in tests
	kick      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	once      sync.Once
}

// owedWakeEvery is how often at most the webhooks owed events only are announced.
const owedWakeEvery = 50 * time.Millisecond

func newWaker(sender string, notify func(ctx context.Context, channel, payload string) error) *waker {
	w := makeWaker(sender, notify)
	go w.run()
	return w
}

// makeWaker is a waker that sends only when send is called (newWaker runs its loop).
func makeWaker(sender string, notify func(ctx context.Context, channel, payload string) error) *waker {
	return &waker{sender: sender, notify: notify, owedEvery: owedWakeEvery, due: map[string]int64{},
		owed: map[string]bool{}, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// add queues a committed publish's webhooks for a notification (owedOnly: those of them owed
// events only); it never blocks.
func (w *waker) add(due map[string]int64, owedOnly map[string]bool) {
	w.mu.Lock()
	for id, at := range due { // only the ids are announced
		if owedOnly[id] {
			w.owed[id] = true
		} else {
			w.due[id] = at
		}
	}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *waker) run() {
	defer close(w.done)
	var later <-chan time.Time // armed while owed webhooks wait for their turn
	for {
		select {
		case <-w.kick:
		case <-later:
			later = nil
		case <-w.stop:
			w.send(true) // what the last publishes before Close announced
			return
		}
		if wait := w.send(false); wait > 0 && later == nil {
			later = time.After(wait)
		}
	}
}

// send notifies what is queued, if anything, and returns how long the owed webhooks queued
// alone must wait (0 when they were sent or none wait); all reports whether they go now
// regardless. A failure is logged and not retried: the other replicas' fallback poll finds
// the work.
func (w *waker) send(all bool) time.Duration {
	w.mu.Lock()
	if len(w.due) == 0 {
		if len(w.owed) == 0 {
			w.mu.Unlock()
			return 0
		}
		if wait := w.owedEvery - time.Since(w.owedSent); !all && wait > 0 {
			w.mu.Unlock()
			return wait
		}
	}
	due := w.due
	for id := range w.owed {
		due[id] = 0
	}
	if len(w.owed) > 0 {
		w.owedSent = time.Now()
		w.owed = map[string]bool{}
	}
	w.due = map[string]int64{}
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.notify(ctx, storedriver.ChannelWake, w.sender+" "+storedriver.WakePayload(due)); err != nil {
		slog.Warn("notify other replicas of new deliveries", "err", err)
	}
	return 0
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
