package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/conformance"
	"github.com/hookrelay/hookrelay/store/internal/sqlcommon"
	"github.com/hookrelay/hookrelay/store/postgres"
	"github.com/jackc/pgx/v5"
)

// statements records the statements sent while on, by their first words, but for wakes.
type statements struct {
	mu   sync.Mutex
	on   bool
	sent []string
}

func (s *statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The wakes to other replicas go on a goroutine of their own, whenever it runs.
	if s.on && !strings.HasPrefix(d.SQL, "SELECT pg_notify") {
		q := strings.Join(strings.Fields(d.SQL), " ")
		s.sent = append(s.sent, q[:min(len(q), 40)])
	}
	return ctx
}

func (*statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// during returns the statements sent while fn ran.
func (s *statements) during(fn func()) []string {
	s.mu.Lock()
	s.on, s.sent = true, nil
	s.mu.Unlock()
	fn()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.on = false
	return s.sent
}

// openTraced opens the driver on a fresh database with a tracer of its statements, and
// returns the database's DSN for other replicas.
func openTraced(t *testing.T) (*postgres.Driver, *statements, string) {
	t.Helper()
	requirePostgres(t)
	tr := &statements{}
	dsn := storetest.PostgresDSN(t)
	d, err := postgres.OpenTraced(context.Background(), dsn, tr)
	if err != nil {
		t.Fatal(err)
	}
	return d, tr, dsn
}

// tracedStore is a store over openTraced's driver, closed with the test; listening, its
// publishes start spills, as with a dispatcher in the process.
func tracedStore(t *testing.T, listening bool) (*store.Store, *statements) {
	t.Helper()
	d, tr, _ := openTraced(t)
	if listening {
		d.OnQueued(func(sqlcommon.Queued) {})
	}
	s := store.New(d)
	t.Cleanup(func() { _ = s.Close() })
	return s, tr
}

// publishChecked publishes one event on s and checks the statements it sent and its
// deliveries.
func publishChecked(t *testing.T, s *store.Store, tr *statements, what string, want func(sent []string) bool, deliveries int) {
	t.Helper()
	var p store.Published
	sent := tr.during(func() { p = conformance.Publish(t, s, "message.received", "") })
	if !want(sent) {
		t.Fatalf("%s sent %q", what, sent)
	}
	if len(p.Deliveries) != deliveries {
		t.Fatalf("%s published %d deliveries, want %d", what, len(p.Deliveries), deliveries)
	}
}

// oneInsert is what a publish sends while the webhooks are as it last read them.
func oneInsert(sent []string) bool {
	return len(sent) == 1 && hasPrefix(sent, "WITH g AS (SELECT COALESCE")
}

// oneInsertLocking is what it sends while they are, and it owes spills their events.
func oneInsertLocking(sent []string) bool {
	return len(sent) == 1 && hasPrefix(sent, "WITH g AS (SELECT hookrelay_publish")
}

// readAgain is what it sends when they changed: the insert that wrote nothing, then a
// transaction that reads them and writes.
func readAgain(sent []string) bool {
	return len(sent) == 5 && hasPrefix(sent[:1], "WITH g AS") && hasPrefix(sent[1:2], "begin") &&
		hasPrefix(sent[2:3], "SELECT w.id") && strings.Contains(sent[3], "INSERT INTO events") && hasPrefix(sent[4:], "commit")
}

func hasPrefix(sent []string, prefix string) bool {
	for _, q := range sent {
		if strings.HasPrefix(strings.ToUpper(q), strings.ToUpper(prefix)) {
			return true
		}
	}
	return false
}

// A publish that holds no spill's lock and starts no spill sends one statement while the
// webhooks are as the last publish read them: its insert, checked against their generation,
// with no BEGIN or COMMIT. When another replica changed them, the insert writes nothing and the
// publish runs again in a transaction that reads them afresh. A publish that must hold the
// locks of spills, or start one, runs in a transaction, and owes its events as before.
func TestAPublishWhileTheWebhooksStayTheSameIsOneInsert(t *testing.T) {
	d, tr, dsn := openTraced(t)
	d.OnQueued(func(sqlcommon.Queued) {}) // as with a dispatcher: publishes start spills
	s := store.New(d)
	t.Cleanup(func() { _ = s.Close() })
	other := open(t, dsn) // another replica
	ctx := context.Background()
	w := conformance.NewWebhook(t, s, "message.received", true)

	publish := func(what string, want func(sent []string) bool, deliveries int) {
		t.Helper()
		publishChecked(t, s, tr, what, want, deliveries)
	}

	conformance.Publish(t, s, "message.received", "") // reads the webhooks, and the tables' columns once
	publish("a publish with the webhooks unchanged", oneInsert, 1)

	w2 := conformance.NewWebhook(t, other, "message.received", true)
	publish("a publish after another replica added a webhook", readAgain, 2)
	publish("the publish after it", oneInsert, 2)

	if _, err := other.ModifyWebhook(ctx, w2.ID, func(w *models.Webhook) error { w.Enabled = false; return nil }); err != nil {
		t.Fatal(err)
	}
	publish("a publish after another replica disabled a webhook", readAgain, 1)
	if _, err := other.ModifyWebhook(ctx, w2.ID, func(w *models.Webhook) error { w.Name = "renamed"; return nil }); err != nil {
		t.Fatal(err)
	}
	publish("a publish after a change it does not depend on", oneInsert, 1)
	if _, err := other.ModifyWebhook(ctx, w.ID, func(w *models.Webhook) error { w.Events = "conversation.started"; return nil }); err != nil {
		t.Fatal(err)
	}
	publish("a publish after its only subscriber subscribed to something else", readAgain, 0)
	if _, err := other.ModifyWebhook(ctx, w.ID, func(w *models.Webhook) error { w.Events = "message.received"; return nil }); err != nil {
		t.Fatal(err)
	}
	publish("a publish after it subscribed again", readAgain, 1)
	// 9 deliveries, less the 2 of the webhook disabled, which disabling cancelled.
	if st := conformance.QueueStats(t, s); st.Pending != 7 || st.Owed != 0 {
		t.Fatalf("after the publishes: %+v, want 7 deliveries pending", st)
	}

	// Asked to start a spill, the publish finds out before it writes and runs again in a
	// transaction that starts it and owes it the event.
	d.RequestSpill([]string{w.ID})
	sent := tr.during(func() { conformance.Publish(t, s, "message.received", "") })
	if !hasPrefix(sent, "begin") || !hasPrefix(sent, "commit") {
		t.Fatalf("a publish that starts a spill sent %q, want a transaction", sent)
	}
	if st := conformance.QueueStats(t, s); st.Spilled != 1 || st.Owed != 1 || st.Pending != 7 {
		t.Fatalf("after the publish that spilled: %+v, want the spill started and owed the event", st)
	}

	// With the spill seen, the next publish takes its lock, so it runs in a transaction too.
	sent = tr.during(func() { conformance.Publish(t, s, "message.received", "") })
	if !hasPrefix(sent, "begin") || !hasPrefix(sent, "SELECT pg_advisory_xact_lock_shared") || !hasPrefix(sent, "commit") {
		t.Fatalf("a publish to a spilled webhook sent %q, want the spill's lock taken in a transaction", sent)
	}
	if st := conformance.QueueStats(t, s); st.Owed != 2 || st.Pending != 7 {
		t.Fatalf("after the publish to the spill: %+v, want 2 owed", st)
	}
	// That one read the webhooks with the spill; the next uses what it read, in one
	// statement that takes the lock first.
	sent = tr.during(func() { conformance.Publish(t, s, "message.received", "") })
	if !oneInsertLocking(sent) {
		t.Fatalf("a publish to the same spill sent %q, want one insert that takes the lock", sent)
	}
	if st := conformance.QueueStats(t, s); st.Owed != 3 || st.Pending != 7 {
		t.Fatalf("after the second publish to the spill: %+v, want 3 owed", st)
	}
}

// A spill another replica started changes the generation too: the next publish reads it, and
// the one after owes the spill its event.
func TestAPublishSeesASpillAnotherReplicaStarted(t *testing.T) {
	d, tr, dsn := openTraced(t)
	s := store.New(d)
	t.Cleanup(func() { _ = s.Close() })
	other := open(t, dsn)
	w := conformance.NewWebhook(t, s, "message.received", true)
	conformance.Publish(t, s, "message.received", "")
	publishChecked(t, s, tr, "a publish with the webhooks unchanged", oneInsert, 1)
	if _, err := other.Spill(context.Background(), []string{w.ID}); err != nil {
		t.Fatal(err)
	}
	// A row still: the spill's lock was not held (TestAPublishOwesOnlyTheSpillsItLockedBeforeReading).
	publishChecked(t, s, tr, "a publish after another replica spilled its webhook", readAgain, 1)
	publishChecked(t, s, tr, "the publish after it", oneInsertLocking, 0)
	if st := conformance.QueueStats(t, s); st.Pending != 3 || st.Owed != 1 || st.Spilled != 1 {
		t.Fatalf("after the publishes: %+v, want 3 pending and 1 owed", st)
	}
}

// A publish whose turn it is to look at a webhook's backlog makes the look in its one
// statement, with the webhooks from the cache; a backlog past the threshold spills the
// webhook with the next publish, which reads the webhooks and starts the spill in a
// transaction. A look used to send the publish into that transaction itself: one publish in
// 32 at the engine's threshold.
func TestAPublishLooksAtABacklogInItsOneStatement(t *testing.T) {
	s, tr := tracedStore(t, true)
	s.SpillWhenPending(store.SpillThreshold{Due: 4}) // a look every 4 rows; nothing claims them
	conformance.NewWebhook(t, s, "message.received", true)
	conformance.Publish(t, s, "message.received", "") // reads the webhooks, and the tables' columns once
	for i := 2; i <= 5; i++ {
		// The fifth looks: four rows written since the read, four due.
		publishChecked(t, s, tr, fmt.Sprintf("publish %d", i), oneInsert, 1)
	}
	startsSpill := func(sent []string) bool {
		return hasPrefix(sent[:1], "begin") && hasPrefix(sent, "INSERT INTO webhook_spills")
	}
	publishChecked(t, s, tr, "the publish after the look", startsSpill, 0)
	// Starting the spill changed the webhooks' generation: the next publish reads them again,
	// holding the spill's lock, and the one after owes in one statement.
	readsLocking := func(sent []string) bool {
		return len(sent) == 5 && hasPrefix(sent[:1], "begin") && hasPrefix(sent[1:2], "SELECT pg_advisory_xact_lock_shared")
	}
	publishChecked(t, s, tr, "the publish after the spill started", readsLocking, 0)
	publishChecked(t, s, tr, "the publish after that", oneInsertLocking, 0)
	if st := conformance.QueueStats(t, s); st.Pending != 5 || st.Owed != 3 || st.Spilled != 1 {
		t.Fatalf("after the publishes: %+v, want 5 pending, 3 owed and the webhook spilled", st)
	}
}

// A publish of a look's interval of events or more makes its look in a transaction, before
// it writes, and spills a backlogged webhook at once: with the look in its insert, the spill
// would wait for the next publish, and the webhook would get that many rows more.
func TestALargePublishLooksAtABacklogBeforeItWrites(t *testing.T) {
	s, tr := tracedStore(t, true)
	s.SpillWhenPending(store.SpillThreshold{Due: 4})
	conformance.NewWebhook(t, s, "message.received", true)
	for range 4 { // four rows: the next publish looks
		conformance.Publish(t, s, "message.received", "")
	}
	et, _ := models.LookupEventType(models.EventMessageReceived)
	now := time.Now().UTC().Truncate(time.Second)
	in := make([]store.PublishInput, 4)
	for i := range in {
		in[i] = store.PublishInput{Type: et.Name, Payload: et.Example(now), OccurredAt: now, RequestHash: "h"}
	}
	var got []store.Published
	sent := tr.during(func() {
		var err error
		if got, err = s.Publish(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	})
	if !hasPrefix(sent, "INSERT INTO webhook_spills") {
		t.Fatalf("a publish of 4 events with a look due sent %q, want the spill started", sent)
	}
	for _, p := range got {
		if len(p.Deliveries) != 0 {
			t.Fatalf("an event of the publish that spilled its webhook got %d deliveries, want it owed", len(p.Deliveries))
		}
	}
	if st := conformance.QueueStats(t, s); st.Pending != 4 || st.Owed != 4 || st.Spilled != 1 {
		t.Fatalf("after the publishes: %+v, want 4 pending, 4 owed and the webhook spilled", st)
	}
}

// slots is a lessee that grants up to free slots per webhook and counts what it holds.
type slots struct {
	mu       sync.Mutex
	free     int
	held     map[string]int
	handed   int
	released int
}

func (l *slots) Reserve(want map[string]int, _ time.Time) (map[string]int, string, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	granted := map[string]int{}
	for id, n := range want {
		if g := min(n, l.free-l.held[id]); g > 0 {
			granted[id] = g
			l.held[id] += g
		}
	}
	return granted, "test", time.Now().Add(time.Minute).UnixMilli()
}

func (l *slots) Leased(ds []*models.Delivery) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.handed += len(ds)
}

func (l *slots) Release(granted map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, n := range granted {
		l.held[id] -= n
		l.released += n
	}
}

// A publish whose rows take more than one statement finds out after its lessee granted
// slots, gives them back, and runs again in a transaction: every row is written once, and
// the lessee holds exactly the slots of the rows handed to it.
func TestAPublishOfMoreRowsThanOneStatementTakesRunsInATransaction(t *testing.T) {
	d, tr, _ := openTraced(t)
	l := &slots{free: 10, held: map[string]int{}}
	if !d.LeaseAtPublish(l) {
		t.Fatal("the driver does not lease at publish")
	}
	s := store.New(d)
	t.Cleanup(func() { _ = s.Close() })
	const hooks, events = 3, postgres.InsertChunk/3 + 1 // one row more than a statement takes
	for range hooks {
		conformance.NewWebhook(t, s, "message.received", true)
	}
	et, _ := models.LookupEventType("message.received")
	now := time.Now().UTC().Truncate(time.Second)
	in := make([]store.PublishInput, events)
	for i := range in {
		in[i] = store.PublishInput{Type: et.Name, Payload: et.Example(now), OccurredAt: now, RequestHash: "h"}
	}
	var out []store.Published
	var err error
	sent := tr.during(func() {
		if out, err = s.Publish(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	})
	if !hasPrefix(sent, "begin") || !hasPrefix(sent, "commit") {
		t.Fatalf("a publish of %d rows sent %q, want a transaction", events*hooks, sent)
	}
	if len(out) != events || len(out[0].Deliveries) != hooks {
		t.Fatalf("published %d events with %d deliveries each, want %d with %d", len(out), len(out[0].Deliveries), events, hooks)
	}
	var rows int64
	if err := d.Writer.Raw(`SELECT count(*) FROM deliveries`).Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	if rows != events*hooks {
		t.Fatalf("%d delivery rows, want %d", rows, events*hooks)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// Each try that found it needs a transaction gave back every slot it was granted.
	if l.released == 0 || l.released%(hooks*l.free) != 0 || l.handed != hooks*l.free {
		t.Fatalf("the lessee had %d slots given back and %d deliveries handed over, want a multiple of %d and %d",
			l.released, l.handed, hooks*l.free, hooks*l.free)
	}
	for id, n := range l.held {
		if n != l.free {
			t.Fatalf("webhook %s holds %d slots, want %d", id, n, l.free)
		}
	}
}

// A publish without a transaction that owes a spill takes the spill's lock in its one
// statement and reads the generation after it. A spill that ends while the publish waits for
// the lock is seen ended then: the publish writes its event a row, where owing it to a spill
// that is gone would lose it. (The statement's own snapshot, taken before the wait, still
// shows the spill.)
func TestAPublishWaitingForASpillsEndSeesItEnded(t *testing.T) {
	d, tr, _ := openTraced(t)
	s := store.New(d)
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	w := conformance.NewWebhook(t, s, "message.received", true)
	if _, err := s.Spill(ctx, []string{w.ID}); err != nil {
		t.Fatal(err)
	}
	conformance.Publish(t, s, "message.received", "") // reads the webhooks with the spill
	publishChecked(t, s, tr, "a publish to the spill", oneInsertLocking, 0)

	// The spill ends as dropSpill ends it, holding its lock until it commits.
	ending := d.Writer.Begin()
	defer ending.Rollback()
	if err := ending.Exec(`SELECT pg_advisory_xact_lock(?, hashtext(?))`, postgres.SpillLockClass, w.ID).Error; err != nil {
		t.Fatal(err)
	}
	if err := ending.Exec(`DELETE FROM webhook_spills WHERE webhook_id = ?`, w.ID).Error; err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		p   []store.Published
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		et, _ := models.LookupEventType("message.received")
		now := time.Now().UTC().Truncate(time.Second)
		p, err := s.Publish(ctx, []store.PublishInput{{Type: et.Name, Payload: et.Example(now), OccurredAt: now, RequestHash: "h"}})
		done <- outcome{p, err}
	}()
	for deadline := time.Now().Add(10 * time.Second); ; {
		var waiting int64
		if err := d.Reader.Raw(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`).Scan(&waiting).Error; err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the publish never waited for the spill's lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := ending.Commit().Error; err != nil {
		t.Fatal(err)
	}
	got := <-done
	if got.err != nil {
		t.Fatal(got.err)
	}
	if n := len(got.p[0].Deliveries); n != 1 {
		t.Fatalf("the publish that waited for the spill's end wrote %d delivery rows, want 1: it owed the event to the ended spill", n)
	}
	if st := conformance.QueueStats(t, s); st.Spilled != 0 || st.Pending != 1 {
		t.Fatalf("after the spill ended: %+v, want the last event pending and no spill", st)
	}
}
