package app_test

import (
	"bytes"
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

// While a delivery is in flight, captures from other senders wait their turn: the bins
// together take the busy rate (2 a second here), and a request that would wait over a second
// gets a 429 naming why. This server's own deliveries to its own bin are not held back, and
// with nothing in flight a bin takes whatever arrives.
func TestCapturesYieldToDeliveriesInFlightButNotToThemselves(t *testing.T) {
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

	token := strings.Repeat("y", 32)
	_, base := start(t, app.Config{DB: filepath.Join(t.TempDir(), "h.db"), AdminToken: token, AllowHTTP: true,
		AllowPrivate: true, DeliveryTimeout: time.Minute, InspectorRate: 0, InspectorBusyRate: 2,
		InspectorRefusedHold: -1})
	t.Cleanup(func() { close(release) }) // before the app's shutdown, which waits for the attempt
	api := func(method, path string, body any) map[string]any {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, base+"/api/v1"+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		if res.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, raw)
		}
		var out map[string]any
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
		return out
	}
	if got := api("GET", "/settings", nil)["inspector_busy_rate"]; got != float64(2) {
		t.Errorf("settings: inspector_busy_rate %v, want 2", got)
	}
	bin := api("POST", "/inspector/bins", map[string]any{"name": "flooded"})
	binURL := bin["url"].(string)

	// flood posts n captures at once and counts the answers by status; it returns a 429's body.
	flood := func(n int) (map[int]int, string) {
		var mu sync.Mutex
		statuses, refused := map[int]int{}, ""
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				res, err := http.Post(binURL, "application/json", strings.NewReader(fmt.Sprintf(`{"n":%d}`, i)))
				if err != nil {
					t.Error(err)
					return
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				mu.Lock()
				defer mu.Unlock()
				statuses[res.StatusCode]++
				if res.StatusCode == http.StatusTooManyRequests {
					refused = string(body)
				}
			})
		}
		wg.Wait()
		return statuses, refused
	}

	if got, _ := flood(20); got[http.StatusOK] != 20 {
		t.Fatalf("with nothing in flight: %v, want 20 × 200", got)
	}

	api("POST", "/webhooks", map[string]any{"name": "hangs", "url": hang.URL, "events": []string{"message.received"}})
	publish := func(i int) {
		api("POST", "/events", map[string]any{"event": "message.received", "data": map[string]any{
			"message_id": i, "content": "hi", "is_from_admin": false, "admin_name": nil, "conversation_id": i,
			"visitor_name": "John Doe", "visitor_email": "john@example.com", "visitor_phone": "+1234567890",
			"visitor_ip": "192.168.1.100", "current_url": "https://example.com", "status": "open",
			"created_at": "2024-01-15T10:30:00Z"}})
	}
	publish(1)
	select {
	case <-reached:
	case <-time.After(wait.Timeout):
		t.Fatal("the hanging receiver never got its delivery")
	}

	got, refused := flood(20)
	if got[http.StatusTooManyRequests] == 0 || got[http.StatusOK] >= 20 {
		t.Errorf("with a delivery in flight: %v, want some 429s", got)
	}
	if !strings.Contains(refused, "webhooks are being delivered") || !strings.Contains(refused, "at most 2 requests per second") {
		t.Errorf("the 429's problem: %s", refused)
	}

	// Its own deliveries to the bin, while the first still hangs: none is held back, so each
	// succeeds at its first attempt (a 429 would be retried, seconds later).
	self := api("POST", "/webhooks", map[string]any{"name": "self", "url": binURL, "events": []string{"message.received"}})
	const own = 12
	for i := range own {
		publish(100 + i)
	}
	var last map[string]any
	if !wait.For(func() bool {
		last = api("GET", "/deliveries?webhook_id="+self["id"].(string), nil)
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
