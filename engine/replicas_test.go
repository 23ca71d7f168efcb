package engine_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/internal/testsrv"
	"github.com/hookrelay/hookrelay/internal/wait"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", to look at the shared database
)

// replicaFlags run a replica on the shared PostgreSQL database with a short lease, so work a
// killed replica held is taken over within seconds.
func replicaFlags(dsn string) []string {
	return []string{"--db", dsn, "--allow-http", "--allow-private-targets", "--workers", "32",
		"--delivery-timeout", "2s", "--claim-lease", "4s", "--retry-schedule", "200ms,400ms,800ms,1s,1s,1s,1s,1s"}
}

// countingReceiver counts 2xx answers per X-Webhook-Id.
type countingReceiver struct {
	mu   sync.Mutex
	seen map[string]int
	rc   *testsrv.Receiver
}

// newCountingReceiver answers each request after delay.
func newCountingReceiver(t *testing.T, delay time.Duration) *countingReceiver {
	c := &countingReceiver{seen: map[string]int{}}
	c.rc = testsrv.NewReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		c.mu.Lock()
		c.seen[r.Header.Get("X-Webhook-Id")]++
		c.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	return c
}

func (c *countingReceiver) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.seen))
	for k, v := range c.seen {
		out[k] = v
	}
	return out
}

// waitAll waits until every accepted id has arrived at least once.
func (c *countingReceiver) waitAll(t *testing.T, accepted *sync.Map, timeout time.Duration) map[string]int {
	t.Helper()
	var seen map[string]int
	missing := 0
	if !wait.For(func() bool {
		seen, missing = c.snapshot(), 0
		accepted.Range(func(k, _ any) bool {
			if seen[k.(string)] == 0 {
				missing++
			}
			return true
		})
		return missing == 0
	}) {
		t.Fatalf("%d accepted events never arrived", missing)
	}
	return seen
}

// publishAcross publishes n events round-robin through the replicas from 12 goroutines and
// records the ids that were accepted. A replica that stops answering is skipped.
func publishAcross(replicas []*testsrv.Process, n int, accepted *sync.Map, count *atomic.Int64) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				data := map[string]any{"conversation_id": i, "message_id": i, "content": fmt.Sprintf("event %d", i)}
				for try := range len(replicas) {
					p := replicas[(int(i)+try)%len(replicas)]
					id, status, err := p.TryPublish(context.Background(), "message.received", data)
					if err == nil && status == http.StatusAccepted {
						accepted.Store(id, true)
						count.Add(1)
						break
					}
				}
			}
		}()
	}
	wg.Wait()
}

// startReplicas starts n replicas on a fresh database, with a webhook to a receiver that
// answers after delay; it returns them, the receiver and the database.
func startReplicas(t *testing.T, n int, delay time.Duration) ([]*testsrv.Process, *countingReceiver, string) {
	t.Helper()
	if os.Getenv(storetest.PostgresEnv) == "" {
		t.Skipf("needs PostgreSQL: %s is not set (make test via .ci/run sets it)", storetest.PostgresEnv)
	}
	dsn := storetest.PostgresDSN(t)
	bin := testsrv.BuildBinary(t)
	rc := newCountingReceiver(t, delay)
	var replicas []*testsrv.Process
	for range n {
		replicas = append(replicas, testsrv.StartBinary(t, bin, replicaFlags(dsn)...))
	}
	replicas[0].CreateWebhook(t, map[string]any{"name": "counter", "url": rc.rc.URL + "/hook",
		"events": []string{"message.received"}, "secret": plainSecret})
	return replicas, rc, dsn
}

func TestThreeReplicasDeliverEveryEventExactlyOnce(t *testing.T) {
	replicas, rc, _ := startReplicas(t, 3, 0)
	var accepted sync.Map
	var count atomic.Int64
	publishAcross(replicas, 10000, &accepted, &count)
	if count.Load() != 10000 {
		t.Fatalf("%d of 10000 publishes accepted", count.Load())
	}
	seen := rc.waitAll(t, &accepted, 2*time.Minute)
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s delivered %d times, want exactly once", id, n)
		}
	}
	if len(seen) != 10000 {
		t.Fatalf("%d distinct events arrived, want 10000", len(seen))
	}
}

func TestKillingOneReplicaLosesNothingAndDuplicatesOnlyWhatWasInFlight(t *testing.T) {
	t.Run("receiver keeps up", func(t *testing.T) { killOneReplica(t, 0) })
	// A receiver slower than the publishers: its webhook is spilled, so the killed replica
	// dies holding leases on owed events it took and had not sent, or sent and not recorded;
	// the others take them again when the leases run out.
	t.Run("spilled receiver", func(t *testing.T) { killOneReplica(t, 20*time.Millisecond) })
}

func killOneReplica(t *testing.T, delay time.Duration) {
	replicas, rc, dsn := startReplicas(t, 3, delay)
	var accepted sync.Map
	var count atomic.Int64
	done := make(chan struct{})
	go func() { defer close(done); publishAcross(replicas, 10000, &accepted, &count) }()
	wait.Until(t, "3,000 events are accepted before the kill", func() bool {
		return count.Load() >= 3000 && (delay == 0 || leasedOwed(t, dsn) > 0)
	})
	replicas[1].Kill(t)
	// What the killed replica held at that moment is frozen until its leases run out (4 s):
	// attempts in flight, and attempts sent whose results waited for their record (a record
	// commits a batch; the slot is free once the result is handed over). Only those may be
	// sent again. The most any one replica holds bounds the killed one's.
	held := mostHeldByOneReplica(t, dsn)
	<-done
	if count.Load() < 9000 {
		t.Fatalf("only %d publishes accepted with two replicas left", count.Load())
	}
	seen := rc.waitAll(t, &accepted, 2*time.Minute)
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	if dups > held {
		t.Fatalf("%d duplicate deliveries, more than the %d deliveries any replica held under its leases at the kill", dups, held)
	}
	t.Logf("accepted %d, delivered %d distinct, %d duplicates after the kill (a replica held at most %d)", count.Load(), len(seen), dups, held)
}

// mostHeldByOneReplica is the most deliveries one process holds under its leases: rows it
// claimed or its publishes leased to it, and owed events its takes leased.
func mostHeldByOneReplica(t *testing.T, dsn string) int {
	t.Helper()
	now := time.Now().UnixMilli()
	rows := countIn(t, "pgx", dsn, fmt.Sprintf(`SELECT COALESCE(MAX(n), 0)::bigint FROM (SELECT locked_by, SUM(n) AS n FROM (
		SELECT locked_by, COUNT(*) AS n FROM deliveries WHERE status = 'pending' AND locked_until > %d GROUP BY locked_by
		UNION ALL
		SELECT locked_by, SUM(count) AS n FROM webhook_owed WHERE locked_until > %d GROUP BY locked_by) h GROUP BY locked_by) m`, now, now))
	return int(rows)
}

// leasedOwed counts the owed rows a take has leased: a spilled webhook's events in flight.
func leasedOwed(t *testing.T, dsn string) int64 {
	return countIn(t, "pgx", dsn, `SELECT COUNT(*) FROM webhook_owed WHERE locked_until > 0`)
}
