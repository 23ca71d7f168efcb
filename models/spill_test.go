package models_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/models"
)

// rowsOf returns the event ids of a webhook's deliveries.
func rowsOf(t *testing.T, s *models.Store, webhookID string) []string {
	t.Helper()
	ds, _, err := s.ListDeliveries(context.Background(), models.DeliveryFilter{WebhookID: webhookID}, models.Page{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(ds))
	for i, d := range ds {
		out[len(ds)-1-i] = d.EventID
	}
	return out
}

// sameSet reports whether a and b hold the same strings, each once.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]bool{}
	for _, x := range a {
		seen[x] = true
	}
	for _, x := range b {
		if !seen[x] {
			return false
		}
		delete(seen, x)
	}
	return len(seen) == 0
}

func take(t *testing.T, s *models.Store, webhookID string, n int) models.SpillTake {
	t.Helper()
	got, err := s.TakeSpilled(context.Background(), models.TakeRequest{Owner: "test", Now: time.Now(), LeaseFor: time.Minute,
		Hooks: []models.TakeWant{{WebhookID: webhookID, Rows: n}}})
	if err != nil {
		t.Fatal(err)
	}
	return got[webhookID]
}

func queueStats(t *testing.T, s *models.Store) models.QueueStats {
	t.Helper()
	st, err := s.QueueStats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// A spilled webhook gets no row at publish; what it owes is taken as rows in publish order,
// each event exactly once, and when the take reaches the newest event publishing writes its
// rows again, with nothing lost or doubled at the switch. Another webhook is untouched.
func TestSpilledWebhookOwesEventsAndTakesThemInOrderExactlyOnce(t *testing.T) {
	s := storetest.Open(t, storetest.SQLiteDSN(t))
	ctx := context.Background()
	slow := newWebhook(t, s, "message.received", true)
	other := newWebhook(t, s, "message.received", true)
	before := publish(t, s, "message.received", "")

	spilled, err := s.Spill(ctx, []string{slow.ID})
	if err != nil || !spilled[slow.ID] {
		t.Fatalf("spill: %v, %v", spilled, err)
	}
	var want []string
	want = append(want, before.Event.ID)
	for range 10 {
		p := publish(t, s, "message.received", "")
		if p.Event.DeliveryCount != 2 || len(p.Deliveries) != 1 || p.Deliveries[0].WebhookID != other.ID {
			t.Fatalf("publish while spilled: delivery count %d, rows %d; want 2 counted, 1 row (the other webhook's)",
				p.Event.DeliveryCount, len(p.Deliveries))
		}
		want = append(want, p.Event.ID)
	}
	if st := queueStats(t, s); st.Spilled != 1 || st.Owed != 10 || st.Pending != 12 {
		t.Errorf("queue stats %+v, want 1 spilled webhook owing 10 events, 12 rows pending", st)
	}
	if got := take(t, s, slow.ID, 4); got.Queued != 4 || !got.Spilled {
		t.Fatalf("take 4 of 10: %+v", got)
	}
	if got := rowsOf(t, s, slow.ID); !sameSet(got, want[:5]) {
		t.Errorf("after taking 4 the rows are for %v, want the event before the spill and the first 4 owed %v", got, want[:5])
	}
	if got := take(t, s, slow.ID, 100); got.Queued != 6 || got.Spilled {
		t.Fatalf("take the last 6 with room for 100: %+v, want 6 queued and the spill ended", got)
	}
	after := publish(t, s, "message.received", "")
	if len(after.Deliveries) != 2 {
		t.Errorf("publish after the spill ended wrote %d rows, want 2", len(after.Deliveries))
	}
	want = append(want, after.Event.ID)
	if got := rowsOf(t, s, slow.ID); len(got) != len(want) || !sameSet(got, want) {
		t.Fatalf("the spilled webhook has rows for %v, want one for each of %v", got, want)
	}
	if n := len(rowsOf(t, s, other.ID)); n != 12 {
		t.Errorf("the other webhook has %d rows, want 12", n)
	}
	if st := queueStats(t, s); st.Spilled != 0 || st.Owed != 0 {
		t.Errorf("queue stats after catching up %+v, want nothing spilled", st)
	}
}

// A take passes over events the webhook does not subscribe to, and test events.
func TestSpillTakesOnlyEventsTheWebhookSubscribesTo(t *testing.T) {
	s := storetest.Open(t, storetest.SQLiteDSN(t))
	ctx := context.Background()
	w := newWebhook(t, s, "message.received", true)
	newWebhook(t, s, "conversation.started,message.received", true)
	if _, err := s.Spill(ctx, []string{w.ID}); err != nil {
		t.Fatal(err)
	}
	for range 300 { // more than one take reads at once
		publish(t, s, "conversation.started", "")
	}
	m := publish(t, s, "message.received", "")
	if st := queueStats(t, s); st.Owed != 1 {
		t.Errorf("owed %d, want 1 (the one message.received)", st.Owed)
	}
	got := take(t, s, w.ID, 10)
	for got.Spilled && got.Queued == 0 {
		got = take(t, s, w.ID, 10)
	}
	if got.Queued != 1 || got.Spilled {
		t.Fatalf("take: %+v, want the one matching event and the spill ended", got)
	}
	if rows := rowsOf(t, s, w.ID); len(rows) != 1 || rows[0] != m.Event.ID {
		t.Errorf("rows %v, want only %s", rows, m.Event.ID)
	}
}

// Disabling or deleting a spilled webhook ends its spill: nothing more is taken for it.
// Pruning never removes an event still owed, nor the one at the spill's position.
func TestSpillEndsWithTheWebhookAndKeepsOwedEventsFromPruning(t *testing.T) {
	s := storetest.Open(t, storetest.SQLiteDSN(t))
	ctx := context.Background()
	a := newWebhook(t, s, "message.received", true)
	b := newWebhook(t, s, "message.received", true)
	c := newWebhook(t, s, "message.received", true)
	if _, err := s.Spill(ctx, []string{a.ID, b.ID, c.ID}); err != nil {
		t.Fatal(err)
	}
	owed := publish(t, s, "message.received", "")
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
	w := newWebhook(t, s, "message.received", true)
	if _, err := s.Spill(ctx, []string{w.ID}); err != nil {
		t.Fatal(err)
	}
	publish(t, s, "message.received", "")
	publish(t, s, "message.received", "")
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

// SQLite spills; PostgreSQL does not: there every delivery gets its row at publish.
func TestSpillOnlyOnSQLite(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		s := storetest.Open(t, b.DSN(t))
		ctx := context.Background()
		w := newWebhook(t, s, "message.received", true)
		got, err := s.Spill(ctx, []string{w.ID})
		if err != nil {
			t.Fatal(err)
		}
		wantSpill := b.Name == "sqlite"
		if got[w.ID] != wantSpill || s.SpillSupported() != wantSpill {
			t.Fatalf("spilled %v (supported %v), want %v", got[w.ID], s.SpillSupported(), wantSpill)
		}
		wantRows := 1
		if wantSpill {
			wantRows = 0
		}
		if p := publish(t, s, "message.received", ""); len(p.Deliveries) != wantRows || p.Event.DeliveryCount != 1 {
			t.Errorf("rows at publish: %d (count %d), want %d (count 1)", len(p.Deliveries), p.Event.DeliveryCount, wantRows)
		}
	})
}

// With a dispatcher listening, a webhook whose backlog reaches the threshold is spilled by
// publishing itself, and the listener is told; rows plus owed events still cover every event
// once. A spill asked for (RequestSpill) is applied by the next publish.
func TestPublishSpillsBackloggedWebhooksWhenADispatcherListens(t *testing.T) {
	s := storetest.Open(t, storetest.SQLiteDSN(t))
	var told []string
	s.OnQueued(func(q models.Queued) { told = append(told, q.Spilled...) })
	behind := newWebhook(t, s, "message.received", true)
	asked := newWebhook(t, s, "message.received", true)
	const events = 200
	for i := range events {
		if i == 10 {
			s.RequestSpill([]string{asked.ID})
		}
		publish(t, s, "message.received", "")
	}
	if len(told) != 2 {
		t.Fatalf("spills reported %v, want both webhooks once", told)
	}
	st := queueStats(t, s)
	if st.Spilled != 2 || st.Pending+st.Owed != 2*events {
		t.Errorf("queue stats %+v: want 2 spilled and rows plus owed events = %d", st, 2*events)
	}
	if n := len(rowsOf(t, s, asked.ID)); n != 10 {
		t.Errorf("the webhook asked to spill after 10 events has %d rows, want 10", n)
	}
	if n := len(rowsOf(t, s, behind.ID)); n < 32 || n > 64 {
		t.Errorf("the webhook left behind has %d rows, want it spilled between 32 and 64", n)
	}
}

// A replay skips the events a spill owes, as it skips pending ones: they are on their way,
// and queuing them again would send them twice.
func TestReplaySkipsEventsTheSpillOwes(t *testing.T) {
	s := storetest.Open(t, storetest.SQLiteDSN(t))
	ctx := context.Background()
	since := time.Now().UTC().Add(-time.Minute)
	old := publish(t, s, "message.received", "") // before the webhook: replayable
	w := newWebhook(t, s, "message.received", true)
	if _, err := s.Spill(ctx, []string{w.ID}); err != nil {
		t.Fatal(err)
	}
	publish(t, s, "message.received", "")
	publish(t, s, "message.received", "")
	f := models.ReplayFilter{WebhookID: w.ID, Types: w.EventList(), Since: since, Until: time.Now().UTC().Add(time.Second)}
	queued, err := s.QueueReplay(ctx, f, 10, nil)
	if err != nil || queued != 1 {
		t.Fatalf("replay queued %d (%v), want only the event from before the spill", queued, err)
	}
	if got := take(t, s, w.ID, 10); got.Queued != 2 {
		t.Errorf("take after the replay: %+v, want the 2 owed events", got)
	}
	rows := rowsOf(t, s, w.ID)
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

// The first rows of a take can come back leased, ready to send: a claim does not return them
// again, and it does return the rest.
func TestTakeLeasesTheRowsAskedFor(t *testing.T) {
	s := storetest.Open(t, storetest.SQLiteDSN(t))
	ctx := context.Background()
	w := newWebhook(t, s, "message.received", true)
	if _, err := s.Spill(ctx, []string{w.ID}); err != nil {
		t.Fatal(err)
	}
	var want []string
	for range 5 {
		want = append(want, publish(t, s, "message.received", "").Event.ID)
	}
	now := time.Now()
	got, err := s.TakeSpilled(ctx, models.TakeRequest{Owner: "me", Now: now, LeaseFor: time.Minute,
		Hooks: []models.TakeWant{{WebhookID: w.ID, Rows: 3, Lease: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	tk := got[w.ID]
	if tk.Queued != 3 || !tk.Spilled || len(tk.Leased) != 2 {
		t.Fatalf("take: %+v, want 3 rows, 2 leased, still spilled", tk)
	}
	for i, d := range tk.Leased {
		if d.EventID != want[i] || d.LockedBy != "me" || d.Status != models.StatusPending || !strings.HasPrefix(d.ID, "dlv_") || len(d.ID) != 36 {
			t.Errorf("leased %d: %+v, want event %s leased to me with a dlv_ id", i, d, want[i])
		}
	}
	claimed, _ := claimFor(t, s, now, models.HookSlots{WebhookID: w.ID, Free: 10})
	if len(claimed) != 1 || claimed[0].EventID != want[2] {
		t.Errorf("claim after the take: %d rows, want only the unleased third event's", len(claimed))
	}
}
