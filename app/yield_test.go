package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/app"
	"github.com/hookrelay/hookrelay/internal/wait"
)

// busyServer is a whole server with a webhook whose receiver hangs until the test ends, and
// a bin; deliver publishes to it and waits until the receiver holds the first attempt, so
// that the dispatcher has a delivery in flight.
type busyServer struct {
	t       *testing.T
	app     *app.App
	base    string
	token   string
	binURL  string
	hangURL string
	reached chan struct{}
	release func() // lets the hanging receiver answer; safe to call twice
}

func startBusyServer(t *testing.T, cfg app.Config) *busyServer {
	t.Helper()
	release := make(chan struct{})
	reached := make(chan struct{}, 1)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case reached <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	cfg.DB, cfg.AdminToken = filepath.Join(t.TempDir(), "h.db"), strings.Repeat("y", 32)
	cfg.AllowHTTP, cfg.AllowPrivate, cfg.DeliveryTimeout = true, true, time.Minute
	a, base := start(t, cfg)
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // before the app's shutdown, which waits for the attempt
	s := &busyServer{t: t, app: a, base: base, token: cfg.AdminToken, hangURL: hang.URL, reached: reached, release: free}
	s.binURL = s.api("POST", "/inspector/bins", map[string]any{"name": "flooded"})["url"].(string)
	return s
}

func (s *busyServer) api(method, path string, body any) map[string]any {
	s.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, s.base+"/api/v1"+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		s.t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, raw)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		s.t.Fatalf("%s %s: %v in %s", method, path, err, raw)
	}
	return out
}

func (s *busyServer) publish(i int) {
	s.api("POST", "/events", map[string]any{"event": "message.received", "data": map[string]any{
		"message_id": i, "content": "hi", "is_from_admin": false, "admin_name": nil, "conversation_id": i,
		"visitor_name": "John Doe", "visitor_email": "john@example.com", "visitor_phone": "+1234567890",
		"visitor_ip": "192.168.1.100", "current_url": "https://example.com", "status": "open",
		"created_at": "2024-01-15T10:30:00Z"}})
}

// deliver subscribes the hanging receiver and publishes, so a delivery stays in flight.
func (s *busyServer) deliver() {
	s.t.Helper()
	s.api("POST", "/webhooks", map[string]any{"name": "hangs", "url": s.hangURL, "events": []string{"message.received"}})
	s.publish(1)
	select {
	case <-s.reached:
	case <-time.After(wait.Timeout):
		s.t.Fatal("the hanging receiver never got its delivery")
	}
}

// capture posts one request to the bin and returns its status and body.
func (s *busyServer) capture(i int) (int, string, error) {
	res, err := http.Post(s.binURL, "application/json", strings.NewReader(fmt.Sprintf(`{"n":%d}`, i)))
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body), nil
}

// While a delivery is in flight, captures from other senders wait their turn: the bins
// together take the busy rate (2 a second here), and a request that would wait over a second
// gets a 429 naming why. This server's own deliveries to its own bin are not held back, and
// with nothing in flight a bin takes whatever arrives.
func TestCapturesYieldToDeliveriesInFlightButNotToThemselves(t *testing.T) {
	s := startBusyServer(t, app.Config{InspectorRate: 0, InspectorBusyRate: 2, InspectorRefusedHold: -1})
	if got := s.api("GET", "/settings", nil)["inspector_busy_rate"]; got != float64(2) {
		t.Errorf("settings: inspector_busy_rate %v, want 2", got)
	}

	// flood posts n captures at once and counts the answers by status; it returns a 429's body.
	flood := func(n int) (map[int]int, string) {
		var mu sync.Mutex
		statuses, refused := map[int]int{}, ""
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				status, body, err := s.capture(i)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				statuses[status]++
				if status == http.StatusTooManyRequests {
					refused = body
				}
			})
		}
		wg.Wait()
		return statuses, refused
	}

	if got, _ := flood(20); got[http.StatusOK] != 20 {
		t.Fatalf("with nothing in flight: %v, want 20 × 200", got)
	}
	s.deliver()
	got, refused := flood(20)
	if got[http.StatusTooManyRequests] == 0 || got[http.StatusOK] >= 20 {
		t.Errorf("with a delivery in flight: %v, want some 429s", got)
	}
	if !strings.Contains(refused, "webhooks are being delivered") || !strings.Contains(refused, "at most 2 requests per second") {
		t.Errorf("the 429's problem: %s", refused)
	}

	// Its own deliveries to the bin, while the first still hangs: none is held back, so each
	// succeeds at its first attempt (a 429 would be retried, seconds later).
	self := s.api("POST", "/webhooks", map[string]any{"name": "self", "url": s.binURL, "events": []string{"message.received"}})
	const own = 12
	for i := range own {
		s.publish(100 + i)
	}
	var last map[string]any
	if !wait.For(func() bool {
		last = s.api("GET", "/deliveries?webhook_id="+self["id"].(string), nil)
		data, _ := last["data"].([]any)
		if len(data) != own {
			return false
		}
		for _, d := range data {
			if d.(map[string]any)["status"] != "succeeded" {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("the own deliveries did not all succeed: %v", last)
	}
	for _, d := range last["data"].([]any) {
		if n := d.(map[string]any)["attempt_count"]; n != float64(1) {
			t.Errorf("own delivery %v took %v attempts, want 1", d.(map[string]any)["id"], n)
		}
	}
}

// A capture refused its turn is held for its Retry-After, as one past the bin's own limit is,
// and a shutdown answers it at once with its 429 rather than after the hold.
func TestACaptureRefusedItsTurnIsHeldAndAnsweredAtShutdown(t *testing.T) {
	// One turn every 10 s: the second capture would wait longer than a second, so it is refused.
	s := startBusyServer(t, app.Config{InspectorRate: 0, InspectorBusyRate: 0.1, InspectorRefusedHold: time.Hour})
	s.deliver()
	if status, body, err := s.capture(1); err != nil || status != http.StatusOK {
		t.Fatalf("the turn's one capture: %d %s %v", status, body, err)
	}
	type answer struct {
		status int
		body   string
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		status, body, err := s.capture(2)
		answered <- answer{status, body, err}
	}()
	wait.Until(t, "the refused capture held", func() bool { return s.app.Inspector.Held() == 1 })
	select {
	case a := <-answered:
		t.Fatalf("answered (%d) while it should be held", a.status)
	default:
	}
	shutdown := make(chan error, 1)
	go func() { shutdown <- s.app.Shutdown(context.Background()) }()
	select {
	case a := <-answered:
		if a.err != nil || a.status != http.StatusTooManyRequests || !strings.Contains(a.body, "webhooks are being delivered") {
			t.Errorf("the held capture at shutdown: %d %s %v, want the 429 naming deliveries", a.status, a.body, a.err)
		}
	case <-time.After(wait.Timeout):
		t.Fatal("the held capture was not answered at shutdown")
	}
	s.release() // the shutdown drains the hanging attempt
	if err := <-shutdown; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}
