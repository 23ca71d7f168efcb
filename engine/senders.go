package engine

import (
	"sync"
	"sync/atomic"
	"time"
)

// senders runs attempts on goroutines that outlive one attempt. A new goroutine's stack starts
// at the runtime's running average and grows, by copying, when the attempt gets deep into
// net/http's response parsing: that copying was 3 to 5% of the CPU of the bench's delivery
// phases, on both stores. A goroutine that has sent once keeps its grown stack
// for the next attempt; one idle for senderIdle ends, so a burst's goroutines do not stay.
type senders struct {
	work chan func() // unbuffered: a send succeeds only when a goroutine is idle, waiting
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
	// started counts the goroutines started, for tests.
	started atomic.Int64
}

// senderIdle is how long a goroutine without an attempt waits for one before it ends.
const senderIdle = 10 * time.Second

func newSenders() *senders {
	return &senders{work: make(chan func()), stop: make(chan struct{})}
}

// do runs f on an idle goroutine, or on a new one when none is idle; it never waits. The
// number of goroutines follows the attempts in flight, which the dispatcher's slots bound.
func (s *senders) do(f func()) {
	select {
	case s.work <- f:
	default:
		s.wg.Add(1)
		s.started.Add(1)
		go s.run(f)
	}
}

func (s *senders) run(f func()) {
	defer s.wg.Done()
	idle := time.NewTimer(senderIdle)
	defer idle.Stop()
	for {
		f()
		f = nil // what the attempt held (its payload, its delivery) need not wait here with it
		idle.Reset(senderIdle)
		select {
		case f = <-s.work:
		case <-idle.C:
			return
		case <-s.stop:
			return
		}
	}
}

// close ends the idle goroutines and waits for them; the caller has waited for the attempts
// they ran, and gives no more.
func (s *senders) close() {
	s.once.Do(func() { close(s.stop) })
	s.wg.Wait()
}
