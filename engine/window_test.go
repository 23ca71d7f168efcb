package engine_test

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testsrv"
	"github.com/hookrelay/hookrelay/internal/wait"
)

// limitingReceiver answers 429 at once to a request beyond its own concurrency limit (0: no
// limit) and takes a while over the others, recording how many requests were in flight when
// each one arrived and what it was answered.
type limitingReceiver struct {
	limit    atomic.Int64
	inFlight atomic.Int64
	mu       sync.Mutex
	arrivals []arrival
}

type arrival struct {
	phase, inFlight int
	limited         bool
}

func (l *limitingReceiver) serve(phase *atomic.Int64) testsrv.Respond {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		n := l.inFlight.Add(1)
		defer l.inFlight.Add(-1)
		limit := l.limit.Load()
		refused := limit > 0 && n > limit
		l.mu.Lock()
		l.arrivals = append(l.arrivals, arrival{phase: int(phase.Load()), inFlight: int(n), limited: refused})
		l.mu.Unlock()
		if refused {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		time.Sleep(30 * time.Millisecond)
		w.WriteHeader(http.StatusOK)
	}
}

// of returns the arrivals of a phase: the most in flight at once, and how many were refused.
func (l *limitingReceiver) of(phase int) (n, most, refused int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.arrivals {
		if a.phase == phase {
			n++
			most = max(most, a.inFlight)
			if a.limited {
				refused++
			}
		}
	}
	return n, most, refused
}

// The window a webhook gets follows what its receiver can take: it grows while requests
// succeed, halves on each 429, so a receiver that limits itself to 2 requests at a time
// refuses few of them, and grows back once the receiver lifts its limit. Every event still
// arrives: the refused ones are retried.
func TestTheWindowShrinksOn429AndGrowsBack(t *testing.T) {
	const perWebhook, events = 16, 240
	var phase atomic.Int64
	lr := &limitingReceiver{}
	rc := testsrv.NewReceiver(t, lr.serve(&phase))
	schedule := make([]time.Duration, 30)
	for i := range schedule {
		schedule[i] = 20 * time.Millisecond
	}
	s := testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true, Workers: 64, PerWebhook: perWebhook,
		RetrySchedule: schedule})
	s.CreateWebhook(t, map[string]any{"name": "limits itself", "url": rc.URL, "events": []string{"conversation.started"}})

	delivered := func() int {
		lr.mu.Lock()
		defer lr.mu.Unlock()
		ok := 0
		for _, a := range lr.arrivals {
			if !a.limited {
				ok++
			}
		}
		return ok
	}
	run := func(p int, limit int64) {
		phase.Store(int64(p))
		lr.limit.Store(limit)
		before := delivered()
		// One batch: the whole phase is queued at once, so what is in flight at a time is up
		// to the window alone, not to how fast a test publishes one event after another.
		batch := make([]map[string]any, events)
		for i := range batch {
			batch[i] = map[string]any{"event": "conversation.started", "data": conversation}
		}
		s.Do(t, http.MethodPost, "/api/v1/events/batch", map[string]any{"events": batch}, http.StatusAccepted, nil)
		wait.Until(t, "every event of the phase is answered 2xx", func() bool { return delivered() == before+events })
	}

	run(0, 0) // no limit: the window opens
	_, opened, _ := lr.of(0)
	run(1, 2) // the receiver takes 2 at a time
	n1, _, refused := lr.of(1)
	run(2, 0) // and lifts its limit again
	_, reopened, _ := lr.of(2)

	t.Logf("most in flight: %d unlimited, then %d of %d requests refused at a limit of 2, then %d again", opened, refused, n1, reopened)
	if opened < 6 {
		t.Errorf("with a receiver that takes everything, at most %d requests were in flight at once; want the window to open", opened)
	}
	// A sender that kept its window would have most requests refused: 14 of every 16 sent.
	if refused*2 > n1 {
		t.Errorf("%d of %d requests refused at a limit of 2: the window did not shrink to the receiver", refused, n1)
	}
	if reopened < 6 {
		t.Errorf("after the limit was lifted, at most %d requests were in flight at once; want the window to grow back", reopened)
	}
}
