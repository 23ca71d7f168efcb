package inspector_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/internal/testsrv"
)

// Two replicas of the real binary on one PostgreSQL database: a request captured by replica A
// reaches a browser whose WebSocket is connected to replica B.
func TestCaptureOnOneReplicaReachesWebSocketOnAnother(t *testing.T) {
	if os.Getenv(storetest.PostgresEnv) == "" {
		t.Skipf("needs PostgreSQL: %s is not set (make test via .ci/run sets it)", storetest.PostgresEnv)
	}
	dsn := storetest.PostgresDSN(t)
	bin := testsrv.BuildBinary(t)
	a := testsrv.StartBinary(t, bin, "--db", dsn, "--inspector-rate", "0")
	b := testsrv.StartBinary(t, bin, "--db", dsn, "--inspector-rate", "0")

	var created struct {
		ID string `json:"id"`
	}
	a.Do(t, http.MethodPost, "/api/v1/inspector/bins", map[string]any{"name": "cross-replica"}, http.StatusCreated, &created)

	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.Dial("ws://"+b.Addr+"/api/v1/inspector/bins/"+created.ID+"/ws",
		http.Header{"Authorization": {"Bearer " + testsrv.AdminToken}})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		t.Fatalf("dial replica B: %v", err)
	}
	defer conn.Close()
	got := make(chan map[string]any, 16)
	go func() {
		for {
			var msg struct {
				Type string         `json:"type"`
				Data map[string]any `json:"data"`
			}
			if err := conn.ReadJSON(&msg); err != nil {
				close(got)
				return
			}
			got <- msg.Data
		}
	}()

	// B registers the socket just after the handshake; send until one capture comes through.
	body := []byte(`{"hello":"from replica A","n":1}`)
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := http.Post("http://"+a.Addr+"/inspect/"+created.ID+"/via-a?x=1", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("replica A answered %d", resp.StatusCode)
		}
		select {
		case c, ok := <-got:
			if !ok {
				t.Fatal("replica B closed the socket")
			}
			if c["body_preview"] != string(body) || !strings.HasSuffix(c["path"].(string), "/via-a") || c["bin_id"] != created.ID {
				raw, _ := json.Marshal(c)
				t.Fatalf("capture on B does not match the request sent to A: %s", raw)
			}
			burstReachesOtherReplica(t, a.Addr, created.ID, got)
			return
		case <-tick.C:
		case <-deadline:
			t.Fatal("no capture reached the WebSocket on replica B within 30s")
		}
	}
}

// burstReachesOtherReplica posts 200 captures to replica A from 16 senders at once (A
// announces those that queue meanwhile together) and expects each of them on B's socket.
func burstReachesOtherReplica(t *testing.T, addrA, binID string, got <-chan map[string]any) {
	t.Helper()
	const n, senders = 200, 16
	errs := make(chan error, senders)
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := s; i < n; i += senders {
				resp, err := http.Post(fmt.Sprintf("http://%s/inspect/%s/burst-%d", addrA, binID, i), "application/json",
					strings.NewReader(`{"n":`+strconv.Itoa(i)+`}`))
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("replica A answered %d", resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	deadline := time.After(30 * time.Second)
	for len(seen) < n {
		select {
		case c, ok := <-got:
			if !ok {
				t.Fatal("replica B closed the socket")
			}
			if p, _ := c["path"].(string); strings.Contains(p, "/burst-") {
				seen[p[strings.LastIndex(p, "/"):]] = true
			}
		case <-deadline:
			t.Fatalf("%d of %d captures posted to A reached B's socket within 30s", len(seen), n)
		}
	}
}
