package changes_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hookrelay/hookrelay/api"
	"github.com/hookrelay/hookrelay/changes"
	"github.com/hookrelay/hookrelay/inspector"
	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/internal/testsrv"
	"github.com/hookrelay/hookrelay/internal/wait"
)

// stream is one client of GET /api/v1/changes: every message it reads, kept in order.
type stream struct {
	conn   *websocket.Conn
	mu     sync.Mutex
	msgs   []changes.Message
	closed error // why reading ended
	done   chan struct{}
}

// dial opens the change stream of the server at base with a bearer token, as a script would.
func dial(t *testing.T, base, token string) *stream {
	t.Helper()
	return dialWith(t, base, http.Header{"Authorization": {"Bearer " + token}})
}

func dialWith(t *testing.T, base string, h http.Header) *stream {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.Dial("ws"+strings.TrimPrefix(base, "http")+"/api/v1/changes", h)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		t.Fatalf("dial the change stream: %v", err)
	}
	s := &stream{conn: conn, done: make(chan struct{})}
	t.Cleanup(func() { conn.Close(); <-s.done })
	go func() {
		defer close(s.done)
		for {
			var m changes.Message
			if err := conn.ReadJSON(&m); err != nil {
				s.mu.Lock()
				s.closed = err
				s.mu.Unlock()
				return
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, m)
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *stream) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// named reports whether a message since the start said that id of kind k changed (listed,
// or many of that kind).
func (s *stream) named(k changes.Kind, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.msgs {
		var c *changes.Changed
		switch k {
		case changes.Webhooks:
			c = m.Webhooks
		case changes.Events:
			c = m.Events
		case changes.Deliveries:
			c = m.Deliveries
		case changes.APIKeys:
			c = m.APIKeys
		}
		if c != nil && (c.Many || slices.Contains(c.IDs, id)) {
			return true
		}
	}
	return false
}

func (s *stream) waitNamed(t *testing.T, k changes.Kind, id string) {
	t.Helper()
	wait.Until(t, fmt.Sprintf("the change stream names %s %s", k, id), func() bool { return s.named(k, id) })
}

// waitClients waits until the server has n change-stream sockets: it registers one just after
// the handshake, so a test waits before changing anything.
func waitClients(t *testing.T, srv *testsrv.Server, n int) {
	t.Helper()
	wait.Until(t, "the change stream has its sockets", func() bool { return srv.Changes.Hub().Clients(changes.Topic) == n })
}

var sample = map[string]any{"conversation_id": 7, "message_id": 1, "content": "hello"}

// What the admin pages follow: a webhook created, an event published, its delivery recorded
// and the webhook disabled by a 410, a test sent; each is named on the stream.
func TestStreamNamesWhatChanged(t *testing.T) {
	srv := testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true})
	gone := testsrv.NewReceiver(t, testsrv.Status(http.StatusGone))
	s := dial(t, srv.BaseURL, testsrv.AdminToken)
	waitClients(t, srv, 1)

	w := srv.CreateWebhook(t, map[string]any{"name": "gone", "url": gone.URL, "events": []string{"message.received"}})
	s.waitNamed(t, changes.Webhooks, w.ID)

	p := srv.Publish(t, "message.received", sample, "")
	s.waitNamed(t, changes.Events, p.ID)
	d := srv.EventDelivery(t, p.ID)
	s.waitNamed(t, changes.Deliveries, d.ID)
	if got := srv.GetWebhook(t, w.ID); got.Enabled {
		t.Fatal("the 410 did not disable the webhook")
	}

	before := s.count()
	srv.Do(t, http.MethodPost, "/api/v1/webhooks/"+w.ID+"/test", map[string]any{}, http.StatusOK, nil)
	wait.Until(t, "the test is named on the stream", func() bool { return s.count() > before && s.named(changes.Webhooks, w.ID) })

	var key struct {
		ID string `json:"id"`
	}
	srv.Do(t, http.MethodPost, "/api/v1/api-keys", map[string]any{"name": "script"}, http.StatusCreated, &key)
	s.waitNamed(t, changes.APIKeys, key.ID)
}

// At thousands of deliveries a second the stream still sends a few messages a second: one per
// window at most, each naming many instead of thousands of ids.
func TestStreamCoalescesABurst(t *testing.T) {
	srv := testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true, Workers: 64, PerWebhook: 64})
	ok := testsrv.NewReceiver(t, testsrv.Status(http.StatusNoContent))
	srv.CreateWebhook(t, map[string]any{"name": "fast", "url": ok.URL, "events": []string{"message.received"}})
	s := dial(t, srv.BaseURL, testsrv.AdminToken)
	waitClients(t, srv, 1)

	const batches, per = 4, 1000
	start := time.Now()
	var wg sync.WaitGroup
	for b := range batches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			items := make([]map[string]any, per)
			for i := range items {
				items[i] = map[string]any{"event": "message.received",
					"data": map[string]any{"conversation_id": b*per + i + 1, "message_id": i + 1, "content": "burst"}}
			}
			status, raw, err := srv.Request(context.Background(), http.MethodPost, "/api/v1/events/batch", map[string]any{"events": items}, nil)
			if err != nil || status != http.StatusAccepted {
				t.Errorf("batch publish: %d %s %v", status, raw, err)
			}
		}()
	}
	wg.Wait()
	total := batches * per
	wait.Until(t, "every delivery is received", func() bool { return len(ok.Captures()) >= total })
	// The last outcomes are announced within a window of being recorded.
	wait.Until(t, "the stream says many deliveries changed", func() bool { return s.named(changes.Deliveries, "") })
	elapsed := time.Since(start) + time.Second
	most := int(elapsed/changes.DefaultWindow) + 2
	if n := s.count(); n > most {
		t.Fatalf("%d messages for %d events in %s: more than one per %s window (%d)", n, total, elapsed, changes.DefaultWindow, most)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.msgs {
		for _, c := range []*changes.Changed{m.Webhooks, m.Events, m.Deliveries, m.APIKeys} {
			if c != nil && len(c.IDs) > changes.MaxIDs {
				t.Fatalf("a message lists %d ids of one kind, more than %d", len(c.IDs), changes.MaxIDs)
			}
		}
	}
	t.Logf("%d events, %d messages in %s", total, len(s.msgs), elapsed)
}

// A socket lives no longer than its credential: revoking the API key it was opened with
// closes it with a policy-violation close frame.
func TestRevokedKeyClosesTheStream(t *testing.T) {
	srv := testsrv.Start(t, testsrv.Options{})
	var key struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	srv.Do(t, http.MethodPost, "/api/v1/api-keys", map[string]any{"name": "browser"}, http.StatusCreated, &key)
	s := dial(t, srv.BaseURL, key.Token)
	waitClients(t, srv, 1)
	srv.Do(t, http.MethodDelete, "/api/v1/api-keys/"+key.ID, nil, http.StatusNoContent, nil)
	s.waitClosedFor(t, "its revoked key")
	// And the key no longer opens one.
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	_, resp, err := d.Dial("ws"+strings.TrimPrefix(srv.BaseURL, "http")+"/api/v1/changes", http.Header{"Authorization": {"Bearer " + key.Token}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("dial with a revoked key: %v, %v", resp, err)
	}
	resp.Body.Close()
}

// waitClosedFor waits until the server closed the socket for an ended credential (1008).
func (s *stream) waitClosedFor(t *testing.T, what string) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the socket outlived %s", what)
	}
	var ce *websocket.CloseError
	if !errors.As(s.closed, &ce) || ce.Code != websocket.ClosePolicyViolation {
		t.Fatalf("closed with %v, want close 1008", s.closed)
	}
}

// A browser's socket ends when its session does: logging out closes it.
func TestLogoutClosesTheStream(t *testing.T) {
	srv := testsrv.Start(t, testsrv.Options{})
	resp, err := http.Post(srv.BaseURL+"/api/v1/session", "application/json", strings.NewReader(`{"token":"`+testsrv.AdminToken+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == api.SessionCookie {
			cookie = c
		}
	}
	if resp.StatusCode/100 != 2 || cookie == nil {
		t.Fatalf("sign in: %d, no session cookie", resp.StatusCode)
	}
	s := dialWith(t, srv.BaseURL, http.Header{"Cookie": {cookie.String()}, "Origin": {srv.BaseURL}})
	waitClients(t, srv, 1)
	req, _ := http.NewRequest(http.MethodDelete, srv.BaseURL+"/api/v1/session", nil)
	req.AddCookie(cookie)
	req.Header.Set("X-Requested-With", "fetch")
	out, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out.Body.Close()
	if out.StatusCode != http.StatusNoContent {
		t.Fatalf("log out: %d", out.StatusCode)
	}
	s.waitClosedFor(t, "its session")
}

// A browser that cannot take the stream's messages is dropped (here every message is over its
// queue's bound) and the engine never waits for it: every delivery of a burst is made.
func TestSlowBrowserIsDroppedNotWaitedFor(t *testing.T) {
	srv := testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true, Hub: inspector.HubConfig{QueueBytes: 16}})
	ok := testsrv.NewReceiver(t, testsrv.Status(http.StatusNoContent))
	srv.CreateWebhook(t, map[string]any{"name": "fast", "url": ok.URL, "events": []string{"message.received"}})
	s := dial(t, srv.BaseURL, testsrv.AdminToken)
	waitClients(t, srv, 1)
	const n = 500
	items := make([]map[string]any, n)
	for i := range items {
		items[i] = map[string]any{"event": "message.received", "data": map[string]any{"conversation_id": i + 1, "message_id": 1, "content": "x"}}
	}
	srv.Do(t, http.MethodPost, "/api/v1/events/batch", map[string]any{"events": items}, http.StatusAccepted, nil)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the socket that could not keep up was not dropped")
	}
	if s.count() != 0 {
		t.Fatalf("the dropped socket got %d messages", s.count())
	}
	wait.Until(t, "every delivery is made", func() bool { return len(ok.Captures()) >= n })
	// It comes back by reconnecting (and refetching everything).
	dial(t, srv.BaseURL, testsrv.AdminToken)
	waitClients(t, srv, 1)
}

// Two app instances on one PostgreSQL database: what is published on A and delivered by
// either is named on a socket connected to B.
func TestChangesCrossReplicas(t *testing.T) {
	if os.Getenv(storetest.PostgresEnv) == "" {
		t.Skipf("needs PostgreSQL: %s is not set (make test via .ci/run sets it)", storetest.PostgresEnv)
	}
	dsn := storetest.PostgresDSN(t)
	a := testsrv.Start(t, testsrv.Options{DBPath: dsn, AllowHTTP: true, AllowPrivate: true})
	b := testsrv.Start(t, testsrv.Options{DBPath: dsn, AllowHTTP: true, AllowPrivate: true})
	s := dial(t, b.BaseURL, testsrv.AdminToken)
	waitClients(t, b, 1)

	gone := testsrv.NewReceiver(t, testsrv.Status(http.StatusGone))
	w := a.CreateWebhook(t, map[string]any{"name": "on A", "url": gone.URL, "events": []string{"message.received"}})
	s.waitNamed(t, changes.Webhooks, w.ID)
	p := a.Publish(t, "message.received", sample, "")
	s.waitNamed(t, changes.Events, p.ID)
	d := a.EventDelivery(t, p.ID)
	a.WaitDelivery(t, d.ID, 20*time.Second, testsrv.Finished)
	s.waitNamed(t, changes.Deliveries, d.ID)
}
