package conformance

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

// Between a take and the record of its attempts, on both drivers: a taken delivery has no
// row until its attempt is recorded, and the record writes it once, in its final state. What
// makes a taken event owed again when its taker goes away differs (SQLite: the stored spill
// position, after a restart; PostgreSQL: the owed row's lease, which another replica can take
// when it runs out) and is tested in each driver's package.

// SpilledWith spills a new webhook for message.received and publishes n events to it,
// whose ids it returns in order.
func SpilledWith(t *testing.T, s *store.Store, n int) (*models.Webhook, []string) {
	t.Helper()
	w := NewWebhook(t, s, "message.received", true)
	if _, err := s.Spill(context.Background(), []string{w.ID}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range n {
		ids = append(ids, Publish(t, s, "message.received", "").Event.ID)
	}
	return w, ids
}

// TakeOnly takes up to n owed events of a webhook, now, without recording anything.
func TakeOnly(t *testing.T, s *store.Store, webhookID string, n int) store.SpillTake {
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
func testTakenDeliveriesGetTheirRowWhenRecorded(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	w, want := SpilledWith(t, s, 5)
	ctx := context.Background()
	now := time.Now()
	tk := TakeOnly(t, s, w.ID, 3)
	if len(tk.Taken) != 3 || !tk.Spilled {
		t.Fatalf("take: %+v, want 3 taken, still spilled", tk)
	}
	for i, d := range tk.Taken {
		if d.EventID != want[i] || d.Owed == nil || d.Status != models.StatusPending || !strings.HasPrefix(d.ID, "dlv_") || len(d.ID) != 36 {
			t.Errorf("taken %d: %+v, want event %s, owed, with a dlv_ id", i, d, want[i])
		}
	}
	if rows := RowsOf(t, s, w.ID); len(rows) != 0 {
		t.Fatalf("a take wrote %d rows, want none", len(rows))
	}
	if claimed, _ := ClaimFor(t, s, now, store.WebhookQuota{WebhookID: w.ID, Free: 10}); len(claimed) != 0 {
		t.Errorf("claim after the take: %d deliveries, want none (the taken ones have no rows)", len(claimed))
	}
	// The second fails with a retry due later; the others succeed. The first is recorded twice.
	res := Delivered(tk.Taken...)
	res[1].Status, res[1].Succeeded, res[1].NextAttemptAt = models.StatusPending, false, now.Add(time.Hour).UnixMilli()
	res[1].Attempt.Outcome, res[1].Attempt.ResponseStatus = models.OutcomeFailed, nil
	msg := "connection refused"
	res[1].Attempt.Error = &msg
	if err := s.RecordResults(ctx, res); err != nil {
		t.Fatal(err)
	}
	again := Delivered(tk.Taken[0])
	if err := s.RecordResults(ctx, again); err != nil {
		t.Fatal(err)
	}
	if rows := RowsOf(t, s, w.ID); !slices.Equal(rows, want[:3]) {
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
			row.CreatedAt.Sub(d.CreatedAt).Abs() > time.Millisecond {
			t.Errorf("row %d: %+v, want %s, one attempt, next %d, created at the take (%v, to the millisecond)", i, row, wantStatus, wantNext, d.CreatedAt)
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

// A record that fails for good makes the dispatcher abandon what it took: the events are taken
// again from the stored position, with the same delivery ids, so if the first sending is
// recorded after all, each event still has one row and one attempt.
func testEventsTakenAgainAfterAnAbandonedRecordKeepOneRowEach(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	w, want := SpilledWith(t, s, 3)
	ctx := context.Background()
	first := TakeOnly(t, s, w.ID, 10).Taken
	s.AbandonOwed([]string{w.ID})
	second := TakeOnly(t, s, w.ID, 10).Taken
	if len(first) != 3 || len(second) != 3 {
		t.Fatalf("took %d, then %d after abandoning; want 3 both times", len(first), len(second))
	}
	for i := range first {
		if first[i].ID != second[i].ID || first[i].EventID != want[i] {
			t.Errorf("delivery %d: %s then %s for event %s; want one id for event %s", i, first[i].ID, second[i].ID, first[i].EventID, want[i])
		}
	}
	RecordDelivered(t, s, first...)
	RecordDelivered(t, s, second...)
	if rows := RowsOf(t, s, w.ID); !slices.Equal(rows, want) {
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
func testTakenDeliveriesOfADisabledOrDeletedWebhook(t *testing.T, b Backend) {
	ctx := context.Background()
	t.Run("disabled", func(t *testing.T) {
		s := b.Open(t, b.DSN(t))
		w, want := SpilledWith(t, s, 2)
		taken := TakeOnly(t, s, w.ID, 10).Taken
		if err := s.DisableWebhook(ctx, w.ID, "test"); err != nil {
			t.Fatal(err)
		}
		RecordDelivered(t, s, taken...)
		if rows := RowsOf(t, s, w.ID); !SameSet(rows, want) {
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
		s := b.Open(t, b.DSN(t))
		w, _ := SpilledWith(t, s, 2)
		taken := TakeOnly(t, s, w.ID, 10).Taken
		if err := s.DeleteWebhook(ctx, w.ID); err != nil {
			t.Fatal(err)
		}
		RecordDelivered(t, s, taken...)
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

// One take request over several webhooks answers each as a take of its own would, whatever
// the order they are asked in: each gets its owed events oldest first up to its quota, a
// webhook not spilled gets nothing, a spill that owes nothing ends, and the spill of a
// webhook disabled behind the store's back is dropped.
func testOneTakeServesSeveralWebhooks(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	all := NewWebhook(t, s, "message.received", true)
	part := NewWebhook(t, s, "message.received", true)
	plain := NewWebhook(t, s, "message.received", true)
	owesNothing := NewWebhook(t, s, "conversation.started", true)
	disabled := NewWebhook(t, s, "message.received", true)
	spilled, err := s.Spill(ctx, []string{all.ID, part.ID, owesNothing.ID, disabled.ID})
	if err != nil || len(spilled) != 4 {
		t.Fatalf("spill: %v, %v", spilled, err)
	}
	var want []string
	for range 5 {
		want = append(want, Publish(t, s, "message.received", "").Event.ID)
	}
	if err := s.ExecSQL(ctx, `UPDATE webhooks SET enabled = ? WHERE id = ?`, false, disabled.ID); err != nil {
		t.Fatal(err)
	}
	got, err := s.TakeSpilled(ctx, store.TakeRequest{Owner: "me", Now: time.Now(), Hooks: []store.OwedQuota{
		{WebhookID: disabled.ID, Rows: 10}, {WebhookID: part.ID, Rows: 2}, {WebhookID: plain.ID, Rows: 10},
		{WebhookID: owesNothing.ID, Rows: 10}, {WebhookID: all.ID, Rows: 10}}})
	if err != nil {
		t.Fatal(err)
	}
	eventsOf := func(ds []*models.Delivery) []string {
		var ids []string
		for _, d := range ds {
			ids = append(ids, d.EventID)
		}
		return ids
	}
	if tk := got[all.ID]; !slices.Equal(eventsOf(tk.Taken), want) || tk.More || !tk.Spilled {
		t.Errorf("all owed, room for 10: took %v (more %v, spilled %v), want %v, no more, still spilled while in flight",
			eventsOf(tk.Taken), tk.More, tk.Spilled, want)
	}
	if tk := got[part.ID]; !slices.Equal(eventsOf(tk.Taken), want[:2]) || !tk.More || !tk.Spilled {
		t.Errorf("room for 2 of 5: took %v (more %v, spilled %v), want %v, more, spilled", eventsOf(tk.Taken), tk.More, tk.Spilled, want[:2])
	}
	for name, id := range map[string]string{"not spilled": plain.ID, "owing nothing": owesNothing.ID, "disabled": disabled.ID} {
		if tk := got[id]; len(tk.Taken) != 0 || tk.Spilled {
			t.Errorf("%s: took %d, spilled %v; want nothing, not spilled", name, len(tk.Taken), tk.Spilled)
		}
	}
	left, err := s.SpilledWebhooks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !SameSet(left, []string{all.ID, part.ID}) {
		t.Errorf("spilled after the take: %v, want only %s and %s", left, all.ID, part.ID)
	}
	RecordDelivered(t, s, slices.Concat(got[all.ID].Taken, got[part.ID].Taken)...)
	if rest := TakeOnly(t, s, part.ID, 10); !slices.Equal(eventsOf(rest.Taken), want[2:]) {
		t.Errorf("the next take of the webhook with room for 2: %v, want %v", eventsOf(rest.Taken), want[2:])
	}
}

// A webhook listed twice in one take request is taken once, for the larger quota: the answer
// has one take per webhook, so a second take of other events would hand them out to no one.
func testAWebhookListedTwiceIsTakenOnce(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	w, want := SpilledWith(t, s, 5)
	got, err := s.TakeSpilled(ctx, store.TakeRequest{Owner: "me", Now: time.Now(), Hooks: []store.OwedQuota{
		{WebhookID: w.ID, Rows: 2}, {WebhookID: w.ID, Rows: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	var taken []string
	for _, d := range got[w.ID].Taken {
		taken = append(taken, d.EventID)
	}
	if !slices.Equal(taken, want[:3]) || !got[w.ID].More {
		t.Fatalf("listed with 2 and 3: took %v (more %v), want %v and more", taken, got[w.ID].More, want[:3])
	}
	RecordDelivered(t, s, got[w.ID].Taken...)
	rest := TakeOnly(t, s, w.ID, 10)
	taken = taken[:0]
	for _, d := range rest.Taken {
		taken = append(taken, d.EventID)
	}
	if !slices.Equal(taken, want[3:]) {
		t.Errorf("the next take: %v, want the other %v", taken, want[3:])
	}
}
