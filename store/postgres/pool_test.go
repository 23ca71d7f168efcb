package postgres_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/conformance"
	"github.com/hookrelay/hookrelay/store/postgres"
	"gorm.io/gorm"
)

// The batch phase of the bench on PostgreSQL used to stall for good with the pool's 32
// connections "idle in transaction". These tests build the two ways it happened one step at
// a time, each step waiting for the state the previous one must reach (never for a time), and
// give up only after a generous bound that a stalled pool never meets.

// stallBound is how long a step may take before the test calls the pool stalled.
const stallBound = 15 * time.Second

func openForPool(t *testing.T) (*postgres.Driver, *sql.DB) {
	t.Helper()
	d := openDriver(t)
	pool, err := d.Writer.DB()
	if err != nil {
		t.Fatal(err)
	}
	return d, pool
}

// holdConns opens n transactions, each holding one of the pool's connections, and returns
// them; they are rolled back at the end of the test.
func holdConns(t *testing.T, d *postgres.Driver, n int) []*gorm.DB {
	t.Helper()
	txs := make([]*gorm.DB, n)
	for i := range txs {
		tx := d.Writer.Begin()
		if tx.Error != nil {
			t.Fatal(tx.Error)
		}
		if err := tx.Exec(`SELECT 1`).Error; err != nil {
			t.Fatal(err)
		}
		txs[i] = tx
	}
	t.Cleanup(func() {
		for _, tx := range txs {
			tx.Rollback()
		}
	})
	return txs
}

// waitFor polls cond until it holds, or fails the test after stallBound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(stallBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached after %s", what, stallBound)
		}
		time.Sleep(time.Millisecond)
	}
}

// A transaction that holds a connection runs a statement that a call outside any
// transaction is preparing for the first time, while that call waits for a free connection.
// With a process-wide cache of prepared statements (gorm's PrepareStmt), the transaction waited
// for that preparation, which waited for the connection the transaction held: with every
// connection held by publishes (32 publishers, 32 connections) nothing moved again. Each
// connection caches its own statements (pgx), so the transaction just runs it.
func TestATransactionNeverWaitsForAStatementPreparedOutsideIt(t *testing.T) {
	d, pool := openForPool(t)
	txs := holdConns(t, d, pool.Stats().MaxOpenConnections)
	const query = `SELECT 42 AS answer_prepared_outside_a_transaction`
	waits := pool.Stats().WaitCount
	outside := make(chan error, 1)
	go func() {
		var n int
		outside <- d.Writer.Raw(query).Scan(&n).Error
	}()
	waitFor(t, "the call outside a transaction waits for a connection", func() bool { return pool.Stats().WaitCount > waits })

	inside := make(chan error, 1)
	go func() {
		var n int
		inside <- txs[0].Raw(query).Scan(&n).Error
	}()
	select {
	case err := <-inside:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(stallBound):
		t.Fatal("the transaction waits for a statement prepared outside it, which waits for the transaction's connection")
	}
	txs[0].Rollback()
	select {
	case err := <-outside:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(stallBound):
		t.Fatal("the call outside a transaction never got the connection freed for it")
	}
}

// A job holds its lock while it runs, and what it runs needs connections of its own. Holding
// the lock in a transaction of the shared pool took one of them away for the whole job: with
// the others all busy, the job waited for a connection while holding one. The lock lives on a
// connection of its own, so the job needs one from the pool, like any caller.
func TestAJobLockTakesNoConnectionFromThePool(t *testing.T) {
	d, pool := openForPool(t)
	holdConns(t, d, pool.Stats().MaxOpenConnections-1)
	ctx, cancel := context.WithTimeout(context.Background(), stallBound)
	defer cancel()
	ran, err := d.WithJobLock(ctx, 4242, func(ctx context.Context) error {
		var n int
		return d.Writer.WithContext(ctx).Raw(`SELECT 1`).Scan(&n).Error
	})
	if err != nil || !ran {
		t.Fatalf("job with one free connection: ran %v, err %v", ran, err)
	}
}

// A take or a record that leaves nothing owed ends the spill only when no publish that may
// still owe the webhook events is running, and neither waits for one: each holds owed rows by
// then, and a drop of the spill (the webhook disabled) waiting for those rows while holding
// the spill's lock would deadlock with it. Once the publish is done, the next take ends the
// spill.
func TestATakeDoesNotWaitForAPublishInFlightToEndASpill(t *testing.T) {
	d, s, w := spilledOwingOne(t)
	ctx := context.Background()
	inFlight := publishInFlight(t, d, w.ID)
	take := func() store.SpillTake {
		t.Helper()
		tctx, cancel := context.WithTimeout(ctx, stallBound)
		defer cancel()
		got, err := s.TakeSpilled(tctx, store.TakeRequest{Owner: "t", Now: time.Now(), Lease: time.Minute,
			Hooks: []store.OwedQuota{{WebhookID: w.ID, Rows: 10}}})
		if err != nil {
			t.Fatalf("take with a publish in flight: %v", err)
		}
		return got[w.ID]
	}
	got := take()
	if len(got.Taken) != 1 || !got.Spilled {
		t.Errorf("take beside a publish in flight: %d taken, spilled %v; want the one owed event and the spill kept", len(got.Taken), got.Spilled)
	}
	rctx, cancel := context.WithTimeout(ctx, stallBound)
	defer cancel()
	if err := s.RecordResults(rctx, conformance.Delivered(got.Taken...)); err != nil {
		t.Fatalf("record with a publish in flight: %v", err)
	}
	if spilled, _ := s.SpilledWebhooks(ctx); len(spilled) != 1 {
		t.Errorf("spilled after the record beside a publish in flight: %v, want the spill kept", spilled)
	}
	inFlight.Rollback()
	if got := take(); len(got.Taken) != 0 || got.Spilled {
		t.Errorf("take after the publish: %d taken, spilled %v; want nothing and the spill ended", len(got.Taken), got.Spilled)
	}
}

// Publishers that see the same backlog decide to spill the same webhook together. While one
// of them is starting the spill, another does not wait for it (its insert of the spill's row
// would, until the first commits): it writes the webhook's delivery row as before the spill.
func TestAPublishDoesNotWaitForAnotherStartingTheSameSpill(t *testing.T) {
	d, _ := openForPool(t)
	d.OnQueued(func(store.Queued) {}) // a dispatcher listens: publishes may start spills
	s := store.New(d)
	w := conformance.NewWebhook(t, s, "message.received", true)
	starting := d.Writer.Begin()
	defer starting.Rollback()
	if err := starting.Exec(`SELECT pg_advisory_xact_lock(?, hashtext(?))`, postgres.SpillStartClass, w.ID).Error; err != nil {
		t.Fatal(err)
	}
	if err := starting.Exec(`INSERT INTO webhook_spills (webhook_id, after_seq, since) VALUES (?, 0, now())`, w.ID).Error; err != nil {
		t.Fatal(err)
	}
	d.RequestSpill([]string{w.ID})
	done := make(chan store.Published, 1)
	go func() { done <- conformance.Publish(t, s, "message.received", "") }()
	select {
	case res := <-done:
		var rows int64
		if err := d.Writer.Raw(`SELECT COUNT(*) FROM deliveries WHERE webhook_id = ? AND event_id = ?`, w.ID, res.Event.ID).
			Scan(&rows).Error; err != nil || rows != 1 {
			t.Errorf("the publish beside a spill being started wrote %d delivery rows (%v), want 1", rows, err)
		}
	case <-time.After(stallBound):
		t.Fatal("the publish waited for another transaction starting the same spill")
	}
}

// Every publish owing a spilled webhook takes its spill's lock shared, and an end of the
// spill takes it exclusively to the end of its transaction. A try to end a spill that still
// owes events leaves the lock alone, so publishes go on beside the take or record that tried;
// a try that ends the spill holds it until it commits.
func TestATryToEndASpillThatStillOwesLeavesPublishesFree(t *testing.T) {
	d, s, w := spilledOwingOne(t)
	ctx := context.Background()
	publishWouldWait := func() bool {
		t.Helper()
		var free bool
		err := d.Writer.Transaction(func(tx *gorm.DB) error {
			return tx.Raw(`SELECT pg_try_advisory_xact_lock_shared(?, hashtext(?))`, postgres.SpillLockClass, w.ID).Scan(&free).Error
		})
		if err != nil {
			t.Fatal(err)
		}
		return !free
	}
	try := func(want bool) {
		t.Helper()
		tx := d.Writer.Begin()
		defer tx.Rollback()
		ended, err := postgres.TryEndSpill(tx, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		if ended != want {
			t.Fatalf("the try ended the spill: %v, want %v", ended, want)
		}
		if waits := publishWouldWait(); waits != want {
			t.Errorf("with the try's transaction open, a publish owing the webhook would wait: %v, want %v", waits, want)
		}
	}
	try(false) // the published event is owed and not listed yet

	// Take and record it beside a publish in flight, which keeps the spill from ending.
	inFlight := publishInFlight(t, d, w.ID)
	got, err := s.TakeSpilled(ctx, store.TakeRequest{Owner: "t", Now: time.Now(), Lease: time.Minute,
		Hooks: []store.OwedQuota{{WebhookID: w.ID, Rows: 10}}})
	if err != nil || len(got[w.ID].Taken) != 1 {
		t.Fatalf("take: %v, %d taken; want the owed event", err, len(got[w.ID].Taken))
	}
	try(false) // taken, its row not written yet
	if err := s.RecordResults(ctx, conformance.Delivered(got[w.ID].Taken...)); err != nil {
		t.Fatal(err)
	}
	inFlight.Rollback()
	try(true) // nothing owed: the spill ends, and its lock holds until the commit
}

// spilledOwingOne opens a store with a spilled webhook that owes one event.
func spilledOwingOne(t *testing.T) (*postgres.Driver, *store.Store, *models.Webhook) {
	t.Helper()
	d, _ := openForPool(t)
	s := store.New(d)
	w := conformance.NewWebhook(t, s, "message.received", true)
	if _, err := s.Spill(context.Background(), []string{w.ID}); err != nil {
		t.Fatal(err)
	}
	conformance.Publish(t, s, "message.received", "")
	return d, s, w
}

// publishInFlight holds a webhook's spill lock as a publish owing it events does until it
// commits; the caller ends the transaction.
func publishInFlight(t *testing.T, d *postgres.Driver, webhookID string) *gorm.DB {
	t.Helper()
	tx := d.Writer.Begin()
	if err := tx.Exec(`SELECT pg_advisory_xact_lock_shared(?, hashtext(?))`, postgres.SpillLockClass, webhookID).Error; err != nil {
		t.Fatal(err)
	}
	return tx
}
