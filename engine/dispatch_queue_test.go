package engine_test

import (
	"context"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/internal/testsrv"
	"github.com/hookrelay/hookrelay/internal/wait"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

// publishBatches queues n conversation.started events straight through a store, 500 per
// transaction.
func publishBatches(t *testing.T, s *store.Store, n int) {
	t.Helper()
	et, _ := models.LookupEventType(models.EventConversationStarted)
	now := time.Now().UTC().Truncate(time.Second)
	for from := 0; from < n; from += 500 {
		in := make([]store.PublishInput, min(500, n-from))
		for i := range in {
			in[i] = store.PublishInput{Type: et.Name, Payload: et.Example(now), OccurredAt: now}
		}
		if _, err := s.Publish(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
}

// A healthy webhook gets every event while a stuck one, subscribed to the same events, has a
// large backlog: the stuck one keeps at most its limit in flight and its queue is never in
// the healthy one's way. On SQLite the stuck one is spilled: what it owes beyond its rows
// waits as a position in the events, and rows plus owed events still add up to every event.
func TestHealthyWebhookDrainsWhileAStuckOneHoldsALargeBacklog(t *testing.T) {
	const events, perWebhook = 1000, 2
	release := make(chan struct{})
	stuck := testsrv.NewReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	})
	healthy := testsrv.NewReceiver(t, nil)
	s := testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true, Timeout: time.Minute,
		Workers: 8, PerWebhook: perWebhook})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free()
	s.CreateWebhook(t, map[string]any{"name": "stuck", "url": stuck.URL, "events": []string{"conversation.started"}})
	s.CreateWebhook(t, map[string]any{"name": "healthy", "url": healthy.URL, "events": []string{"conversation.started"}})
	publishBatches(t, s.Store, events)

	healthy.WaitFor(t, events, time.Minute)
	if got := len(stuck.Captures()); got > perWebhook {
		t.Errorf("the stuck endpoint has %d requests in flight, more than its limit of %d", got, perWebhook)
	}
	// The healthy webhook's results are recorded a moment after they arrive.
	var st store.QueueStats
	if !wait.For(func() bool {
		var err error
		if st, err = s.Store.QueueStats(context.Background()); err != nil {
			t.Fatal(err)
		}
		return st.Pending+st.Owed == events && (st.Spilled == 1) == s.Store.SpillSupported()
	}) {
		t.Fatalf("%d deliveries pending and %d owed by %d spilled webhooks, want the stuck webhook's %d in all, spilled on SQLite",
			st.Pending, st.Owed, st.Spilled, events)
	}
	free()
	stuck.WaitFor(t, events, time.Minute)
	if got := len(stuck.Captures()); got != events {
		t.Errorf("the stuck endpoint, released, received %d requests, want %d", got, events)
	}
}

// Deliveries the dispatcher was not told about (queued by another process sharing the
// database, or left leased by a failed record) are found by its periodic rescan.
func TestDeliveriesQueuedWithoutAWakeUpAreFoundByTheRescan(t *testing.T) {
	rc := testsrv.NewReceiver(t, nil)
	s := testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true})
	s.CreateWebhook(t, map[string]any{"name": "r", "url": rc.URL, "events": []string{"conversation.started"}})
	if !s.Store.IsPostgres() {
		// A SQLite file serves one process: silence the wake-up the publish would send.
		s.Store.OnQueued(func(store.Queued) {})
		publishBatches(t, s.Store, 3)
		rc.WaitFor(t, 3, 30*time.Second)
		return
	}
	other, err := store.Open(context.Background(), s.DBPath)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	publishBatches(t, other, 3)
	rc.WaitFor(t, 3, 30*time.Second)
}

// Endpoints that never answered (new or failing) share half the workers; a webhook added
// while dead ones fill that half still gets its first request out at once and, answering,
// the slots it needs, instead of waiting for their timeouts.
func TestNewWebhookIsNotStuckBehindDeadOnesHoldingTheSharedSlots(t *testing.T) {
	release := make(chan struct{})
	stuck := testsrv.NewReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	})
	healthy := testsrv.NewReceiver(t, nil)
	s := testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true, Timeout: time.Minute, Workers: 8})
	defer close(release)
	for range 6 {
		s.CreateWebhook(t, map[string]any{"name": "stuck", "url": stuck.URL, "events": []string{"conversation.started"}})
	}
	publishBatches(t, s.Store, 20)
	if !wait.For(func() bool { return len(stuck.Captures()) >= 4 }) {
		t.Fatalf("only %d requests reached the stuck endpoints", len(stuck.Captures()))
	}
	s.CreateWebhook(t, map[string]any{"name": "healthy", "url": healthy.URL, "events": []string{"conversation.started"}})
	publishBatches(t, s.Store, 50)
	healthy.WaitFor(t, 50, 20*time.Second)
}

// Bursts make the webhook spill, and the pauses between them let it catch up, so the spill
// starts and ends many times while publishes race with takes; every event still arrives
// exactly once, none stranded in a spill.
func TestSpillingOnAndOffDeliversEveryEventOnce(t *testing.T) {
	const bursts, publishers, perBurst = 6, 4, 60
	// 4 in flight of 3 ms each: a burst takes at least 180 ms to drain, longer than a backlog
	// has to wait to count on PostgreSQL (the engine's spillAfter, 100 ms), so the webhook is
	// spilled by a publish of the burst or of the next one on both stores.
	rc := testsrv.NewReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		time.Sleep(3 * time.Millisecond)
		w.WriteHeader(http.StatusOK)
	})
	s := testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true, Workers: 16, PerWebhook: 4})
	s.CreateWebhook(t, map[string]any{"name": "bursty", "url": rc.URL, "events": []string{"conversation.started"}})
	spills := 0
	for b := range bursts {
		var wg sync.WaitGroup
		for range publishers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// A few transactions of many events: the backlog passes the spill threshold
				// faster than the receiver can drain it, however fast this machine is.
				for range perBurst / 20 {
					publishBatches(t, s.Store, 20)
				}
			}()
		}
		wg.Wait()
		if ids, err := s.Store.SpilledWebhooks(context.Background()); err == nil && len(ids) > 0 {
			spills++
		}
		rc.WaitFor(t, (b+1)*publishers*perBurst, time.Minute)
	}
	if s.Store.SpillSupported() && spills == 0 {
		t.Errorf("the webhook was not spilled after any of %d bursts; the test did not exercise spilling", bursts)
	}
	seen := map[string]int{}
	for _, c := range rc.Captures() {
		seen[c.Header.Get("X-Webhook-Id")]++
	}
	if len(seen) != bursts*publishers*perBurst {
		t.Errorf("%d distinct events arrived, want %d", len(seen), bursts*publishers*perBurst)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s arrived %d times", id, n)
		}
	}
	// The last attempts' records, which end the spill, may still be on their way.
	var st store.QueueStats
	var err error
	if !wait.For(func() bool {
		st, err = s.Store.QueueStats(context.Background())
		return err == nil && st.Owed == 0 && st.Spilled == 0
	}) {
		t.Errorf("queue once every event arrived and was recorded: %+v, %v; want nothing spilled or owed", st, err)
	}
}

// --per-webhook bounds the requests in flight to one webhook, and --workers all of them,
// whichever way they start: from claimed rows or taken from a spill, both running at once.
func TestInFlightLimitsHoldWhileSpilling(t *testing.T) {
	const hooks, perWebhook, events = 4, 4, 1200
	var total, mostTotal atomic.Int64
	var per, most [hooks]atomic.Int64
	raise := func(m *atomic.Int64, n int64) {
		for v := m.Load(); n > v && !m.CompareAndSwap(v, n); v = m.Load() {
		}
	}
	rc := testsrv.NewReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		i := int(r.URL.Path[len(r.URL.Path)-1] - '0')
		raise(&most[i], per[i].Add(1))
		raise(&mostTotal, total.Add(1))
		time.Sleep(2 * time.Millisecond)
		per[i].Add(-1)
		total.Add(-1)
		w.WriteHeader(http.StatusOK)
	})
	s := testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true, Workers: hooks * perWebhook, PerWebhook: perWebhook})
	for i := range hooks {
		s.CreateWebhook(t, map[string]any{"name": "busy", "url": rc.URL + "/" + strconv.Itoa(i), "events": []string{"conversation.started"}})
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range events / 4 / 20 {
				publishBatches(t, s.Store, 20)
			}
		})
	}
	wg.Wait()
	rc.WaitFor(t, hooks*events, 2*time.Minute)
	for i := range hooks {
		if m := most[i].Load(); m > perWebhook {
			t.Errorf("webhook %d: up to %d requests in flight at once, more than --per-webhook %d", i, m, perWebhook)
		}
	}
	if m := mostTotal.Load(); m > hooks*perWebhook {
		t.Errorf("up to %d requests in flight in all, more than --workers %d", m, hooks*perWebhook)
	}
}

// A spill started by a moment's backlog ends once the webhook keeps up again. Where publishes
// lease (PostgreSQL) it ends while events go on arriving faster than a take, its send and its
// record take together: its new events stop waiting for takes. On SQLite, where the spill is
// the cheaper path, it may last as long as the stream, and ends after it. Every event arrives
// exactly once either way.
func TestASpillEndsOnceTheWebhookKeepsUpWhileEventsKeepComing(t *testing.T) {
	const events = 600
	rc := testsrv.NewReceiver(t, nil)
	s := testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true, Workers: 16, PerWebhook: 8})
	hook := s.CreateWebhook(t, map[string]any{"name": "keeps up", "url": rc.URL, "events": []string{"conversation.started"}})
	if !s.Store.SpillSupported() {
		t.Skip("this store does not spill")
	}
	publishBatches(t, s.Store, 1) // proves the webhook: only one that answers gets its events leased
	rc.WaitFor(t, 1, time.Minute)
	spilled := func() bool {
		ids, err := s.Store.SpilledWebhooks(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return len(ids) > 0
	}
	s.Store.RequestSpill([]string{hook.ID})
	publishBatches(t, s.Store, 1)
	if !spilled() {
		t.Fatal("the publish after RequestSpill did not spill the webhook")
	}
	endedAt := -1
	var wg sync.WaitGroup
	for p := range 2 {
		wg.Go(func() {
			for i := range events / 2 {
				publishBatches(t, s.Store, 1)
				time.Sleep(time.Millisecond)
				if p == 0 && i%10 == 0 && endedAt < 0 && !spilled() {
					endedAt = i * 2
				}
			}
		})
	}
	wg.Wait()
	if os.Getenv(storetest.BackendEnv) == "postgres" && endedAt < 0 {
		t.Errorf("the webhook stayed spilled through %d events published while it kept up", events)
	}
	rc.WaitFor(t, events+2, time.Minute)
	if !wait.For(func() bool { return !spilled() }) {
		t.Error("the webhook was still spilled once every event had arrived")
	}
	seen := map[string]int{}
	for _, c := range rc.Captures() {
		seen[c.Header.Get("X-Webhook-Id")]++
	}
	if len(seen) != events+2 {
		t.Errorf("%d distinct events arrived, want %d", len(seen), events+2)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s arrived %d times", id, n)
		}
	}
}
