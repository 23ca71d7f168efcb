package sqlite_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/conformance"
)

// took is what a take and the recording of its deliveries did for one webhook.
type took struct {
	Queued  int  // owed events taken (and recorded as delivered)
	Spilled bool // the webhook still owes events afterwards
}

// take takes up to n owed events of a webhook, as the dispatcher does, and records each as
// delivered at the first attempt, which writes its row.
func take(t *testing.T, s *store.Store, webhookID string, n int) took {
	t.Helper()
	ctx := context.Background()
	got, err := s.TakeSpilled(ctx, store.TakeRequest{Owner: "test", Now: time.Now(),
		Hooks: []store.OwedQuota{{WebhookID: webhookID, Rows: n}}})
	if err != nil {
		t.Fatal(err)
	}
	tk := got[webhookID]
	if err := s.RecordResults(ctx, conformance.Delivered(tk.Taken...)); err != nil {
		t.Fatal(err)
	}
	spilled, err := s.SpilledWebhooks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return took{Queued: len(tk.Taken), Spilled: slices.Contains(spilled, webhookID)}
}

// A spilled webhook gets no row at publish; what it owes is taken in publish order, each event
// exactly once, and gets its row when recorded; once the last taken one is recorded and
// nothing more is owed, publishing writes its rows again, with nothing lost or doubled at
// the switch. Another webhook is untouched.
func TestSpilledWebhookOwesEventsAndTakesThemInOrderExactlyOnce(t *testing.T) {
	s := storetest.Open(t, storetest.SQLiteDSN(t))
	ctx := context.Background()
	slow := conformance.NewWebhook(t, s, "message.received", true)
	other := conformance.NewWebhook(t, s, "message.received", true)
	before := conformance.Publish(t, s, "message.received", "")

	spilled, err := s.Spill(ctx, []string{slow.ID})
	if err != nil || !spilled[slow.ID] {
		t.Fatalf("spill: %v, %v", spilled, err)
	}
	var want []string
	want = append(want, before.Event.ID)
	for range 10 {
		p := conformance.Publish(t, s, "message.received", "")
		if p.Event.DeliveryCount != 2 || len(p.Deliveries) != 1 || p.Deliveries[0].WebhookID != other.ID {
			t.Fatalf("publish while spilled: delivery count %d, rows %d; want 2 counted, 1 row (the other webhook's)",
				p.Event.DeliveryCount, len(p.Deliveries))
		}
		want = append(want, p.Event.ID)
	}
	if st := conformance.QueueStats(t, s); st.Spilled != 1 || st.Owed != 10 || st.Pending != 12 {
		t.Errorf("queue stats %+v, want 1 spilled webhook owing 10 events, 12 rows pending", st)
	}
	if got := take(t, s, slow.ID, 4); got.Queued != 4 || !got.Spilled {
		t.Fatalf("take 4 of 10: %+v", got)
	}
	if got := conformance.RowsOf(t, s, slow.ID); !conformance.SameSet(got, want[:5]) {
		t.Errorf("after taking 4 the rows are for %v, want the event before the spill and the first 4 owed %v", got, want[:5])
	}
	if got := take(t, s, slow.ID, 100); got.Queued != 6 || got.Spilled {
		t.Fatalf("take the last 6 with room for 100: %+v, want 6 queued and the spill ended", got)
	}
	after := conformance.Publish(t, s, "message.received", "")
	if len(after.Deliveries) != 2 {
		t.Errorf("publish after the spill ended wrote %d rows, want 2", len(after.Deliveries))
	}
	want = append(want, after.Event.ID)
	if got := conformance.RowsOf(t, s, slow.ID); len(got) != len(want) || !conformance.SameSet(got, want) {
		t.Fatalf("the spilled webhook has rows for %v, want one for each of %v", got, want)
	}
	if n := len(conformance.RowsOf(t, s, other.ID)); n != 12 {
		t.Errorf("the other webhook has %d rows, want 12", n)
	}
	if st := conformance.QueueStats(t, s); st.Spilled != 0 || st.Owed != 0 {
		t.Errorf("queue stats after catching up %+v, want nothing spilled", st)
	}
}

// A take passes over events the webhook does not subscribe to, and test events.
func TestSpillTakesOnlyEventsTheWebhookSubscribesTo(t *testing.T) {
	s := storetest.Open(t, storetest.SQLiteDSN(t))
	ctx := context.Background()
	w := conformance.NewWebhook(t, s, "message.received", true)
	conformance.NewWebhook(t, s, "conversation.started,message.received", true)
	if _, err := s.Spill(ctx, []string{w.ID}); err != nil {
		t.Fatal(err)
	}
	for range 300 { // more than one take reads at once
		conformance.Publish(t, s, "conversation.started", "")
	}
	m := conformance.Publish(t, s, "message.received", "")
	if st := conformance.QueueStats(t, s); st.Owed != 1 {
		t.Errorf("owed %d, want 1 (the one message.received)", st.Owed)
	}
	got := take(t, s, w.ID, 10)
	for got.Spilled && got.Queued == 0 {
		got = take(t, s, w.ID, 10)
	}
	if got.Queued != 1 || got.Spilled {
		t.Fatalf("take: %+v, want the one matching event and the spill ended", got)
	}
	if rows := conformance.RowsOf(t, s, w.ID); len(rows) != 1 || rows[0] != m.Event.ID {
		t.Errorf("rows %v, want only %s", rows, m.Event.ID)
	}
}

// Disabling or deleting a spilled webhook ends its spill: nothing more is taken for it.
// Pruning never removes an event still owed, nor the one at the spill's position.
func TestSpillEndsWithTheWebhookAndKeepsOwedEventsFromPruning(t *testing.T) {
	s := storetest.Open(t, storetest.SQLiteDSN(t))
	ctx := context.Background()
	a := conformance.NewWebhook(t, s, "message.received", true)
	b := conformance.NewWebhook(t, s, "message.received", true)
	c := conformance.NewWebhook(t, s, "message.received", true)
	if _, err := s.Spill(ctx, []string{a.ID, b.ID, c.ID}); err != nil {
		t.Fatal(err)
	}
	owed := conformance.Publish(t, s, "message.received", "")
	if err := s.DisableWebhook(ctx, a.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteWebhook(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if got := take(t, s, a.ID, 10); got.Queued != 0 || got.Spilled {
		t.Errorf("take for a disabled webhook: %+v, want nothing", got)
	}
	if got := take(t, s, b.ID, 10); got.Queued != 0 || got.Spilled {
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
	if got := take(t, s, c.ID, 10); got.Queued != 1 {
		t.Errorf("take after pruning: %+v, want the owed event", got)
	}
}

// A spill lives in the database: a restart of the process keeps what is owed.
func TestSpillSurvivesReopeningTheStore(t *testing.T) {
	dsn := storetest.SQLiteDSN(t)
	s := storetest.Open(t, dsn)
	ctx := context.Background()
	w := conformance.NewWebhook(t, s, "message.received", true)
	if _, err := s.Spill(ctx, []string{w.ID}); err != nil {
		t.Fatal(err)
	}
	conformance.Publish(t, s, "message.received", "")
	conformance.Publish(t, s, "message.received", "")
	s.Close()
	s2 := storetest.Open(t, dsn)
	ids, err := s2.SpilledWebhooks(ctx)
	if err != nil || len(ids) != 1 {
		t.Fatalf("spilled after reopening: %v, %v", ids, err)
	}
	if got := take(t, s2, w.ID, 10); got.Queued != 2 || got.Spilled {
		t.Errorf("take after reopening: %+v, want the 2 owed events", got)
	}
}

// With a dispatcher listening, a webhook whose backlog reaches the threshold is spilled by
// publishing itself, and the listener is told; rows plus owed events still cover every event
// once. A spill asked for (RequestSpill) is applied by the next publish.
func TestPublishSpillsBackloggedWebhooksWhenADispatcherListens(t *testing.T) {
	s := storetest.Open(t, storetest.SQLiteDSN(t))
	var told []string
	s.OnQueued(func(q store.Queued) { told = append(told, q.Spilled...) })
	s.SpillWhenPending(32) // what the engine sets
	behind := conformance.NewWebhook(t, s, "message.received", true)
	asked := conformance.NewWebhook(t, s, "message.received", true)
	const events = 200
	for i := range events {
		if i == 10 {
			s.RequestSpill([]string{asked.ID})
		}
		conformance.Publish(t, s, "message.received", "")
	}
	if len(told) != 2 {
		t.Fatalf("spills reported %v, want both webhooks once", told)
	}
	st := conformance.QueueStats(t, s)
	if st.Spilled != 2 || st.Pending+st.Owed != 2*events {
		t.Errorf("queue stats %+v: want 2 spilled and rows plus owed events = %d", st, 2*events)
	}
	if n := len(conformance.RowsOf(t, s, asked.ID)); n != 10 {
		t.Errorf("the webhook asked to spill after 10 events has %d rows, want 10", n)
	}
	if n := len(conformance.RowsOf(t, s, behind.ID)); n < 32 || n > 64 {
		t.Errorf("the webhook left behind has %d rows, want it spilled between 32 and 64", n)
	}
}

// The backlog threshold is the engine's to give: without it, a listening store spills
// nothing on its own, however far a webhook falls behind.
func TestPublishSpillsByBacklogOnlyAtTheThresholdTheEngineGave(t *testing.T) {
	s := storetest.Open(t, storetest.SQLiteDSN(t))
	s.OnQueued(func(store.Queued) {})
	w := conformance.NewWebhook(t, s, "message.received", true)
	for range 100 {
		conformance.Publish(t, s, "message.received", "")
	}
	if st := conformance.QueueStats(t, s); st.Spilled != 0 || len(conformance.RowsOf(t, s, w.ID)) != 100 {
		t.Fatalf("without a threshold: %+v, want no spill and a row per event", st)
	}
	s.SpillWhenPending(50)
	for range 100 {
		conformance.Publish(t, s, "message.received", "")
	}
	if n := len(conformance.RowsOf(t, s, w.ID)); conformance.QueueStats(t, s).Spilled != 1 || n > 150 {
		t.Errorf("with a threshold of 50: %d rows, want the webhook spilled within the next 50 events (its 100 pending are past it already)", n)
	}
}

// A replay skips the events a spill owes, as it skips pending ones: they are on their way,
// and queuing them again would send them twice.
func TestReplaySkipsEventsTheSpillOwes(t *testing.T) {
	s := storetest.Open(t, storetest.SQLiteDSN(t))
	ctx := context.Background()
	since := time.Now().UTC().Add(-time.Minute)
	old := conformance.Publish(t, s, "message.received", "") // before the webhook: replayable
	w := conformance.NewWebhook(t, s, "message.received", true)
	if _, err := s.Spill(ctx, []string{w.ID}); err != nil {
		t.Fatal(err)
	}
	conformance.Publish(t, s, "message.received", "")
	conformance.Publish(t, s, "message.received", "")
	f := store.ReplayFilter{WebhookID: w.ID, Types: w.EventList(), Since: since, Until: time.Now().UTC().Add(time.Second)}
	queued, err := s.QueueReplay(ctx, f, 10, nil)
	if err != nil || queued != 1 {
		t.Fatalf("replay queued %d (%v), want only the event from before the spill", queued, err)
	}
	if got := take(t, s, w.ID, 10); got.Queued != 2 {
		t.Errorf("take after the replay: %+v, want the 2 owed events", got)
	}
	rows := conformance.RowsOf(t, s, w.ID)
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

// spilledWith opens a store on dsn with one spilled webhook for message.received and n of
// its events published since, whose ids it returns in order.
func spilledWith(t *testing.T, dsn string, n int) (*store.Store, *models.Webhook, []string) {
	t.Helper()
	s := storetest.Open(t, dsn)
	w := conformance.NewWebhook(t, s, "message.received", true)
	if _, err := s.Spill(context.Background(), []string{w.ID}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range n {
		ids = append(ids, conformance.Publish(t, s, "message.received", "").Event.ID)
	}
	return s, w, ids
}

// takeOnly takes up to n owed events of a webhook without recording anything.
func takeOnly(t *testing.T, s *store.Store, webhookID string, n int) store.SpillTake {
	t.Helper()
	got, err := s.TakeSpilled(context.Background(), store.TakeRequest{Owner: "me", Now: time.Now(),
		Hooks: []store.OwedQuota{{WebhookID: webhookID, Rows: n}}})
	if err != nil {
		t.Fatal(err)
	}
	return got[webhookID]
}

// A take hands out owed events without writing anything: the row of each is written by the
// record of its attempt, in its final state, with the attempt. A delivery recorded twice
// still has one row.
func TestTakenDeliveriesGetTheirRowWhenRecorded(t *testing.T) {
	s, w, want := spilledWith(t, storetest.SQLiteDSN(t), 5)
	ctx := context.Background()
	now := time.Now()
	tk := takeOnly(t, s, w.ID, 3)
	if len(tk.Taken) != 3 || !tk.Spilled {
		t.Fatalf("take: %+v, want 3 taken, still spilled", tk)
	}
	for i, d := range tk.Taken {
		if d.EventID != want[i] || d.Owed == nil || d.Status != models.StatusPending || !strings.HasPrefix(d.ID, "dlv_") || len(d.ID) != 36 {
			t.Errorf("taken %d: %+v, want event %s, owed, with a dlv_ id", i, d, want[i])
		}
	}
	if rows := conformance.RowsOf(t, s, w.ID); len(rows) != 0 {
		t.Fatalf("a take wrote %d rows, want none", len(rows))
	}
	if claimed, _ := conformance.ClaimFor(t, s, now, store.WebhookQuota{WebhookID: w.ID, Free: 10}); len(claimed) != 0 {
		t.Errorf("claim after the take: %d deliveries, want none (the taken ones have no rows)", len(claimed))
	}
	// The second fails with a retry due later; the others succeed. The first is recorded twice.
	res := conformance.Delivered(tk.Taken...)
	res[1].Status, res[1].Succeeded, res[1].NextAttemptAt = models.StatusPending, false, now.Add(time.Hour).UnixMilli()
	res[1].Attempt.Outcome, res[1].Attempt.ResponseStatus = models.OutcomeFailed, nil
	msg := "connection refused"
	res[1].Attempt.Error = &msg
	if err := s.RecordResults(ctx, res); err != nil {
		t.Fatal(err)
	}
	again := conformance.Delivered(tk.Taken[0])
	if err := s.RecordResults(ctx, again); err != nil {
		t.Fatal(err)
	}
	if rows := conformance.RowsOf(t, s, w.ID); !slices.Equal(rows, want[:3]) {
		t.Fatalf("rows after recording: %v, want %v once each", rows, want[:3])
	}
	for i, d := range tk.Taken {
		row, err := s.GetDelivery(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantStatus, wantNext := models.StatusSucceeded, int64(0)
		if i == 1 {
			wantStatus, wantNext = models.StatusPending, res[1].NextAttemptAt
		}
		if row.Status != wantStatus || row.AttemptCount != 1 || row.NextAttemptAt != wantNext || row.EventType != "message.received" ||
			!row.CreatedAt.Equal(d.CreatedAt.UTC()) {
			t.Errorf("row %d: %+v, want %s, one attempt, next %d, created at the take (%v)", i, row, wantStatus, wantNext, d.CreatedAt)
		}
		attempts, err := s.ListAttempts(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(attempts) != 1 {
			t.Errorf("row %d: %d attempts, want 1", i, len(attempts))
		}
	}
	if bl, err := s.Backlogs(ctx, []string{w.ID}, true); err != nil || bl[w.ID] == nil || *bl[w.ID].OwedEvents != 2 {
		t.Errorf("backlog after recording three of five: %+v, %v; want 2 owed", bl[w.ID], err)
	}
}

// Attempts finish out of order. The stored position passes only events whose rows are
// written, so after a restart (the in-memory part gone) what was in flight is taken again,
// and what was recorded past the position is not.
func TestTakeAfterARestartSkipsWhatWasRecordedOutOfOrder(t *testing.T) {
	dsn := storetest.SQLiteDSN(t)
	s, w, want := spilledWith(t, dsn, 4)
	ctx := context.Background()
	first := takeOnly(t, s, w.ID, 3)
	tk := first.Taken
	if len(tk) != 3 || !first.More {
		t.Fatalf("took %d (more: %v), want 3 and more to come", len(tk), first.More)
	}
	// The third finishes; the first two are still in flight when the process dies.
	if err := s.RecordResults(ctx, conformance.Delivered(tk[2])); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := storetest.Open(t, dsn)
	second := takeOnly(t, s2, w.ID, 10)
	retaken := second.Taken
	if second.More {
		t.Errorf("a take of 10 that found 4 says more may be owed")
	}
	var again []string
	for _, d := range retaken {
		again = append(again, d.EventID)
	}
	if wantAgain := []string{want[0], want[1], want[3]}; !slices.Equal(again, wantAgain) {
		t.Fatalf("taken after the restart: %v, want %v (the in-flight two and the untaken fourth)", again, wantAgain)
	}
	if err := s2.RecordResults(ctx, conformance.Delivered(retaken...)); err != nil {
		t.Fatal(err)
	}
	if rows := conformance.RowsOf(t, s2, w.ID); !conformance.SameSet(rows, want) {
		t.Errorf("rows: %v, want each of %v once", rows, want)
	}
	if spilled, _ := s2.SpilledWebhooks(ctx); len(spilled) != 0 {
		t.Errorf("still spilled after everything was recorded: %v", spilled)
	}
}

// A record that fails for good makes the dispatcher abandon what it took: the events are taken
// again from the stored position, with the same delivery ids, so if the first sending is
// recorded after all, each event still has one row and one attempt.
func TestEventsTakenAgainAfterAnAbandonedRecordKeepOneRowEach(t *testing.T) {
	s, w, want := spilledWith(t, storetest.SQLiteDSN(t), 3)
	ctx := context.Background()
	first := takeOnly(t, s, w.ID, 10).Taken
	s.AbandonOwed([]string{w.ID})
	second := takeOnly(t, s, w.ID, 10).Taken
	if len(first) != 3 || len(second) != 3 {
		t.Fatalf("took %d, then %d after abandoning; want 3 both times", len(first), len(second))
	}
	for i := range first {
		if first[i].ID != second[i].ID || first[i].EventID != want[i] {
			t.Errorf("delivery %d: %s then %s for event %s; want one id for event %s", i, first[i].ID, second[i].ID, first[i].EventID, want[i])
		}
	}
	if err := s.RecordResults(ctx, conformance.Delivered(first...)); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordResults(ctx, conformance.Delivered(second...)); err != nil {
		t.Fatal(err)
	}
	if rows := conformance.RowsOf(t, s, w.ID); !slices.Equal(rows, want) {
		t.Errorf("rows: %v, want %v once each", rows, want)
	}
	for _, d := range first {
		if attempts, err := s.ListAttempts(ctx, d.ID); err != nil || len(attempts) != 1 {
			t.Errorf("delivery %s: %d attempts (%v), want 1", d.ID, len(attempts), err)
		}
	}
	if spilled, _ := s.SpilledWebhooks(ctx); len(spilled) != 0 {
		t.Errorf("still spilled after everything was recorded: %v", spilled)
	}
}

// Deliveries taken from a spill and still in flight when their webhook is disabled get their
// row cancelled, with the attempt that was made; when it is deleted, no row and no attempt
// (nothing would show or prune them).
func TestTakenDeliveriesOfADisabledOrDeletedWebhook(t *testing.T) {
	ctx := context.Background()
	t.Run("disabled", func(t *testing.T) {
		s, w, want := spilledWith(t, storetest.SQLiteDSN(t), 2)
		taken := takeOnly(t, s, w.ID, 10).Taken
		if err := s.DisableWebhook(ctx, w.ID, "test"); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordResults(ctx, conformance.Delivered(taken...)); err != nil {
			t.Fatal(err)
		}
		if rows := conformance.RowsOf(t, s, w.ID); !conformance.SameSet(rows, want) {
			t.Fatalf("rows: %v, want %v", rows, want)
		}
		for _, d := range taken {
			row, err := s.GetDelivery(ctx, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			attempts, _ := s.ListAttempts(ctx, d.ID)
			if row.Status != models.StatusCancelled || row.AttemptCount != 1 || len(attempts) != 1 {
				t.Errorf("row %s: %s after %d attempts (%d logged), want cancelled after the 1 made", d.ID, row.Status, row.AttemptCount, len(attempts))
			}
		}
		if spilled, _ := s.SpilledWebhooks(ctx); len(spilled) != 0 {
			t.Errorf("a disabled webhook is still spilled: %v", spilled)
		}
	})
	t.Run("deleted", func(t *testing.T) {
		s, w, _ := spilledWith(t, storetest.SQLiteDSN(t), 2)
		taken := takeOnly(t, s, w.ID, 10).Taken
		if err := s.DeleteWebhook(ctx, w.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordResults(ctx, conformance.Delivered(taken...)); err != nil {
			t.Fatal(err)
		}
		for _, d := range taken {
			if _, err := s.GetDelivery(ctx, d.ID); !errors.Is(err, models.ErrNotFound) {
				t.Errorf("delivery %s of a deleted webhook: %v, want not found", d.ID, err)
			}
			if attempts, _ := s.ListAttempts(ctx, d.ID); len(attempts) != 0 {
				t.Errorf("delivery %s of a deleted webhook has %d attempts logged", d.ID, len(attempts))
			}
		}
	})
}

// Lists and reads show what a spill owes as pending deliveries under the ids their rows get
// when recorded, so an admin sees the same deliveries before and after their attempts, and
// a page boundary may fall between owed deliveries and rows.
func TestOwedDeliveriesAreListedCountedAndReadUnderTheirFutureIDs(t *testing.T) {
	s := storetest.Open(t, storetest.SQLiteDSN(t))
	ctx := context.Background()
	slow := conformance.NewWebhook(t, s, "message.received", true)
	conformance.Publish(t, s, "message.received", "") // a row, before the spill
	if _, err := s.Spill(ctx, []string{slow.ID}); err != nil {
		t.Fatal(err)
	}
	for range 6 {
		conformance.Publish(t, s, "message.received", "")
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

	take(t, s, slow.ID, 3) // three owed ones attempted: their rows are written
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
