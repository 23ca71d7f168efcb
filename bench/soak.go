package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The soak scenario publishes at a steady rate for a long time against a receiver that fails
// 10% of requests (500), lets 5% time out and resets 5% of connections, and samples the
// server each -soak-every: goroutines, resident memory, open descriptors and the queue. A
// server that leaks shows it as a trend after the warm-up; one that loses an event shows it
// at the end, when every event must have reached every subscribed webhook at least once.

// soakSchedule retries quickly and often: with a fifth of attempts failing, 15 retries leave
// about one chance in 10^11 that an event never gets through.
var soakSchedule = []time.Duration{200 * time.Millisecond, 500 * time.Millisecond, time.Second, time.Second,
	2 * time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second, 5 * time.Second, 5 * time.Second,
	5 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second}

// soakTimeout is the delivery timeout of the soak; the receiver's hanging requests outlast it.
const soakTimeout = time.Second

// SoakSample is the server seen at one moment of the soak.
type SoakSample struct {
	AtSeconds  float64 `json:"at_seconds"`
	Goroutines float64 `json:"goroutines"`
	RSSMB      float64 `json:"rss_mb"`
	// GoHeapMB is the Go heap in use: resident memory beyond it (and the Go runtime's own
	// few MB) is memory the Go collector does not manage, SQLite's page caches above all.
	GoHeapMB float64 `json:"go_heap_mb"`
	// GoSysMB is all the memory the Go runtime holds from the system (heap, stacks, its own
	// structures, freed pages not yet returned); resident memory beyond it was mapped by
	// others: SQLite's allocator.
	GoSysMB   float64 `json:"go_sys_mb"`
	OpenFDs   float64 `json:"open_fds"`
	Pending   float64 `json:"pending_deliveries"`
	Published int64   `json:"published"`
}

// SoakResult is the soak scenario.
type SoakResult struct {
	Seconds       float64      `json:"seconds"`
	Rate          float64      `json:"rate"`
	Webhooks      int          `json:"webhooks"`
	Published     int64        `json:"published"`
	PublishErrors int64        `json:"publish_errors"`
	Requests      int64        `json:"receiver_requests"`
	Failed        int64        `json:"answered_500"`
	TimedOut      int64        `json:"left_hanging"`
	Reset         int64        `json:"connections_reset"`
	Delivered     int64        `json:"delivered"` // distinct (event, webhook) pairs answered 2xx
	Complete      bool         `json:"complete"`  // every published event reached every webhook
	Samples       []SoakSample `json:"samples"`
	// Flat says whether goroutines, memory and descriptors stayed within their bounds after
	// the warm-up (the first quarter of the samples): see flat.
	Flat    bool   `json:"flat"`
	Verdict string `json:"verdict"`
}

// unreliable is the soak's receiver.
type unreliable struct {
	srv                                    *httptest.Server
	requests, failed, timedOut, reset, oks atomic.Int64
	mu                                     sync.Mutex
	got                                    map[string]bool // "<event id> <path>" answered 2xx
}

func startUnreliable() *unreliable {
	u := &unreliable{got: map[string]bool{}}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	return u
}

func (u *unreliable) serve(w http.ResponseWriter, r *http.Request) {
	u.requests.Add(1)
	switch p := rand.IntN(100); {
	case p < 10:
		u.failed.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	case p < 15:
		u.timedOut.Add(1)
		select { // outlasts the delivery timeout
		case <-time.After(3 * soakTimeout):
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	case p < 20:
		u.reset.Add(1)
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // close with RST
				}
				c.Close()
				return
			}
		}
		w.WriteHeader(http.StatusBadGateway)
	default:
		key := r.Header.Get("X-Webhook-Id") + " " + r.URL.Path
		u.mu.Lock()
		if !u.got[key] {
			u.got[key] = true
			u.oks.Add(1)
		}
		u.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}
}

func (r *runner) soak(ctx context.Context) (*SoakResult, error) {
	dsn, cleanup, err := r.be.fresh(ctx, "soak")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	u := startUnreliable()
	defer u.srv.Close()
	_, cl, stop, err := r.start(dsn, soakTimeout, soakSchedule...)
	if err != nil {
		return nil, err
	}
	defer stop()
	const webhooks = 4
	for i := range webhooks {
		if _, err := cl.createWebhook(ctx, fmt.Sprintf("soak %d", i), u.srv.URL+"/w/"+strconv.Itoa(i)); err != nil {
			return nil, err
		}
	}
	res := &SoakResult{Rate: r.o.soakRate, Webhooks: webhooks}
	var published, pubErrors atomic.Int64
	sample := func(start time.Time) {
		s := SoakSample{AtSeconds: time.Since(start).Seconds(), Published: published.Load()}
		s.Goroutines, _ = scrape(ctx, cl, "go_goroutines")
		rss, _ := scrape(ctx, cl, "process_resident_memory_bytes")
		s.RSSMB = rss / (1 << 20)
		heap, _ := scrape(ctx, cl, "go_memstats_heap_inuse_bytes")
		s.GoHeapMB = heap / (1 << 20)
		sys, _ := scrape(ctx, cl, "go_memstats_sys_bytes")
		s.GoSysMB = sys / (1 << 20)
		s.OpenFDs, _ = scrape(ctx, cl, "process_open_fds")
		s.Pending, _ = scrape(ctx, cl, "hookrelay_queue_pending_deliveries")
		res.Samples = append(res.Samples, s)
		r.logf("soak: %.0fs goroutines %.0f RSS %.0f MB (Go heap %.0f MB, Go total %.0f MB) fds %.0f pending %.0f published %d",
			s.AtSeconds, s.Goroutines, s.RSSMB, s.GoHeapMB, s.GoSysMB, s.OpenFDs, s.Pending, s.Published)
	}

	start := time.Now()
	pubCtx, cancel := context.WithTimeout(ctx, r.o.soakDuration)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		total := int(r.o.soakRate * r.o.soakDuration.Seconds())
		// pubCtx ends the scheduling; a publish under way at the end runs to its answer (under
		// ctx), or an event the server committed would be delivered without being counted.
		_, _, _, _ = openLoop(pubCtx, r.o.soakRate, total, 64, func(_ context.Context, i int, sent time.Time) error {
			status, body, err := cl.post(ctx, "/api/v1/events", eventBody(i, sent))
			if err = expect(status, body, err); err != nil {
				pubErrors.Add(1)
				return err
			}
			published.Add(1)
			return nil
		})
	}()
	tick := time.NewTicker(r.o.soakEvery)
	sample(start)
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-tick.C:
			sample(start)
		}
	}
	tick.Stop()
	sample(start)
	res.Seconds, res.Published, res.PublishErrors = time.Since(start).Seconds(), published.Load(), pubErrors.Load()

	// Everything published must get through, retries included.
	want := res.Published * webhooks
	wctx, wcancel := r.withLimit(ctx)
	defer wcancel()
	for u.oks.Load() < want && wctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
	sample(start)
	res.Requests, res.Failed, res.TimedOut, res.Reset = u.requests.Load(), u.failed.Load(), u.timedOut.Load(), u.reset.Load()
	res.Delivered = u.oks.Load()
	res.Complete = res.Delivered == want && res.PublishErrors == 0
	res.Flat, res.Verdict = flat(res.Samples)
	if !res.Complete {
		return res, fmt.Errorf("%d of %d (event, webhook) pairs delivered, %d publish errors", res.Delivered, want, res.PublishErrors)
	}
	if !res.Flat {
		return res, errors.New("not flat after the warm-up: " + res.Verdict)
	}
	return res, nil
}

// minJudged is the shortest stretch after the warm-up that flat judges.
const minJudged = 2 * time.Minute

// flat judges the samples taken while publishing, after the first quarter (the warm-up): the
// last ones may not exceed the first ones past the warm-up by more than a leak would need to
// show (goroutines +50%, and at least 64; resident memory +50%, and at least 64 MB;
// descriptors +50%, and at least 64), and the queue must not be growing (its last value within
// twice the median plus the deliveries of a few seconds). The final samples, taken after
// publishing stopped, are left out: the queue then drains.
func flat(samples []SoakSample) (bool, string) {
	if len(samples) < 4 {
		return true, "too short to judge (fewer than 4 samples)"
	}
	run := samples[:len(samples)-2] // the last two are after publishing stopped
	from := run[len(run)/4]
	last := run[len(run)-1]
	// Over seconds, the hanging requests of the moment decide the counts, not a leak.
	if last.AtSeconds-from.AtSeconds < minJudged.Seconds() {
		return true, fmt.Sprintf("too short to judge (%.0f s past the warm-up; it takes %s)", last.AtSeconds-from.AtSeconds, minJudged)
	}
	grew := func(name string, a, b, minAbs float64) string {
		if b > a*1.5 && b-a > minAbs {
			return fmt.Sprintf("%s %.0f → %.0f; ", name, a, b)
		}
		return ""
	}
	why := grew("goroutines", from.Goroutines, last.Goroutines, 64) + grew("RSS MB", from.RSSMB, last.RSSMB, 64) +
		grew("open descriptors", from.OpenFDs, last.OpenFDs, 64)
	pend := make([]float64, 0, len(run))
	for _, s := range run[len(run)/4:] {
		pend = append(pend, s.Pending)
	}
	slices.Sort(pend)
	if median := pend[len(pend)/2]; last.Pending > 2*median+1000 {
		why += fmt.Sprintf("queue %.0f, median %.0f; ", last.Pending, median)
	}
	if why != "" {
		return false, why
	}
	return true, fmt.Sprintf("flat from %.0fs on", from.AtSeconds)
}
