package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/wait"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/conformance"
	"github.com/hookrelay/hookrelay/store/postgres"
	"github.com/jackc/pgx/v5"
)

// Takes lease the owed rows they hand out; a taker that goes away leaves them owed until the
// lease runs out. These tests move the clock by the take's Now instead of waiting.

// replicasSpilledWith opens two replicas of one database with a spilled webhook owing the
// events of one publish of n events (one owed row), whose ids it returns in order.
func replicasSpilledWith(t *testing.T, n int) (a, b *store.Store, w *models.Webhook, ids []string) {
	t.Helper()
	a, b, _ = twoReplicas(t)
	w = conformance.NewWebhook(t, a, "message.received", true)
	if _, err := a.Spill(context.Background(), []string{w.ID}); err != nil {
		t.Fatal(err)
	}
	in := make([]store.PublishInput, n)
	for i := range in {
		in[i] = store.PublishInput{Type: "message.received", Payload: []byte(`{"n":1}`), OccurredAt: time.Now()}
	}
	out, err := a.Publish(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range out {
		ids = append(ids, p.Event.ID)
	}
	return a, b, w, ids
}

func takeAt(t *testing.T, s *store.Store, owner string, now time.Time, webhookID string, n int) store.SpillTake {
	t.Helper()
	got, err := s.TakeSpilled(context.Background(), store.TakeRequest{Owner: owner, Now: now, Lease: time.Minute,
		Hooks: []store.OwedQuota{{WebhookID: webhookID, Rows: n}}})
	if err != nil {
		t.Fatal(err)
	}
	return got[webhookID]
}

func eventsOf(ds []*models.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.EventID)
	}
	return out
}

// checkDeliveredOnce checks that each event has one row for the webhook, with one attempt,
// and that nothing is owed or spilled any more.
func checkDeliveredOnce(t *testing.T, s *store.Store, webhookID string, events []string) {
	t.Helper()
	ctx := context.Background()
	if rows := conformance.RowsOf(t, s, webhookID); !slices.Equal(rows, events) {
		t.Errorf("rows for events %v, want one for each of %v", rows, events)
	}
	ds, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{WebhookID: webhookID}, models.Page{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if attempts, err := s.ListAttempts(ctx, d.ID); err != nil || len(attempts) != 1 || d.AttemptCount != 1 {
			t.Errorf("delivery %s: %d attempts logged (%v), count %d; want 1", d.ID, len(attempts), err, d.AttemptCount)
		}
	}
	if st := conformance.QueueStats(t, s); st.Spilled != 0 || st.Owed != 0 || st.Pending != 0 {
		t.Errorf("queue stats %+v, want nothing spilled, owed or pending", st)
	}
}

// A replica that took events and died leaves them owed but leased: another replica takes only
// what is not leased until the lease runs out, then takes the dead one's events again, under
// the same delivery ids.
func TestEventsOfATakerThatDiedAreTakenAgainWhenTheLeaseRunsOut(t *testing.T) {
	a, b, w, ids := replicasSpilledWith(t, 5)
	t0 := time.Now()
	first := takeAt(t, a, "a", t0, w.ID, 3) // a dies with these in flight
	if got := eventsOf(first.Taken); !slices.Equal(got, ids[:3]) {
		t.Fatalf("first take: %v, want %v", got, ids[:3])
	}
	if bl, err := b.Backlogs(context.Background(), []string{w.ID}, true); err != nil || *bl[w.ID].OwedEvents != 5 {
		t.Errorf("owed while taken: %+v, %v; want all 5 (taken events are owed until recorded)", bl[w.ID], err)
	}
	during := takeAt(t, b, "b", t0.Add(30*time.Second), w.ID, 10)
	if got := eventsOf(during.Taken); !slices.Equal(got, ids[3:]) || !during.Spilled || during.More {
		t.Fatalf("take beside a live lease: %v (spilled %v, more %v), want %v and the spill kept", got, during.Spilled, during.More, ids[3:])
	}
	// a's lease has run out, not b's own.
	after := takeAt(t, b, "b", t0.Add(70*time.Second), w.ID, 10)
	if got := eventsOf(after.Taken); !slices.Equal(got, ids[:3]) {
		t.Fatalf("take after the lease ran out: %v, want %v", got, ids[:3])
	}
	for i, d := range after.Taken {
		if d.ID != first.Taken[i].ID {
			t.Errorf("event %s taken again as %s, first as %s; want one id", d.EventID, d.ID, first.Taken[i].ID)
		}
	}
	for _, tk := range []store.SpillTake{during, after} {
		conformance.RecordDelivered(t, b, tk.Taken...)
	}
	checkDeliveredOnce(t, b, w.ID, ids)
}

// A replica whose lease ran out may still record: its attempts were made. Meanwhile another
// replica took part of its owed row again, which split the row. The late record writes the
// rows of all it sent; the other replica's record of the same events writes none; the rest of
// the split row, which the late record could not find, is found delivered by the next take,
// not sent again. Each event ends with one row and one attempt, and the spill ends.
func TestALateRecordAfterTheLeaseRanOutLeavesEachEventOneRow(t *testing.T) {
	a, b, w, ids := replicasSpilledWith(t, 5)
	t0 := time.Now()
	slow := takeAt(t, a, "a", t0, w.ID, 10)
	if len(slow.Taken) != 5 || slow.More {
		t.Fatalf("first take: %d (more %v), want all 5", len(slow.Taken), slow.More)
	}
	retaken := takeAt(t, b, "b", t0.Add(2*time.Minute), w.ID, 2)
	if got := eventsOf(retaken.Taken); !slices.Equal(got, ids[:2]) || !retaken.More {
		t.Fatalf("take of 2 after the lease ran out: %v (more %v), want %v", got, retaken.More, ids[:2])
	}
	conformance.RecordDelivered(t, a, slow.Taken...)
	conformance.RecordDelivered(t, b, retaken.Taken...)
	last := takeAt(t, b, "b", t0.Add(2*time.Minute), w.ID, 10)
	if len(last.Taken) != 0 || last.Spilled {
		t.Errorf("take after the late record: %v (spilled %v), want nothing and the spill ended", eventsOf(last.Taken), last.Spilled)
	}
	checkDeliveredOnce(t, b, w.ID, ids)
}

// Recording takes each event off its owed row as its row is written, so a record of part of
// a taken row leaves the rest owed, and a crash between records loses nothing: what was
// recorded is not taken again when the lease runs out, what was not is.
func TestARecordOfPartOfATakenRowLeavesTheRestOwed(t *testing.T) {
	a, b, w, ids := replicasSpilledWith(t, 4)
	ctx := context.Background()
	t0 := time.Now()
	tk := takeAt(t, a, "a", t0, w.ID, 10)
	conformance.RecordDelivered(t, a, tk.Taken[1], tk.Taken[3])
	if bl, err := b.Backlogs(ctx, []string{w.ID}, true); err != nil || *bl[w.ID].OwedEvents != 2 {
		t.Errorf("owed after recording 2 of 4: %+v, %v; want 2", bl[w.ID], err)
	}
	again := takeAt(t, b, "b", t0.Add(2*time.Minute), w.ID, 10)
	if got, want := eventsOf(again.Taken), []string{ids[0], ids[2]}; !slices.Equal(got, want) {
		t.Fatalf("taken after the lease ran out: %v, want the 2 not recorded %v", got, want)
	}
	conformance.RecordDelivered(t, b, again.Taken...)
	checkDeliveredOnce(t, b, w.ID, ids)
}

// A take request serves its webhooks in one transaction: when it fails part way, nothing it
// took stays leased or locked, and another replica takes those events at once instead of
// after the lease. The failure here is the listing of a second webhook's owed events, whose
// first owed row another transaction is inserting too, uncommitted, past the request's
// deadline (takes wait for nothing else). That insert is still pending while the other
// replica takes: the failed statement must end on the server too (pgx sends a cancel request
// when it drops a connection whose context ended), or its transaction would keep the rows it
// found locked for as long as it waits.
func TestATakeRequestThatFailsLeasesNothing(t *testing.T) {
	ctx := context.Background()
	a, b, dsn := twoReplicas(t)
	owing := conformance.NewWebhook(t, a, "message.received", true)
	blocked := conformance.NewWebhook(t, a, "message.received", true)
	if blocked.ID < owing.ID { // a take serves its webhooks in id order: the blocked one last
		owing, blocked = blocked, owing
	}
	if _, err := a.Spill(ctx, []string{owing.ID, blocked.ID}); err != nil {
		t.Fatal(err)
	}
	var want []string
	for range 3 {
		want = append(want, conformance.Publish(t, a, "message.received", "").Event.ID)
	}

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	holder, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx)
	if _, err := holder.Exec(ctx, `INSERT INTO webhook_owed (webhook_id, first_event, events, count, created_at)
		VALUES ($1, $2, $2, 1, now())`, blocked.ID, want[0]); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err = a.TakeSpilled(short, store.TakeRequest{Owner: "a", Now: time.Now(), Lease: time.Hour,
		Hooks: []store.OwedQuota{{WebhookID: owing.ID, Rows: 10}, {WebhookID: blocked.ID, Rows: 10}}})
	cancel()
	if err == nil {
		t.Fatal("a take whose listing waited past its deadline succeeded")
	}
	// The cancel reaches the server a moment after the call returns; until it does, the take
	// skips the rows the failed one still locks.
	var got []string
	wait.Until(t, "another replica takes the events the failed request had found", func() bool {
		got = append(got, eventsOf(takeAt(t, b, "b", time.Now(), owing.ID, 10).Taken)...)
		return len(got) >= len(want)
	})
	if !slices.Equal(got, want) {
		t.Fatalf("another replica's takes after the failed one: %v, want %v", got, want)
	}
}

// A take reads the owed rows a page at a time, sized as if every row were full; rows that
// records have thinned take more than one page to reach the quota. Here 320 events are listed
// in 10 rows of 32; the records of three in four leave 8 in each row, and a take of 40 after
// the lease ran out needs five rows: the first page holds three. It hands out the oldest 40
// and says more are owed; the next take hands out the other 40, and nothing more is owed.
func TestATakeReadsThinnedOwedRowsUntilItsQuotaIsMet(t *testing.T) {
	a, b, w, ids := replicasSpilledWith(t, 10*postgres.OwedChunk)
	t0 := time.Now()
	all := takeAt(t, a, "a", t0, w.ID, len(ids))
	if len(all.Taken) != len(ids) {
		t.Fatalf("first take: %d events, want %d", len(all.Taken), len(ids))
	}
	var recorded []*models.Delivery
	var left []string
	for i, d := range all.Taken {
		if i%4 == 0 {
			left = append(left, d.EventID)
			continue
		}
		recorded = append(recorded, d)
	}
	conformance.RecordDelivered(t, a, recorded...)

	later := t0.Add(2 * time.Minute) // a's leases have run out
	first := takeAt(t, b, "b", later, w.ID, 40)
	if got := eventsOf(first.Taken); !slices.Equal(got, left[:40]) || !first.More {
		t.Fatalf("take of 40 from rows of 8: %v (more %v), want %v and more owed", got, first.More, left[:40])
	}
	rest := takeAt(t, b, "b", later, w.ID, 100)
	if got := eventsOf(rest.Taken); !slices.Equal(got, left[40:]) || rest.More {
		t.Fatalf("take of the rest: %v (more %v), want %v and nothing more", got, rest.More, left[40:])
	}
	conformance.RecordDelivered(t, b, append(first.Taken, rest.Taken...)...)
	checkDeliveredOnce(t, b, w.ID, ids)
}

// A record writes the rows of events it finds in their owed rows with a plain insert; one
// case leaves such an event a row already: a late record that could not find it, because a
// take had split its row meanwhile, wrote the row anyway. Here a's lease runs out, b takes 2
// of its 5 events (the rest goes back as a row of its own), c takes those 3, a records all 5
// late, and then c records its 3: its insert meets a's rows and gives way to them, and the
// record still succeeds. Each event ends with one row and one attempt, and the spill ends.
func TestARecordGivesWayToTheRowsALateRecordWrote(t *testing.T) {
	a, b, w, ids := replicasSpilledWith(t, 5)
	t0 := time.Now()
	slow := takeAt(t, a, "a", t0, w.ID, 10)
	later := t0.Add(2 * time.Minute)
	split := takeAt(t, b, "b", later, w.ID, 2)
	third := takeAt(t, b, "c", later, w.ID, 10)
	if got := eventsOf(split.Taken); !slices.Equal(got, ids[:2]) {
		t.Fatalf("b's take of 2: %v, want %v", got, ids[:2])
	}
	if got := eventsOf(third.Taken); !slices.Equal(got, ids[2:]) {
		t.Fatalf("c's take of the rest: %v, want %v", got, ids[2:])
	}
	conformance.RecordDelivered(t, a, slow.Taken...)
	conformance.RecordDelivered(t, b, third.Taken...)
	conformance.RecordDelivered(t, b, split.Taken...)
	if last := takeAt(t, b, "b", later, w.ID, 10); len(last.Taken) != 0 || last.Spilled {
		t.Errorf("take after the records: %v (spilled %v), want nothing and the spill ended", eventsOf(last.Taken), last.Spilled)
	}
	checkDeliveredOnce(t, b, w.ID, ids)
}
