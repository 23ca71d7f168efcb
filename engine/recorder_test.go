package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/wait"
	"github.com/hookrelay/hookrelay/models"
)

// resultsLog is a result store that logs each write's delivery ids, failing the first
// failFirst writes (every write when failFirst < 0).
type resultsLog struct {
	mu        sync.Mutex
	failFirst int
	writes    [][]string
}

func (l *resultsLog) RecordResults(_ context.Context, rs []models.Result) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.DeliveryID
	}
	l.writes = append(l.writes, ids)
	if l.failFirst < 0 || len(l.writes) <= l.failFirst {
		return errors.New("database is locked")
	}
	return nil
}

func (l *resultsLog) snapshot() [][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.writes)
}

// recorderOutcome collects what the recorder reports, in order.
type recorderOutcome struct {
	mu       sync.Mutex
	recorded []string
	lost     []string
	err      error
}

// startRecorder runs a recorder on log; stop closes it and waits for run to return.
func startRecorder(t *testing.T, log *resultsLog, tune func(r *recorder)) (r *recorder, out *recorderOutcome, stop func()) {
	t.Helper()
	out = &recorderOutcome{}
	r = newRecorder(log,
		func(b []models.Result) {
			out.mu.Lock()
			out.recorded = append(out.recorded, ids(b)...)
			out.mu.Unlock()
		},
		func(b []models.Result, err error) {
			out.mu.Lock()
			out.lost, out.err = append(out.lost, ids(b)...), err
			out.mu.Unlock()
		})
	r.backoff = func(int) time.Duration { return 0 }
	if tune != nil {
		tune(r)
	}
	done := make(chan struct{})
	go func() { defer close(done); r.run() }()
	var once sync.Once
	stop = func() { once.Do(func() { r.close(); <-done }) }
	t.Cleanup(stop)
	return r, out, stop
}

func results(n int) []models.Result {
	out := make([]models.Result, n)
	for i := range out {
		out[i] = models.Result{DeliveryID: fmt.Sprintf("dlv%04d", i), Status: models.StatusSucceeded}
	}
	return out
}

func ids(rs []models.Result) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.DeliveryID
	}
	return out
}

// Results that arrive together go out together, in order, in writes of at most maxFlush.
func TestRecorderBatchesWhatArrivesTogether(t *testing.T) {
	log := &resultsLog{}
	r := newRecorder(log, func([]models.Result) {}, func([]models.Result, error) {})
	all := results(2*maxFlush + 1)
	for _, res := range all { // all buffered before the recorder runs
		r.add(res)
	}
	r.close()
	r.run()
	writes := log.snapshot()
	if len(writes) != 3 || len(writes[0]) != maxFlush || len(writes[1]) != maxFlush || len(writes[2]) != 1 {
		t.Fatalf("%d buffered results went out in writes of %v, want %d, %d and 1", len(all), lens(writes), maxFlush, maxFlush)
	}
	if got := slices.Concat(writes...); !slices.Equal(got, ids(all)) {
		t.Error("the writes do not hold every result once, in order")
	}
}

// A batch as large as fill is written without waiting for more.
func TestRecorderWritesAFullBatchAtOnce(t *testing.T) {
	log := &resultsLog{}
	r, out, _ := startRecorder(t, log, func(r *recorder) { r.fill, r.wait = 3, time.Hour })
	for _, res := range results(3) {
		r.add(res)
	}
	if !wait.For(func() bool { out.mu.Lock(); defer out.mu.Unlock(); return len(out.recorded) == 3 }) {
		t.Fatalf("a full batch waited for more: writes %v", log.snapshot())
	}
}

// A lone result is written once the wait is over, without more arriving or a shutdown.
func TestRecorderWritesASmallBatchAfterTheWait(t *testing.T) {
	log := &resultsLog{}
	r, out, _ := startRecorder(t, log, func(r *recorder) { r.wait = 5 * time.Millisecond })
	r.add(results(1)[0])
	if !wait.For(func() bool { out.mu.Lock(); defer out.mu.Unlock(); return len(out.recorded) == 1 }) {
		t.Fatal("a lone result was never written")
	}
}

// On shutdown every result handed over is written before run returns, however long the
// wait for a fuller batch.
func TestRecorderDrainsOnShutdown(t *testing.T) {
	log := &resultsLog{}
	r, out, stop := startRecorder(t, log, func(r *recorder) { r.wait = time.Hour })
	all := results(5)
	for _, res := range all {
		r.add(res)
	}
	stop()
	if !slices.Equal(out.recorded, ids(all)) {
		t.Errorf("recorded %v before shutdown returned, want %v", out.recorded, ids(all))
	}
}

// A failed write is tried again with the same batch: nothing is lost or reported twice.
func TestRecorderRetriesAFailedWriteWithoutLosingResults(t *testing.T) {
	log := &resultsLog{failFirst: 2}
	r, out, stop := startRecorder(t, log, func(r *recorder) { r.wait = time.Hour }) // one batch
	all := results(7)
	for _, res := range all {
		r.add(res)
	}
	stop()
	writes := log.snapshot()
	if len(writes) != 3 || !slices.Equal(writes[0], ids(all)) || !slices.Equal(writes[2], ids(all)) {
		t.Errorf("writes %v, want the same batch of 7 three times", writes)
	}
	if !slices.Equal(out.recorded, ids(all)) || len(out.lost) != 0 {
		t.Errorf("recorded %v and lost %v, want all 7 recorded once", out.recorded, out.lost)
	}
}

// When every try fails the batch is reported lost (its leases expire and it is attempted
// again), with the error, and the recorder goes on with the next results.
func TestRecorderReportsABatchLostAfterItsTries(t *testing.T) {
	log := &resultsLog{failFirst: -1}
	r, out, stop := startRecorder(t, log, func(r *recorder) { r.tries, r.wait = 3, time.Hour })
	all := results(4)
	for _, res := range all {
		r.add(res)
	}
	stop()
	if got := len(log.snapshot()); got != 3 {
		t.Errorf("%d writes, want 3 tries", got)
	}
	if !slices.Equal(out.lost, ids(all)) || out.err == nil || len(out.recorded) != 0 {
		t.Errorf("lost %v (err %v), recorded %v; want all 4 lost with the error", out.lost, out.err, out.recorded)
	}
}

func lens(writes [][]string) []int {
	out := make([]int, len(writes))
	for i, w := range writes {
		out[i] = len(w)
	}
	return out
}
