package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/conformance"
	"github.com/hookrelay/hookrelay/store/postgres"
	"github.com/jackc/pgx/v5"
)

// Publishing to spilled webhooks writes no row for them: the events are marked owed, and a
// take lists them for the webhook it serves, in rows of a bounded size.
func TestAPublishWritesNoRowForSpilledWebhooks(t *testing.T) {
	requirePostgres(t)
	ctx := context.Background()
	dsn := storetest.PostgresDSN(t)
	s := open(t, dsn)
	var spilled []string
	for range 5 {
		spilled = append(spilled, conformance.NewWebhook(t, s, "message.received", true).ID)
	}
	if _, err := s.Spill(ctx, spilled); err != nil {
		t.Fatal(err)
	}
	var want []string
	for range 300 {
		want = append(want, conformance.Publish(t, s, "message.received", "").Event.ID)
	}
	db := rawConn(t, dsn)
	count := func(q string, args ...any) int64 {
		t.Helper()
		var n int64
		if err := db.QueryRow(ctx, q, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(`SELECT COUNT(*) FROM webhook_owed`) + count(`SELECT COUNT(*) FROM deliveries`); n != 0 {
		t.Fatalf("300 publishes to 5 spilled webhooks wrote %d rows of webhook_owed and deliveries, want none", n)
	}
	if n := count(`SELECT COUNT(*) FROM events WHERE owed`); n != 300 {
		t.Fatalf("%d events marked owed, want 300", n)
	}
	for id, n := range pending(t, s, spilled) {
		if n != 300 {
			t.Fatalf("webhook %s owes %d before any take, want 300 events", id, n)
		}
	}

	got := takeAt(t, s, "a", time.Now(), spilled[0], 10)
	if !slices.Equal(eventsOf(got.Taken), want[:10]) || !got.More {
		t.Fatalf("first take: %v (more %v), want the first 10 events and more", eventsOf(got.Taken), got.More)
	}
	// 300 events listed in rows of at most OwedChunk, the first split at the take's 10.
	if n, want := count(`SELECT COUNT(*) FROM webhook_owed WHERE webhook_id = $1`, spilled[0]),
		int64((300+postgres.OwedChunk-1)/postgres.OwedChunk+1); n != want {
		t.Errorf("%d owed rows list the first webhook's 300 events after a take of 10, want %d", n, want)
	}
	if n := count(`SELECT COUNT(*) FROM webhook_owed WHERE webhook_id <> $1`, spilled[0]); n != 0 {
		t.Errorf("a take of one webhook listed %d rows of others", n)
	}
	if n := pending(t, s, spilled[:2]); n[spilled[0]] != 300 || n[spilled[1]] != 300 {
		t.Errorf("owed after the take: %v, want 300 each (taken is owed until recorded)", n)
	}
	rest := takeAt(t, s, "a", time.Now(), spilled[0], 1000)
	if !slices.Equal(eventsOf(rest.Taken), want[10:]) || rest.More {
		t.Fatalf("second take: %d events (more %v), want the other 290 and no more", len(rest.Taken), rest.More)
	}
}

// A publish that commits after later ones (its transaction began first) has its owed events
// taken all the same, once: a take lists only what transactions that have all ended wrote,
// so the later publishes wait for it, shown as owed meanwhile, and the spill does not end.
func TestOwedEventsOfATransactionCommittingLateAreTakenOnce(t *testing.T) {
	ctx := context.Background()
	a, b, dsn := twoReplicas(t)
	w := conformance.NewWebhook(t, a, "message.received", true)
	if _, err := a.Spill(ctx, []string{w.ID}); err != nil {
		t.Fatal(err)
	}
	// A publish slow to commit: its event written, marked owed, in a transaction left open.
	slow, err := rawConn(t, dsn).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Rollback(ctx)
	late := models.NewID("evt")
	if _, err := slow.Exec(ctx, `INSERT INTO events (id, type, payload, occurred_at, created_at, owed)
		VALUES ($1, 'message.received', '\x7b7d', now(), now(), true)`, late); err != nil {
		t.Fatal(err)
	}
	var early []string
	for range 3 {
		early = append(early, conformance.Publish(t, a, "message.received", "").Event.ID)
	}

	got := takeAt(t, a, "a", time.Now(), w.ID, 10)
	if len(got.Taken) != 0 || !got.Spilled {
		t.Fatalf("take while an earlier publish is open: %v (spilled %v), want nothing yet and the spill kept",
			eventsOf(got.Taken), got.Spilled)
	}
	if n := pending(t, a, []string{w.ID}); n[w.ID] != 3 {
		t.Fatalf("owed while the earlier publish is open: %d, want the 3 committed events", n[w.ID])
	}
	if st := conformance.QueueStats(t, a); st.Owed != 3 || st.Spilled != 1 {
		t.Fatalf("queue stats while the earlier publish is open: %+v, want 3 owed, 1 spilled", st)
	}
	if err := slow.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values(append(slices.Clone(early), late)))
	got = takeAt(t, b, "b", time.Now(), w.ID, 10)
	if taken := eventsOf(got.Taken); !slices.Equal(taken, want) {
		t.Fatalf("take after the commit: %v, want %v", taken, want)
	}
	if again := takeAt(t, a, "a", time.Now(), w.ID, 10); len(again.Taken) != 0 {
		t.Fatalf("another take: %v, want nothing (every event is taken once)", eventsOf(again.Taken))
	}
}

// pending is what the webhooks owe or have pending.
func pending(t *testing.T, s *store.Store, ids []string) map[string]int64 {
	t.Helper()
	n, err := s.PendingCounts(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func rawConn(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
