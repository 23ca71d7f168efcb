package engine

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/delivery"
	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/internal/wait"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

// A publish gets slots only where its deliveries would be claimed at once: a proven webhook
// with room in its window and nothing of its own waiting, within the global bound and what
// the running claim was planned for. Granted slots are in flight until given back. A spilled
// webhook with room and no taken work waiting keeps up: it gets slots too, and a take that
// can end its spill.
func TestReserveGrantsOnlyWhatWouldBeClaimedAtOnce(t *testing.T) {
	now := time.Now()
	tb := newTable(8, func(int) {})
	add := func(id string, tune func(w *webhook)) {
		w := tb.get(id)
		w.proven, w.limit = true, 4
		if tune != nil {
			tune(w)
		}
	}
	add("ready", nil)
	add("unproven", func(w *webhook) { w.proven = false })
	add("due", func(w *webhook) { w.markDue(now.UnixMilli() - 1) })
	add("retry-later", func(w *webhook) { w.markDue(now.Add(time.Minute).UnixMilli()) })
	add("spilled", func(w *webhook) { w.spilled = true })
	add("spilled-due", func(w *webhook) { w.spilled = true; w.markDue(now.UnixMilli()) })
	add("spilled-taking", func(w *webhook) { w.spilled, w.taking = true, true })
	add("spilled-ready", func(w *webhook) { w.spilled, w.ready = true, []*models.Delivery{{ID: "dlv_owed"}} })
	add("backlogged", func(w *webhook) { w.backlogSince = now })
	add("busy", func(w *webhook) { w.inflight, tb.inflight = 3, 3 })

	want := map[string]int{"ready": 10, "unproven": 1, "due": 1, "retry-later": 1, "spilled": 1,
		"spilled-due": 1, "spilled-taking": 1, "spilled-ready": 1, "backlogged": 1, "busy": 5, "unknown": 1}
	got, askedTake := tb.reserve(want, now, 64)
	// A spilled webhook with room and no taken work waiting keeps up, whether owed events
	// are due or a take is under way: it gets its slots, and a take is asked for unless one
	// is under way, to end the spill.
	wantGrant := map[string]int{"ready": 4, "retry-later": 1, "spilled": 1, "spilled-due": 1, "spilled-taking": 1, "busy": 1}
	if len(got) != len(wantGrant) {
		t.Fatalf("granted %v, want %v", got, wantGrant)
	}
	for id, n := range wantGrant {
		if got[id] != n {
			t.Errorf("granted %s %d, want %d (all: %v)", id, got[id], n, got)
		}
	}
	if sp := tb.hooks["spilled"]; !askedTake || !sp.taking || sp.takeRows != 4*takeWindows {
		t.Errorf("asked for a take: %v, the spilled webhook taking %v %d rows; want a take of %d asked for",
			askedTake, sp.taking, sp.takeRows, 4*takeWindows)
	}
	if tb.hooks["spilled-taking"].takeRows != 0 {
		t.Error("asked for another take of a webhook already taking")
	}
	if tb.inflight != 3+9 || tb.hooks["busy"].inflight != 4 {
		t.Errorf("in flight %d (busy %d) after the grant, want 12 (4): granted slots count at once", tb.inflight, tb.hooks["busy"].inflight)
	}
	tb.unreserve(got)
	tb.grants.Done()
	if tb.inflight != 3 || tb.hooks["ready"].inflight != 0 {
		t.Errorf("in flight %d after giving the grant back, want 3", tb.inflight)
	}
	if got, asked := tb.reserve(map[string]int{"spilled": 1}, now, 64); got["spilled"] != 1 || asked {
		t.Errorf("a spilled webhook whose take is under way: granted %v, asked for another take %v; want 1 granted and no take", got, asked)
	}
	tb.unreserve(map[string]int{"spilled": 1})
	tb.grants.Done()

	// The global bound counts what is in flight and what the running claim will start.
	tb.claiming = 64 - 3 - 2
	if got, _ := tb.reserve(map[string]int{"ready": 4}, now, 64); got["ready"] != 2 {
		t.Errorf("with 2 global slots left granted %v, want ready: 2", got)
	}
	tb.grants.Done()

	// Closed (shutting down): nothing more is granted, and closing waits for open grants.
	open, _ := tb.reserve(map[string]int{"retry-later": 1}, now, 1000)
	if open["retry-later"] != 1 {
		t.Fatalf("granted %v, want retry-later: 1", open)
	}
	closed := make(chan struct{})
	go func() { tb.closeGrants(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("closeGrants returned while a grant was open")
	case <-time.After(50 * time.Millisecond):
	}
	tb.grants.Done()
	<-closed
	if got, _ := tb.reserve(map[string]int{"ready": 1}, now, 1000); got != nil {
		t.Errorf("granted %v after closing", got)
	}
}

// claimCounter counts the deliveries the dispatcher claims and the bodies it reads back, on
// the real store underneath.
type claimCounter struct {
	Queue
	claimed, bodiesRead atomic.Int64
}

func (c *claimCounter) EventPayloads(ctx context.Context, ids []string) (map[string]store.EventBody, error) {
	c.bodiesRead.Add(int64(len(ids)))
	return c.Queue.EventPayloads(ctx, ids)
}

func (c *claimCounter) ClaimFor(ctx context.Context, r store.ClaimForRequest) ([]*models.Delivery, map[string]int64, error) {
	got, next, err := c.Queue.ClaimFor(ctx, r)
	c.claimed.Add(int64(len(got)))
	return got, next, err
}

// Events published one per request to a webhook that answers are sent without a claim, each
// exactly once; a dispatcher that stops while
// publishes go on sends what was leased to it and leaves no lease behind, and the next one
// sends the rest.
func TestPublishesLeasedToTheDispatcherAreSentWithoutAClaimAndNoneIsLeftAtShutdown(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	got := map[string]int{}
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got[r.Header.Get("webhook-id")]++
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rc.Close)
	received := func() (events, total int) {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range got {
			total += n
		}
		return len(got), total
	}
	waitReceived := func(n int) {
		t.Helper()
		wait.Until(t, fmt.Sprintf("%d events are received", n), func() bool { e, _ := received(); return e >= n })
	}
	db := storetest.Open(t, storetest.DSN(t))
	w := &models.Webhook{Name: "r", URL: rc.URL, Events: models.EventConversationStarted, Enabled: true, Secret: "s"}
	if err := db.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	et, _ := models.LookupEventType(models.EventConversationStarted)
	publish := func() {
		now := time.Now().UTC().Truncate(time.Second)
		if _, err := db.PublishOne(ctx, store.PublishInput{Type: et.Name, Payload: et.Example(now), OccurredAt: now}); err != nil {
			t.Error(err)
		}
	}
	sender := delivery.NewSender(delivery.SenderConfig{Timeout: 5 * time.Second, AllowPrivate: true, Version: "test"})
	t.Cleanup(sender.CloseIdleConnections)
	run := func(q Queue) (*Dispatcher, context.CancelFunc, chan error) {
		d := New(Config{Store: q, Sender: sender, Workers: 8, RetrySchedule: delivery.DefaultRetrySchedule})
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- d.Run(runCtx) }()
		return d, cancel, done
	}
	counter := &claimCounter{Queue: db}
	d, cancel, done := run(counter)

	publish() // the first delivery proves the webhook (new ones go through claims)
	waitReceived(1)
	wait.Until(t, "the webhook is proven by its first delivery", func() bool {
		d.table.mu.Lock()
		defer d.table.mu.Unlock()
		w := d.table.hooks[w.ID]
		return w != nil && w.proven
	})
	proven, readBefore := counter.claimed.Load(), counter.bodiesRead.Load()
	const oneByOne = 20
	for i := range oneByOne {
		publish()
		waitReceived(2 + i)
	}
	// A claim may find a row before its publish has handed over the body (the row is visible
	// at the commit, the body a moment later), and reads it back; a leased delivery is handed
	// over after its body, and never is.
	if n := counter.bodiesRead.Load() - readBefore; n != 0 {
		t.Errorf("%d event bodies read back for leased deliveries: their publish hands the bodies over first", n)
	}
	if extra := counter.claimed.Load() - proven; extra != 0 {
		t.Errorf("%d of %d events published one by one were claimed; leased at publish, none should be", extra, oneByOne)
	}

	// Publishes go on while the dispatcher stops.
	var wg sync.WaitGroup
	const during = 200
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range during / 4 {
				publish()
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the dispatcher did not stop")
	}
	var left []struct {
		ID          string
		EventID     string
		LockedUntil int64
		CreatedAt   time.Time
	}
	if err := db.ScanSQL(ctx, &left, `SELECT id, event_id, locked_until, created_at FROM deliveries WHERE status = 'pending' AND locked_by = ? AND locked_until > 0`, d.owner); err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("the stopped dispatcher left %d deliveries leased to it: %+v (stopped at %v)", len(left), left, time.Now())
	}
	wg.Wait()

	_, cancel, done = run(db)
	defer func() { cancel(); <-done }()
	total := 1 + oneByOne + during
	waitReceived(total)
	time.Sleep(100 * time.Millisecond) // room for a duplicate to show
	if events, sent := received(); events != total || sent != total {
		t.Errorf("%d events received %d times, want %d once each", events, sent, total)
	}
}

// A spilled webhook's window holds across the paths that fill it at once: a publish is not
// granted the slots the running claim was planned to fill for the webhook, nor those of
// ready work a plan handed out and the loop has not started yet.
func TestReserveLeavesTheSlotsOfAPlannedClaimAndOfHandedOutReadyWork(t *testing.T) {
	now := time.Now()
	tb := newTable(4, func(int) {})
	w := tb.get("spilled")
	w.proven, w.limit, w.spilled = true, 4, true
	w.ready = []*models.Delivery{{ID: "dlv_1", WebhookID: "spilled"}, {ID: "dlv_2", WebhookID: "spilled"}}
	w.markDue(now.UnixMilli())

	p, ready, _ := tb.plan(now, 64, true)
	if len(ready) != 2 || len(p.Claim) != 1 || p.Claim[0].Free != 2 {
		t.Fatalf("plan handed out %d ready and claims %v, want the 2 ready and a claim of the other 2 slots", len(ready), p.Claim)
	}
	if got, _ := tb.reserve(map[string]int{"spilled": 4}, now, 64); got != nil {
		t.Errorf("granted %v while the window's 4 slots were handed out and planned for a claim", got)
		tb.grants.Done()
	}
	tb.claimed(p.Claim, nil, map[string]int64{"spilled": 0}, now, 0)
	w.taking, w.takeRows = false, 0
	if got, _ := tb.reserve(map[string]int{"spilled": 4}, now, 64); got["spilled"] != 2 {
		t.Errorf("after the claim found nothing, granted %v, want the 2 slots it left", got)
	}
}
