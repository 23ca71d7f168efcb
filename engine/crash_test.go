package engine_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testsrv"
	"github.com/hookrelay/hookrelay/internal/wait"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

// binaryFlags are what the crash and shutdown tests run the real binary with: receivers are
// httptest servers on loopback, and retries come quickly.
func binaryFlags(db string, extra ...string) []string {
	return append([]string{"--db", db, "--allow-http", "--allow-private-targets", "--workers", "32",
		"--retry-schedule", "100ms,200ms,400ms,800ms,1s,1s,1s,1s"}, extra...)
}

// publishUntil publishes message.received events from several goroutines until n were
// accepted in all or a publish fails (the server was killed), and returns the accepted ids.
func publishUntil(p *testsrv.Process, accepted *sync.Map, count *atomic.Int64, n int64) {
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; count.Load() < n; i++ {
				data := map[string]any{"conversation_id": g*100000 + i + 1, "message_id": i + 1, "content": fmt.Sprintf("message %d/%d", g, i)}
				id, status, err := p.TryPublish(context.Background(), "message.received", data)
				if err != nil {
					return // killed: whatever had no 202 was never promised
				}
				if status == http.StatusAccepted {
					accepted.Store(id, true)
					count.Add(1)
				}
			}
		}()
	}
	wg.Wait()
}

func TestSIGKILLMidRunLosesNoAcceptedEvent(t *testing.T) {
	t.Run("receiver keeps up", func(t *testing.T) { sigkillMidRun(t, 0) })
	// A receiver slower than the publishers: its webhook is spilled (models/spill.go), so
	// the kill lands while most of what it is owed has no delivery row yet.
	t.Run("spilled receiver", func(t *testing.T) { sigkillMidRun(t, 5*time.Millisecond) })
}

func sigkillMidRun(t *testing.T, delay time.Duration) {
	const total = 2000
	bin := testsrv.BuildBinary(t)
	db := filepath.Join(t.TempDir(), "crash.db")

	var (
		mu        sync.Mutex
		successes = map[string][]string{}  // X-Webhook-Id → the connections of its requests answered 2xx
		connFirst = map[string]time.Time{} // connection (remote address) → when its first request arrived
	)
	rc := testsrv.NewReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		// The connection tells which process sent a request: the restarted one opens its own,
		// after the restart began. The arrival time alone would not: a request the killed
		// process wrote just before the kill may reach this handler after the restart began.
		mu.Lock()
		if _, seen := connFirst[r.RemoteAddr]; !seen {
			connFirst[r.RemoteAddr] = time.Now()
		}
		mu.Unlock()
		time.Sleep(delay)
		if n%10 == 0 { // keep some retries in the mix across the crash
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		successes[r.Header.Get("X-Webhook-Id")] = append(successes[r.Header.Get("X-Webhook-Id")], r.RemoteAddr)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})

	first := testsrv.StartBinary(t, bin, binaryFlags(db)...)
	first.CreateWebhook(t, map[string]any{"name": "counter", "url": rc.URL + "/hook",
		"events": []string{"message.received"}, "secret": plainSecret})

	var accepted sync.Map
	var count atomic.Int64
	done := make(chan struct{})
	go func() { defer close(done); publishUntil(first, &accepted, &count, total) }()

	// Kill once publishing and delivering are both well under way.
	if !wait.For(func() bool {
		return count.Load() >= total/3 && len(rc.Captures()) >= 100 && (delay == 0 || spills(t, db) > 0)
	}) {
		t.Fatalf("only %d events accepted and %d delivered (%d webhooks spilled)", count.Load(), len(rc.Captures()), spills(t, db))
	}
	first.Kill(t)
	<-done
	atKill := count.Load()
	if atKill >= total {
		t.Fatalf("every event was accepted before the kill; the test proves nothing")
	}

	restartedAt := time.Now()
	second := testsrv.StartBinary(t, bin, binaryFlags(db)...)
	publishUntil(second, &accepted, &count, total)

	var ids []string
	accepted.Range(func(k, _ any) bool { ids = append(ids, k.(string)); return true })
	var missing []string
	if !wait.For(func() bool {
		mu.Lock()
		defer mu.Unlock()
		missing = missing[:0]
		for _, id := range ids {
			if len(successes[id]) == 0 {
				missing = append(missing, id)
			}
		}
		return len(missing) == 0
	}) {
		t.Fatalf("%d of %d accepted events never arrived (first: %v)", len(missing), len(ids), missing[:min(5, len(missing))])
	}

	// At-least-once, and duplicates only for what was in flight at the kill: an event
	// answered before the kill may arrive once more after the restart, never twice on one side.
	mu.Lock()
	dups := 0
	for id, at := range successes {
		var before, after int
		for _, conn := range at {
			if connFirst[conn].Before(restartedAt) {
				before++ // a connection in use before the restarted process existed
			} else {
				after++
			}
		}
		if before > 1 || after > 1 || before+after != len(at) {
			t.Errorf("event %s arrived %d times before the kill and %d after the restart (%d in all)", id, before, after, len(at))
		}
		if len(at) > 1 {
			dups++
		}
	}
	mu.Unlock()
	t.Logf("%d events accepted (%d before the SIGKILL), %d requests received, %d events delivered twice (in flight at the kill)",
		len(ids), atKill, len(rc.Captures()), dups)

	// Nothing is left pending or failed once everything arrived. An event can arrive before
	// its delivery is recorded: one the killed process sent whose record the kill lost, which
	// the restarted process sends again when it is due (a retry's backoff can put that a second
	// out), so the rows are waited for while the restarted process runs.
	notSucceeded := func() int64 {
		return countIn(t, "sqlite", db, `SELECT COUNT(*) FROM deliveries WHERE status <> 'succeeded'`)
	}
	if !wait.For(func() bool { return notSucceeded() == 0 && spills(t, db) == 0 }) {
		t.Errorf("%d deliveries not succeeded and %d webhooks spilled %s after every event arrived",
			notSucceeded(), spills(t, db), wait.Timeout)
	}
	second.Terminate(t, 30*time.Second)
	st, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var open int64
	if err := st.ScanSQL(context.Background(), &open, `SELECT COUNT(*) FROM deliveries WHERE status <> 'succeeded'`); err != nil {
		t.Fatal(err)
	}
	if open != 0 {
		t.Errorf("%d deliveries are not succeeded after every event arrived", open)
	}
	if n := spills(t, db); n != 0 {
		t.Errorf("%d webhooks still spilled after every event arrived", n)
	}
}

// spills counts the spilled webhooks in a database a running process may be using (WAL
// lets another connection read it).
func spills(t *testing.T, db string) int64 {
	return countIn(t, "sqlite", db, `SELECT COUNT(*) FROM webhook_spills`)
}

// countIn runs a COUNT query on a database a running process is using; 0 before the process
// has migrated it.
func countIn(t *testing.T, driverName, dsn, query string) int64 {
	t.Helper()
	conn, err := sql.Open(driverName, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n int64
	if err := conn.QueryRow(query).Scan(&n); err != nil {
		return 0 // not migrated yet
	}
	return n
}

func TestSIGTERMLetsTheInFlightDeliveryFinishAndRecordsIt(t *testing.T) {
	bin := testsrv.BuildBinary(t)
	db := filepath.Join(t.TempDir(), "shutdown.db")
	respond, arrived, release := testsrv.HoldFirst(http.StatusOK)
	rc := testsrv.NewReceiver(t, respond)

	p := testsrv.StartBinary(t, bin, binaryFlags(db)...)
	p.CreateWebhook(t, map[string]any{"name": "slow", "url": rc.URL, "events": []string{"conversation.started"}})
	first := p.Publish(t, "conversation.started", conversation, "")
	select {
	case <-arrived:
	case <-time.After(15 * time.Second):
		t.Fatal("the delivery never arrived")
	}

	// SIGTERM while the receiver holds the request; answer only once shutdown has begun.
	exited := make(chan error, 1)
	go func() { exited <- p.Stop(syscall.SIGTERM, 60*time.Second) }()
	wait.Until(t, "the listener closes after SIGTERM (shutdown under way)", func() bool {
		_, _, err := p.Request(context.Background(), http.MethodGet, "/healthz", nil, nil)
		return err != nil
	})
	close(release)
	if err := <-exited; err != nil {
		t.Fatal(err)
	}

	st, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	ds, _, err := st.ListDeliveries(context.Background(), store.DeliveryFilter{EventID: first.ID}, models.Page{Limit: 10})
	if err != nil || len(ds) != 1 {
		t.Fatalf("deliveries of the event: %d, %v", len(ds), err)
	}
	if d := ds[0]; d.Status != models.StatusSucceeded || d.AttemptCount != 1 {
		t.Errorf("after a graceful stop the in-flight delivery is %s with %d attempts, want succeeded with 1", d.Status, d.AttemptCount)
	}
	st.Close()

	// A restart does not send it again. The restarted dispatcher claims overdue work first,
	// so once a newer event has been delivered, a re-send of the old one would have shown.
	again := testsrv.StartBinary(t, bin, binaryFlags(db)...)
	second := again.Publish(t, "conversation.started", conversation, "")
	again.WaitDelivery(t, again.EventDelivery(t, second.ID).ID, 15*time.Second, testsrv.Finished)
	again.Terminate(t, 30*time.Second)
	n := 0
	for _, c := range rc.Captures() {
		if c.Header.Get("X-Webhook-Id") == first.ID {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the event delivered before the graceful stop arrived %d times, want once", n)
	}
}
