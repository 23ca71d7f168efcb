package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

// Spills, on both drivers: a webhook that falls behind owes events instead of getting a row
// per event at publish, and takes turn what it owes into deliveries. SQLite keeps a position
// in the events table; PostgreSQL a row per publish listing the events owed. On both, a taken
// delivery's row is written by the record of its attempt (takes.go); what an admin and the
// dispatcher see is the same, and tested here.

func testSpillSupported(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	w := NewWebhook(t, s, "message.received", true)
	got, err := s.Spill(ctx, []string{w.ID})
	if err != nil {
		t.Fatal(err)
	}
	if !got[w.ID] || !s.SpillSupported() {
		t.Fatalf("spilled %v (supported %v), want spilled", got[w.ID], s.SpillSupported())
	}
	if p := Publish(t, s, "message.received", ""); len(p.Deliveries) != 0 || p.Event.DeliveryCount != 1 {
		t.Errorf("rows at publish: %d (count %d), want 0 (count 1)", len(p.Deliveries), p.Event.DeliveryCount)
	}
}

// tookRecorded is what a take and the recording of its deliveries did for one webhook.
type tookRecorded struct {
	Queued  int  // owed events taken (and recorded as delivered)
	Spilled bool // the webhook still owes events afterwards
}

// takeAndRecord takes up to n owed events of a webhook, as the dispatcher does, and records each as
// delivered at the first attempt, which writes its row.
func takeAndRecord(t *testing.T, s *store.Store, webhookID string, n int) tookRecorded {
	t.Helper()
	ctx := context.Background()
	got, err := s.TakeSpilled(ctx, store.TakeRequest{Owner: "test", Now: time.Now(),
		Hooks: []store.OwedQuota{{WebhookID: webhookID, Rows: n}}})
	if err != nil {
		t.Fatal(err)
	}
	tk := got[webhookID]
	if err := s.RecordResults(ctx, Delivered(tk.Taken...)); err != nil {
		t.Fatal(err)
	}
	spilled, err := s.SpilledWebhooks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return tookRecorded{Queued: len(tk.Taken), Spilled: slices.Contains(spilled, webhookID)}
}

// A spilled webhook gets no row at publish; what it owes is taken in publish order, each event
// exactly once, and gets its row when recorded; once the last taken one is recorded and
// nothing more is owed, publishing writes its rows again, with nothing lost or doubled at
// the switch. Another webhook is untouched.
func testSpilledWebhookOwesEventsAndTakesThemInOrderExactlyOnce(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	slow := NewWebhook(t, s, "message.received", true)
	other := NewWebhook(t, s, "message.received", true)
	before := Publish(t, s, "message.received", "")

	spilled, err := s.Spill(ctx, []string{slow.ID})
	if err != nil || !spilled[slow.ID] {
		t.Fatalf("spill: %v, %v", spilled, err)
	}
	var want []string
	want = append(want, before.Event.ID)
	for range 10 {
		p := Publish(t, s, "message.received", "")
		if p.Event.DeliveryCount != 2 || len(p.Deliveries) != 1 || p.Deliveries[0].WebhookID != other.ID {
			t.Fatalf("publish while spilled: delivery count %d, rows %d; want 2 counted, 1 row (the other webhook's)",
				p.Event.DeliveryCount, len(p.Deliveries))
		}
		want = append(want, p.Event.ID)
	}
	if st := QueueStats(t, s); st.Spilled != 1 || st.Owed != 10 || st.Pending != 12 {
		t.Errorf("queue stats %+v, want 1 spilled webhook owing 10 events, 12 rows pending", st)
	}
	if got := takeAndRecord(t, s, slow.ID, 4); got.Queued != 4 || !got.Spilled {
		t.Fatalf("take 4 of 10: %+v", got)
	}
	if got := RowsOf(t, s, slow.ID); !SameSet(got, want[:5]) {
		t.Errorf("after taking 4 the rows are for %v, want the event before the spill and the first 4 owed %v", got, want[:5])
	}
	if got := takeAndRecord(t, s, slow.ID, 100); got.Queued != 6 || got.Spilled {
		t.Fatalf("take the last 6 with room for 100: %+v, want 6 queued and the spill ended", got)
	}
	after := Publish(t, s, "message.received", "")
	if len(after.Deliveries) != 2 {
		t.Errorf("publish after the spill ended wrote %d rows, want 2", len(after.Deliveries))
	}
	want = append(want, after.Event.ID)
	if got := RowsOf(t, s, slow.ID); len(got) != len(want) || !SameSet(got, want) {
		t.Fatalf("the spilled webhook has rows for %v, want one for each of %v", got, want)
	}
	if n := len(RowsOf(t, s, other.ID)); n != 12 {
		t.Errorf("the other webhook has %d rows, want 12", n)
	}
	if st := QueueStats(t, s); st.Spilled != 0 || st.Owed != 0 {
		t.Errorf("queue stats after catching up %+v, want nothing spilled", st)
	}
}

// A take passes over events the webhook does not subscribe to, and test events.
func testSpillTakesOnlyEventsTheWebhookSubscribesTo(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	w := NewWebhook(t, s, "message.received", true)
	NewWebhook(t, s, "conversation.started,message.received", true)
	if _, err := s.Spill(ctx, []string{w.ID}); err != nil {
		t.Fatal(err)
	}
	for range 300 { // more than one take reads at once
		Publish(t, s, "conversation.started", "")
	}
	m := Publish(t, s, "message.received", "")
	if st := QueueStats(t, s); st.Owed != 1 {
		t.Errorf("owed %d, want 1 (the one message.received)", st.Owed)
	}
	got := takeAndRecord(t, s, w.ID, 10)
	for got.Spilled && got.Queued == 0 {
		got = takeAndRecord(t, s, w.ID, 10)
	}
	if got.Queued != 1 || got.Spilled {
		t.Fatalf("take: %+v, want the one matching event and the spill ended", got)
	}
	if rows := RowsOf(t, s, w.ID); len(rows) != 1 || rows[0] != m.Event.ID {
		t.Errorf("rows %v, want only %s", rows, m.Event.ID)
	}
}

// Disabling or deleting a spilled webhook ends its spill: nothing more is taken for it.
// Pruning never removes an event still owed (nor, on SQLite, the one at the spill's position).
func testSpillEndsWithTheWebhookAndKeepsOwedEventsFromPruning(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	off := NewWebhook(t, s, "message.received", true)
	gone := NewWebhook(t, s, "message.received", true)
	c := NewWebhook(t, s, "message.received", true)
	if _, err := s.Spill(ctx, []string{off.ID, gone.ID, c.ID}); err != nil {
		t.Fatal(err)
	}
	owed := Publish(t, s, "message.received", "")
	if err := s.DisableWebhook(ctx, off.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteWebhook(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	if got := takeAndRecord(t, s, off.ID, 10); got.Queued != 0 || got.Spilled {
		t.Errorf("take for a disabled webhook: %+v, want nothing", got)
	}
	if got := takeAndRecord(t, s, gone.ID, 10); got.Queued != 0 || got.Spilled {
		t.Errorf("take for a deleted webhook: %+v, want nothing", got)
	}
	ids, err := s.SpilledWebhooks(ctx)
	if err != nil || len(ids) != 1 || ids[0] != c.ID {
		t.Errorf("spilled webhooks %v (%v), want only %s", ids, err, c.ID)
	}
	if _, err := s.Prune(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetEvent(ctx, owed.Event.ID); err != nil {
		t.Fatalf("an event still owed was pruned: %v", err)
	}
	if got := takeAndRecord(t, s, c.ID, 10); got.Queued != 1 {
		t.Errorf("take after pruning: %+v, want the owed event", got)
	}
}

// A spill lives in the database: a restart of the process keeps what is owed.
func testSpillSurvivesReopeningTheStore(t *testing.T, b Backend) {
	dsn := b.DSN(t)
	s := b.Open(t, dsn)
	ctx := context.Background()
	w := NewWebhook(t, s, "message.received", true)
	if _, err := s.Spill(ctx, []string{w.ID}); err != nil {
		t.Fatal(err)
	}
	Publish(t, s, "message.received", "")
	Publish(t, s, "message.received", "")
	s.Close()
	s2 := b.Open(t, dsn)
	ids, err := s2.SpilledWebhooks(ctx)
	if err != nil || len(ids) != 1 {
		t.Fatalf("spilled after reopening: %v, %v", ids, err)
	}
	if got := takeAndRecord(t, s2, w.ID, 10); got.Queued != 2 || got.Spilled {
		t.Errorf("take after reopening: %+v, want the 2 owed events", got)
	}
}

// With a dispatcher listening, a webhook whose backlog reaches the threshold is spilled by
// publishing itself, and the listener is told; rows plus owed events still cover every event
// once. A spill asked for (RequestSpill) is applied by the next publish.
func testPublishSpillsBackloggedWebhooksWhenADispatcherListens(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	var told []string
	s.OnQueued(func(q store.Queued) { told = append(told, q.Spilled...) })
	s.SpillWhenPending(store.SpillThreshold{Due: 32}) // every row due counts at once
	behind := NewWebhook(t, s, "message.received", true)
	asked := NewWebhook(t, s, "message.received", true)
	const events = 200
	for i := range events {
		if i == 10 {
			s.RequestSpill([]string{asked.ID})
		}
		Publish(t, s, "message.received", "")
	}
	if len(told) != 2 {
		t.Fatalf("spills reported %v, want both webhooks once", told)
	}
	st := QueueStats(t, s)
	if st.Spilled != 2 || st.Pending+st.Owed != 2*events {
		t.Errorf("queue stats %+v: want 2 spilled and rows plus owed events = %d", st, 2*events)
	}
	if n := len(RowsOf(t, s, asked.ID)); n != 10 {
		t.Errorf("the webhook asked to spill after 10 events has %d rows, want 10", n)
	}
	if n := len(RowsOf(t, s, behind.ID)); n < 32 || n > 64 {
		t.Errorf("the webhook left behind has %d rows, want it spilled between 32 and 64", n)
	}
}

// The backlog threshold is the engine's to give: without it, a listening store spills
// nothing on its own, however far a webhook falls behind.
func testPublishSpillsByBacklogOnlyAtTheThresholdTheEngineGave(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	s.OnQueued(func(store.Queued) {})
	w := NewWebhook(t, s, "message.received", true)
	for range 100 {
		Publish(t, s, "message.received", "")
	}
	if st := QueueStats(t, s); st.Spilled != 0 || len(RowsOf(t, s, w.ID)) != 100 {
		t.Fatalf("without a threshold: %+v, want no spill and a row per event", st)
	}
	s.SpillWhenPending(store.SpillThreshold{Due: 50})
	for range 100 {
		Publish(t, s, "message.received", "")
	}
	if n := len(RowsOf(t, s, w.ID)); QueueStats(t, s).Spilled != 1 || n > 150 {
		t.Errorf("with a threshold of 50: %d rows, want the webhook spilled within the next 50 events (its 100 pending are past it already)", n)
	}
}

// A burst of fresh deliveries is not a backlog unless it is a large one: only those due for
// the time the engine gave count towards its first threshold, so a receiver that keeps up is
// not spilled by a pause of a few milliseconds, and one whose deliveries have waited that
// long is; any pending delivery counts towards the second.
func testPublishCountsOnlyDeliveriesDueForAWhileAsABacklog(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	s.OnQueued(func(store.Queued) {})
	w := NewWebhook(t, s, "message.received", true)
	s.SpillWhenPending(store.SpillThreshold{Due: 32, DueFor: time.Hour})
	for range 100 {
		Publish(t, s, "message.received", "")
	}
	if st := QueueStats(t, s); st.Spilled != 0 || len(RowsOf(t, s, w.ID)) != 100 {
		t.Fatalf("100 deliveries due for less than an hour: %+v, want no spill and a row per event", st)
	}
	const dueFor = 50 * time.Millisecond
	s.SpillWhenPending(store.SpillThreshold{Due: 32, DueFor: dueFor})
	time.Sleep(2 * dueFor) // the 100 pending have been due for longer now
	for range 40 {
		Publish(t, s, "message.received", "")
	}
	if n := len(RowsOf(t, s, w.ID)); QueueStats(t, s).Spilled != 1 || n > 132 {
		t.Errorf("100 deliveries due for %s: %d rows, want the webhook spilled within the next 32 events", 2*dueFor, n)
	}

	big := NewWebhook(t, s, "conversation.started", true)
	s.SpillWhenPending(store.SpillThreshold{Due: 32, DueFor: time.Hour, Pending: 100})
	for range 99 {
		Publish(t, s, "conversation.started", "")
	}
	if st := QueueStats(t, s); st.Spilled != 1 {
		t.Fatalf("99 fresh deliveries with a threshold of 100 pending: %+v, want only the first webhook spilled", st)
	}
	for range 40 {
		Publish(t, s, "conversation.started", "")
	}
	if n := len(RowsOf(t, s, big.ID)); QueueStats(t, s).Spilled != 2 || n > 132 {
		t.Errorf("fresh deliveries past a threshold of 100 pending: %d rows, want the webhook spilled within 32 events of it", n)
	}
}

// A replay skips the events a spill owes, as it skips pending ones: they are on their way,
// and queuing them again would send them twice.
func testReplaySkipsEventsTheSpillOwes(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	since := time.Now().UTC().Add(-time.Minute)
	old := Publish(t, s, "message.received", "") // before the webhook: replayable
	w := NewWebhook(t, s, "message.received", true)
	if _, err := s.Spill(ctx, []string{w.ID}); err != nil {
		t.Fatal(err)
	}
	Publish(t, s, "message.received", "")
	Publish(t, s, "message.received", "")
	f := store.ReplayFilter{WebhookID: w.ID, Types: w.EventList(), Since: since, Until: time.Now().UTC().Add(time.Second)}
	queued, err := s.QueueReplay(ctx, f, 10, nil)
	if err != nil || queued != 1 {
		t.Fatalf("replay queued %d (%v), want only the event from before the spill", queued, err)
	}
	if got := takeAndRecord(t, s, w.ID, 10); got.Queued != 2 {
		t.Errorf("take after the replay: %+v, want the 2 owed events", got)
	}
	rows := RowsOf(t, s, w.ID)
	seen := map[string]int{}
	for _, id := range rows {
		seen[id]++
	}
	if len(rows) != 3 || seen[old.Event.ID] != 1 {
		t.Errorf("rows %v, want 3 distinct events including %s", rows, old.Event.ID)
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("event %s queued %d times", id, n)
		}
	}
}

// Lists and reads show what a spill owes as pending deliveries under the ids their rows get
// when recorded, so an admin sees the same deliveries before and after their attempts, and
// a page boundary may fall between owed deliveries and rows.
func testOwedDeliveriesAreListedCountedAndReadUnderTheirFutureIDs(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	slow := NewWebhook(t, s, "message.received", true)
	Publish(t, s, "message.received", "") // a row, before the spill
	if _, err := s.Spill(ctx, []string{slow.ID}); err != nil {
		t.Fatal(err)
	}
	for range 6 {
		Publish(t, s, "message.received", "")
	}
	listAll := func() []*models.Delivery {
		t.Helper()
		var all []*models.Delivery
		cursor := ""
		for {
			page, next, err := s.ListDeliveries(ctx, store.DeliveryFilter{WebhookID: slow.ID}, models.Page{Limit: 2, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, page...)
			if next == "" {
				return all
			}
			cursor = next
		}
	}
	before := listAll()
	owed := 0
	for i, d := range before {
		if d.Status != models.StatusPending {
			t.Errorf("delivery %s is %s, want pending", d.ID, d.Status)
		}
		if i > 0 && d.ID >= before[i-1].ID {
			t.Errorf("list not newest first at %d", i)
		}
		if d.Owed != nil {
			owed++
			got, err := s.GetDelivery(ctx, d.ID)
			if err != nil || got.EventID != d.EventID || got.Owed == nil {
				t.Errorf("read owed %s: %+v, %v", d.ID, got, err)
			}
		}
	}
	if len(before) != 7 || owed != 6 {
		t.Fatalf("listed %d deliveries, %d owed; want 7 and 6", len(before), owed)
	}
	if n, err := s.PendingCounts(ctx, []string{slow.ID}); err != nil || n[slow.ID] != 7 {
		t.Fatalf("pending count %v, %v; want 7", n, err)
	}

	takeAndRecord(t, s, slow.ID, 3) // three owed ones attempted: their rows are written
	after := listAll()
	if len(after) != 7 {
		t.Fatalf("after recording 3, listed %d deliveries, want 7", len(after))
	}
	for i := range after {
		if after[i].ID != before[i].ID || after[i].EventID != before[i].EventID {
			t.Errorf("delivery %d was %s (event %s), now %s (event %s)", i, before[i].ID, before[i].EventID, after[i].ID, after[i].EventID)
		}
	}
	if n, _ := s.PendingCounts(ctx, []string{slow.ID}); n[slow.ID] != 4 {
		t.Errorf("pending count after 3 succeeded: %d, want 4", n[slow.ID])
	}
	if _, err := s.GetDelivery(ctx, "dlv_"+strings.Repeat("0", 32)); !errors.Is(err, models.ErrNotFound) {
		t.Errorf("unknown id: %v, want not found", err)
	}
}

// Replicas sharing a PostgreSQL database take one spilled webhook's owed events at the same
// time, while publishes keep adding to them: every event becomes exactly one delivery,
// whichever replica took it (or, when the takes had caught up and ended the spill, the publish
// wrote its row), and the spill ends once all are taken.
func testReplicasTakeEachOwedEventOnce(t *testing.T, b Backend) {
	if b.Name != "postgres" {
		t.Skip("one process owns a SQLite file: there are no replicas to share a spill")
	}
	dsn := b.DSN(t)
	replicas := []*store.Store{b.Open(t, dsn), b.Open(t, dsn)}
	ctx := context.Background()
	w := NewWebhook(t, replicas[0], "message.received", true)
	if _, err := replicas[0].Spill(ctx, []string{w.ID}); err != nil {
		t.Fatal(err)
	}
	const perReplica = 150
	var mu sync.Mutex
	published := map[string]bool{}
	taken := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i, s := range replicas {
		wg.Go(func() {
			for j := range perReplica {
				in := []store.PublishInput{{Type: "message.received", Payload: []byte(fmt.Sprintf(`{"r":%d,"n":%d}`, i, j)),
					OccurredAt: time.Now()}}
				if j%10 == 0 { // some publishes carry several events
					in = append(in, in[0], in[0])
				}
				out, err := s.Publish(ctx, in)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, p := range out {
					published[p.Event.ID] = true
				}
				mu.Unlock()
			}
		})
	}
	publishing := make(chan struct{})
	go func() { wg.Wait(); close(publishing) }()
	var takers sync.WaitGroup
	for i, s := range replicas {
		takers.Go(func() {
			owner := fmt.Sprintf("replica-%d", i)
			for {
				done := false
				select {
				case <-publishing:
					done = true
				default:
				}
				got, err := s.TakeSpilled(ctx, store.TakeRequest{Owner: owner, Now: time.Now(), Lease: time.Minute,
					Hooks: []store.OwedQuota{{WebhookID: w.ID, Rows: 7}}})
				if err != nil {
					errs <- err
					return
				}
				tk := got[w.ID]
				if err := s.RecordResults(ctx, Delivered(tk.Taken...)); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, d := range tk.Taken {
					taken[d.EventID]++
				}
				mu.Unlock()
				// Once publishing is over, a take that found nothing and left no spill means
				// everything owed is taken (the other replica may still be recording). Before,
				// a take that caught up spills again, as a backlog would: spills end and start
				// while publishes run.
				if !tk.Spilled {
					if done && len(tk.Taken) == 0 {
						return
					}
					if !done {
						if _, err := s.Spill(ctx, []string{w.ID}); err != nil {
							errs <- err
							return
						}
					}
				}
			}
		})
	}
	takers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Rows a publish wrote after a spill ended are claimed and delivered like any other.
	for {
		claimed, _ := ClaimFor(t, replicas[1], time.Now(), store.WebhookQuota{WebhookID: w.ID, Free: 1000})
		if len(claimed) == 0 {
			break
		}
		if err := replicas[1].RecordResults(ctx, Delivered(claimed...)); err != nil {
			t.Fatal(err)
		}
	}
	if len(taken) == 0 {
		t.Fatal("nothing was taken from the spill")
	}
	for id, n := range taken {
		if n != 1 || !published[id] {
			t.Errorf("event %s taken %d times (published: %v), want once", id, n, published[id])
		}
	}
	rows := map[string]int{}
	for _, id := range RowsOf(t, replicas[0], w.ID) {
		rows[id]++
	}
	for id := range published {
		if rows[id] != 1 {
			t.Errorf("event %s has %d delivery rows, want 1", id, rows[id])
		}
	}
	if len(rows) != len(published) {
		t.Errorf("rows for %d events, %d published", len(rows), len(published))
	}
	if st := QueueStats(t, replicas[1]); st.Spilled != 0 || st.Owed != 0 || st.Pending != 0 {
		t.Errorf("queue stats after everything was taken and recorded: %+v, want empty", st)
	}
}
