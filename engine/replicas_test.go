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

func newCountingReceiver(t *testing.T) *countingReceiver {
	c := &countingReceiver{seen: map[string]int{}}
	c.rc = testsrv.NewReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
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

func startReplicas(t *testing.T, n int) ([]*testsrv.Process, *countingReceiver) {
	t.Helper()
	if os.Getenv(storetest.PostgresEnv) == "" {
		t.Skipf("needs PostgreSQL: %s is not set (make test via .ci/run sets it)", storetest.PostgresEnv)
	}
	dsn := storetest.PostgresDSN(t)
	bin := testsrv.BuildBinary(t)
	rc := newCountingReceiver(t)
	var replicas []*testsrv.Process
	for range n {
		replicas = append(replicas, testsrv.StartBinary(t, bin, replicaFlags(dsn)...))
	}
	replicas[0].CreateWebhook(t, map[string]any{"name": "counter", "url": rc.rc.URL + "/hook",
		"events": []string{"message.received"}, "secret": plainSecret})
	return replicas, rc
}

func TestThreeReplicasDeliverEveryEventExactlyOnce(t *testing.T) {
	replicas, rc := startReplicas(t, 3)
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
	replicas, rc := startReplicas(t, 3)
	var accepted sync.Map
	var count atomic.Int64
	done := make(chan struct{})
	go func() { defer close(done); publishAcross(replicas, 10000, &accepted, &count) }()
	wait.Until(t, "3,000 events are accepted before the kill", func() bool { return count.Load() >= 3000 })
	replicas[1].Kill(t)
	<-done
	if count.Load() < 9000 {
		t.Fatalf("only %d publishes accepted with two replicas left", count.Load())
	}
	seen := rc.waitAll(t, &accepted, 2*time.Minute)
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	// Only attempts the killed replica had in flight (at most its --workers) may be repeated.
	if dups > 32 {
		t.Fatalf("%d duplicate deliveries, more than the killed replica's 32 in-flight slots", dups)
	}
	t.Logf("accepted %d, delivered %d distinct, %d duplicates after the kill", count.Load(), len(seen), dups)
}
