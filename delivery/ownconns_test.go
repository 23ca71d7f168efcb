package delivery

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// A request that reaches this server over a connection the sender opened to its own
// inspector is known as its own delivery, while that connection is open; a request to the
// same server from another client, or to another URL, is not.
func TestOwnDeliveriesAreKnownByTheirConnection(t *testing.T) {
	var mu sync.Mutex
	own := map[string]bool{}
	var s *Sender
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		own[r.URL.Path] = s.OwnDelivery(r.RemoteAddr)
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	s = NewSender(SenderConfig{Timeout: 5 * time.Second, AllowPrivate: true, Version: "test", PublicURL: srv.URL})
	t.Cleanup(s.CloseIdleConnections)

	for _, path := range []string{"/inspect/bin1", "/other", "/inspect/bin1"} {
		if resp := s.Send(context.Background(), h1Request(srv.URL+path)); !resp.OK() {
			t.Fatalf("send to %s: %d %v", path, resp.Status, resp.Err)
		}
	}
	res, err := http.Post(srv.URL+"/inspect/bin2", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	mu.Lock()
	got := map[string]bool{"/inspect/bin1": own["/inspect/bin1"], "/other": own["/other"], "/inspect/bin2": own["/inspect/bin2"]}
	mu.Unlock()
	if want := map[string]bool{"/inspect/bin1": true, "/other": false, "/inspect/bin2": false}; got["/inspect/bin1"] != want["/inspect/bin1"] ||
		got["/other"] != want["/other"] || got["/inspect/bin2"] != want["/inspect/bin2"] {
		t.Errorf("own delivery by path: %v, want %v", got, want)
	}
	if n := s.ConnStats().Reused; n < 1 {
		t.Errorf("reused %d connections: the own connection should stay alive between deliveries", n)
	}

	s.CloseIdleConnections()
	s.ownConns.mu.Lock()
	left := len(s.ownConns.addrs)
	s.ownConns.mu.Unlock()
	if left != 0 {
		t.Errorf("%d own connections still known after they were closed", left)
	}
}
