package testsrv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/api"
)

// Client calls a Hookrelay API as the admin.
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
}

// NewClient returns a client with its own connection pool, closed by the server's cleanup.
func NewClient(baseURL, token string) *Client {
	return &Client{BaseURL: baseURL, Token: token, HTTP: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, Proxy: nil},
	}}
}

// Request sends one API request; body is JSON-encoded unless it is []byte or string. It
// does not fail the test, so goroutines may call it.
func (c *Client) Request(ctx context.Context, method, path string, body any, header http.Header) (int, []byte, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	case string:
		r = bytes.NewReader([]byte(b))
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return 0, nil, fmt.Errorf("encode body: %w", err)
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, r)
	if err != nil {
		return 0, nil, fmt.Errorf("build request: %w", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	return resp.StatusCode, out, nil
}

// Do sends a request and fails the test unless the status is want; it decodes the answer
// into out when out is not nil.
func (c *Client) Do(t testing.TB, method, path string, body any, want int, out any) []byte {
	t.Helper()
	status, raw, err := c.Request(context.Background(), method, path, body, nil)
	if err != nil {
		t.Fatal(err)
	}
	if status != want {
		t.Fatalf("%s %s: status %d, want %d; body %s", method, path, status, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return raw
}

// CreateWebhook creates a webhook through the API (201 expected) and returns it with its
// secret.
func (c *Client) CreateWebhook(t testing.TB, in map[string]any) api.Webhook {
	t.Helper()
	var w api.Webhook
	c.Do(t, http.MethodPost, "/api/v1/webhooks", in, http.StatusCreated, &w)
	return w
}

// UpdateWebhook patches a webhook (200 expected).
func (c *Client) UpdateWebhook(t testing.TB, id string, in map[string]any) api.Webhook {
	t.Helper()
	var w api.Webhook
	c.Do(t, http.MethodPatch, "/api/v1/webhooks/"+id, in, http.StatusOK, &w)
	return w
}

// GetWebhook reads a webhook.
func (c *Client) GetWebhook(t testing.TB, id string) api.Webhook {
	t.Helper()
	var w api.Webhook
	c.Do(t, http.MethodGet, "/api/v1/webhooks/"+id, nil, http.StatusOK, &w)
	return w
}

// Publish publishes an event (202 expected) and returns the answer.
func (c *Client) Publish(t testing.TB, event string, data any, timestamp string) api.PublishedEvent {
	t.Helper()
	in := map[string]any{"event": event, "data": data}
	if timestamp != "" {
		in["timestamp"] = timestamp
	}
	var p api.PublishedEvent
	c.Do(t, http.MethodPost, "/api/v1/events", in, http.StatusAccepted, &p)
	return p
}

// TryPublish publishes without failing the test: for goroutines and for servers that may
// be killed mid-request. id is set only on 202.
func (c *Client) TryPublish(ctx context.Context, event string, data any) (id string, status int, err error) {
	status, raw, err := c.Request(ctx, http.MethodPost, "/api/v1/events", map[string]any{"event": event, "data": data}, nil)
	if err != nil || status != http.StatusAccepted {
		return "", status, err
	}
	var p api.PublishedEvent
	if err := json.Unmarshal(raw, &p); err != nil {
		return "", status, fmt.Errorf("decode publish answer %s: %w", raw, err)
	}
	return p.ID, status, nil
}

// Event reads an event with its deliveries.
func (c *Client) Event(t testing.TB, id string) api.Event {
	t.Helper()
	var e api.Event
	c.Do(t, http.MethodGet, "/api/v1/events/"+url.PathEscape(id), nil, http.StatusOK, &e)
	return e
}

// Delivery reads a delivery with its attempts.
func (c *Client) Delivery(t testing.TB, id string) api.Delivery {
	t.Helper()
	var d api.Delivery
	c.Do(t, http.MethodGet, "/api/v1/deliveries/"+url.PathEscape(id), nil, http.StatusOK, &d)
	return d
}

// EventDelivery returns the single delivery of an event (the event must have exactly one).
func (c *Client) EventDelivery(t testing.TB, eventID string) api.Delivery {
	t.Helper()
	e := c.Event(t, eventID)
	if len(e.Deliveries) != 1 {
		t.Fatalf("event %s has %d deliveries, want 1", eventID, len(e.Deliveries))
	}
	return c.Delivery(t, e.Deliveries[0].ID)
}

// WaitDelivery polls a delivery (with its attempts) until done reports true, and fails the
// test after timeout, showing the last state.
func (c *Client) WaitDelivery(t testing.TB, id string, timeout time.Duration, done func(api.Delivery) bool) api.Delivery {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d := c.Delivery(t, id)
		if done(d) {
			return d
		}
		if time.Now().After(deadline) {
			raw, _ := json.MarshalIndent(d, "", "  ")
			t.Fatalf("delivery %s did not reach the expected state within %s; last state:\n%s", id, timeout, raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Finished reports whether a delivery left the pending state.
func Finished(d api.Delivery) bool { return d.Status != "pending" }
