package delivery_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/api"
	"github.com/hookrelay/hookrelay/internal/testsrv"
	"github.com/hookrelay/hookrelay/store"
)

var conversation = map[string]any{"conversation_id": 123, "visitor_name": "John Doe"}

// startWithHook starts a server (private targets and http allowed: receivers are on
// loopback) with one webhook on url listening to conversation.started.
func startWithHook(t *testing.T, o testsrv.Options, url string) (*testsrv.Server, api.Webhook) {
	t.Helper()
	o.AllowHTTP, o.AllowPrivate = true, true
	s := testsrv.Start(t, o)
	wh := s.CreateWebhook(t, map[string]any{"name": "receiver", "url": url, "events": []string{"conversation.started"},
		"secret": plainSecret})
	return s, wh
}

// publishOne publishes a conversation.started and returns its single delivery's id.
func publishOne(t *testing.T, s *testsrv.Server) (eventID, deliveryID string) {
	t.Helper()
	p := s.Publish(t, "conversation.started", conversation, "")
	if p.Deliveries != 1 {
		t.Fatalf("publish fanned out to %d deliveries, want 1", p.Deliveries)
	}
	return p.ID, s.EventDelivery(t, p.ID).ID
}

func attemptErrors(d api.Delivery) []string {
	var out []string
	for _, a := range d.Attempts {
		if a.Error != nil {
			out = append(out, *a.Error)
		} else {
			out = append(out, "")
		}
	}
	return out
}

func TestRetryKeepsMessageIDAndBodyAndCountsAttempts(t *testing.T) {
	rc := testsrv.NewReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte("try again"))
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	s, _ := startWithHook(t, testsrv.Options{}, rc.URL)
	eventID, id := publishOne(t, s)

	d := s.WaitDelivery(t, id, 15*time.Second, testsrv.Finished)
	if d.Status != "succeeded" || d.AttemptCount != 3 || len(d.Attempts) != 3 {
		t.Fatalf("delivery = %s with %d attempts (%d logged), want succeeded after 3", d.Status, d.AttemptCount, len(d.Attempts))
	}
	for i, a := range d.Attempts {
		wantStatus, wantOutcome := 500, "failed"
		if i == 2 {
			wantStatus, wantOutcome = 200, "succeeded"
		}
		if a.Number != i+1 || a.Outcome != wantOutcome || a.ResponseStatus == nil || *a.ResponseStatus != wantStatus {
			t.Errorf("attempt %d = number %d, outcome %s, status %v; want number %d, %s, %d",
				i, a.Number, a.Outcome, a.ResponseStatus, i+1, wantOutcome, wantStatus)
		}
		if a.RequestHeaders["X-Webhook-Attempt"] != strconv.Itoa(i+1) {
			t.Errorf("attempt %d logged X-Webhook-Attempt %q", i+1, a.RequestHeaders["X-Webhook-Attempt"])
		}
	}
	if d.Attempts[0].ResponseBody != "try again" {
		t.Errorf("first attempt's response excerpt = %q, want %q", d.Attempts[0].ResponseBody, "try again")
	}

	caps := rc.Captures()
	if len(caps) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(caps))
	}
	for i, c := range caps {
		if got := c.Header.Get("X-Webhook-Id"); got != eventID {
			t.Errorf("request %d X-Webhook-Id = %q, want %q on every retry", i+1, got, eventID)
		}
		if got := c.Header.Get("Webhook-Id"); got != eventID {
			t.Errorf("request %d webhook-id = %q, want %q", i+1, got, eventID)
		}
		if got := c.Header.Get("X-Webhook-Attempt"); got != strconv.Itoa(i+1) {
			t.Errorf("request %d X-Webhook-Attempt = %q, want %d", i+1, got, i+1)
		}
		if !bytes.Equal(c.Body, caps[0].Body) {
			t.Errorf("request %d body differs from the first:\n%s\n%s", i+1, c.Body, caps[0].Body)
		}
		checkHeaders(t, c, plainSecret, "conversation.started", eventID, i+1, false)
	}
}

func TestRetriesThatRunOutLeaveTheDeliveryFailed(t *testing.T) {
	rc := testsrv.NewReceiver(t, testsrv.Status(http.StatusBadGateway))
	s, wh := startWithHook(t, testsrv.Options{}, rc.URL)
	_, id := publishOne(t, s)

	d := s.WaitDelivery(t, id, 15*time.Second, testsrv.Finished)
	if d.Status != "failed" || d.AttemptCount != 3 || len(d.Attempts) != 3 || d.NextAttemptAt != nil {
		t.Fatalf("delivery = %s, %d attempts, next %v; want failed after 3 with nothing scheduled", d.Status, d.AttemptCount, d.NextAttemptAt)
	}
	if d.LastStatusCode == nil || *d.LastStatusCode != 502 || d.LastError == nil || *d.LastError != "HTTP 502" {
		t.Errorf("last status %v, error %v; want 502 and \"HTTP 502\"", d.LastStatusCode, d.LastError)
	}
	if got := len(rc.Captures()); got != 3 {
		t.Errorf("receiver got %d requests, want 3", got)
	}
	if w := s.GetWebhook(t, wh.ID); !w.Enabled {
		t.Errorf("exhausted retries disabled the webhook (%v); only 410 and the auto-disable job may", w.DisabledReason)
	}
}

func TestAttemptThatOutlivesTheTimeoutFailsAsTimeout(t *testing.T) {
	rc := testsrv.NewReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		select { // hang until the sender gives up (or the test ends)
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	})
	s, _ := startWithHook(t, testsrv.Options{Timeout: 300 * time.Millisecond, RetrySchedule: []time.Duration{}}, rc.URL)
	_, id := publishOne(t, s)

	d := s.WaitDelivery(t, id, 15*time.Second, testsrv.Finished)
	if d.Status != "failed" || len(d.Attempts) != 1 {
		t.Fatalf("delivery = %s with %d attempts, want failed after 1", d.Status, len(d.Attempts))
	}
	a := d.Attempts[0]
	if a.Error == nil || !strings.Contains(*a.Error, "timeout") || a.ResponseStatus != nil {
		t.Errorf("attempt error %v, status %v; want a timeout and no status", a.Error, a.ResponseStatus)
	}
}

func TestRetryAfterOn429SchedulesTheNextAttempt(t *testing.T) {
	rc := testsrv.NewReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	s, _ := startWithHook(t, testsrv.Options{}, rc.URL)
	_, id := publishOne(t, s)

	sent := time.Now()
	d := s.WaitDelivery(t, id, 15*time.Second, func(d api.Delivery) bool { return d.AttemptCount >= 1 })
	if d.Status != "pending" || d.NextAttemptAt == nil {
		t.Fatalf("delivery = %s, next %v; want pending with a next attempt", d.Status, d.NextAttemptAt)
	}
	// The schedule says 50 ms; Retry-After says two minutes, and wins.
	if wait := d.NextAttemptAt.Sub(sent); wait < 100*time.Second || wait > 125*time.Second {
		t.Errorf("next attempt in %s, want about 120s (Retry-After) rather than the 50ms schedule", wait)
	}
	if d.LastStatusCode == nil || *d.LastStatusCode != 429 {
		t.Errorf("last status = %v, want 429", d.LastStatusCode)
	}
}

func TestRedirectIsNotFollowedAndItsLocationIsRecorded(t *testing.T) {
	rc := testsrv.NewReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			w.WriteHeader(http.StatusOK) // reaching this would mean the redirect was followed
			return
		}
		http.Redirect(w, r, "/moved", http.StatusFound)
	})
	s, _ := startWithHook(t, testsrv.Options{}, rc.URL+"/hook")
	_, id := publishOne(t, s)

	d := s.WaitDelivery(t, id, 15*time.Second, testsrv.Finished)
	if d.Status != "failed" || len(d.Attempts) != 3 {
		t.Fatalf("delivery = %s with %d attempts, want failed after 3 (a 3xx is a failure)", d.Status, len(d.Attempts))
	}
	for _, a := range d.Attempts {
		if a.ResponseStatus == nil || *a.ResponseStatus != 302 || a.Error == nil || !strings.Contains(*a.Error, `"/moved"`) {
			t.Errorf("attempt %d: status %v, error %v; want 302 with the Location /moved", a.Number, a.ResponseStatus, a.Error)
		}
		if a.ResponseHeaders["Location"] != "/moved" {
			t.Errorf("attempt %d response headers %v lack Location", a.Number, a.ResponseHeaders)
		}
	}
	for _, c := range rc.Captures() {
		if c.Path != "/hook" {
			t.Errorf("receiver got %s %s: the redirect was followed", c.Method, c.Path)
		}
	}
}

func TestGoneEndsTheDeliveryAndDisablesTheWebhook(t *testing.T) {
	rc := testsrv.NewReceiver(t, testsrv.Status(http.StatusGone))
	s, wh := startWithHook(t, testsrv.Options{}, rc.URL)
	_, id := publishOne(t, s)

	d := s.WaitDelivery(t, id, 15*time.Second, testsrv.Finished)
	if d.Status != "failed" || len(d.Attempts) != 1 {
		t.Fatalf("delivery = %s with %d attempts, want failed after the single 410", d.Status, len(d.Attempts))
	}
	w := s.GetWebhook(t, wh.ID)
	if w.Enabled || w.DisabledReason == nil || !strings.Contains(*w.DisabledReason, "410") {
		t.Fatalf("webhook enabled=%v reason=%v, want disabled naming 410 Gone", w.Enabled, w.DisabledReason)
	}
	// Disabled means no new deliveries either.
	if p := s.Publish(t, "conversation.started", conversation, ""); p.Deliveries != 0 {
		t.Errorf("an event after the 410 got %d deliveries, want 0", p.Deliveries)
	}
}

func TestDeadPortFailsAsConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/hook"
	ln.Close()
	s, _ := startWithHook(t, testsrv.Options{RetrySchedule: []time.Duration{}}, dead)
	_, id := publishOne(t, s)

	d := s.WaitDelivery(t, id, 15*time.Second, testsrv.Finished)
	if d.Status != "failed" || len(d.Attempts) != 1 {
		t.Fatalf("delivery = %s with %d attempts, want failed after 1", d.Status, len(d.Attempts))
	}
	if errs := attemptErrors(d); errs[0] != "connection refused" {
		t.Errorf("attempt error = %q, want \"connection refused\"", errs[0])
	}
}

func TestDisablingTheWebhookMidRetryCancelsTheDelivery(t *testing.T) {
	// Attempt 1 is held in flight while the admin disables the webhook.
	respond, arrived, release := testsrv.HoldFirst(http.StatusInternalServerError)
	rc := testsrv.NewReceiver(t, respond)
	s, wh := startWithHook(t, testsrv.Options{}, rc.URL)
	_, id := publishOne(t, s)

	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the first attempt never arrived")
	}
	s.UpdateWebhook(t, wh.ID, map[string]any{"enabled": false})
	close(release)

	// The in-flight attempt is still logged, but must not revive the delivery.
	d := s.WaitDelivery(t, id, 15*time.Second, func(d api.Delivery) bool { return len(d.Attempts) == 1 && d.AttemptCount == 1 })
	if d.Status != "cancelled" {
		t.Fatalf("delivery = %s after the webhook was disabled, want cancelled", d.Status)
	}
	// Ten times the 50 ms retry delay: a surviving retry would have been made by now.
	time.Sleep(500 * time.Millisecond)
	if d = s.Delivery(t, id); d.Status != "cancelled" || len(d.Attempts) != 1 {
		t.Errorf("delivery = %s with %d attempts, want still cancelled with 1", d.Status, len(d.Attempts))
	}
	if got := len(rc.Captures()); got != 1 {
		t.Errorf("receiver got %d requests after the webhook was disabled mid-retry, want 1", got)
	}

	// Enabling again sends new events, but does not resurrect the cancelled delivery.
	s.UpdateWebhook(t, wh.ID, map[string]any{"enabled": true})
	_, id2 := publishOne(t, s)
	s.WaitDelivery(t, id2, 15*time.Second, testsrv.Finished)
	if d = s.Delivery(t, id); d.Status != "cancelled" {
		t.Errorf("re-enabling the webhook turned the cancelled delivery into %s", d.Status)
	}
}

func TestDisablingTheWebhookBetweenRetriesCancelsThePendingDelivery(t *testing.T) {
	rc := testsrv.NewReceiver(t, testsrv.Status(http.StatusInternalServerError))
	s, wh := startWithHook(t, testsrv.Options{RetrySchedule: []time.Duration{time.Hour}}, rc.URL)
	_, id := publishOne(t, s)

	d := s.WaitDelivery(t, id, 15*time.Second, func(d api.Delivery) bool { return d.AttemptCount == 1 })
	if d.Status != "pending" || d.NextAttemptAt == nil {
		t.Fatalf("delivery = %s, next %v; want pending with a retry in an hour", d.Status, d.NextAttemptAt)
	}
	s.UpdateWebhook(t, wh.ID, map[string]any{"enabled": false})
	if d = s.Delivery(t, id); d.Status != "cancelled" || d.NextAttemptAt != nil {
		t.Errorf("delivery = %s, next %v after disabling; want cancelled with nothing scheduled", d.Status, d.NextAttemptAt)
	}
}

func TestDeletingTheWebhookMidAttemptLeavesNoOrphans(t *testing.T) {
	respond, arrived, release := testsrv.HoldFirst(http.StatusInternalServerError)
	rc := testsrv.NewReceiver(t, respond)
	s, wh := startWithHook(t, testsrv.Options{}, rc.URL)
	publishOne(t, s)
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the first attempt never arrived")
	}
	s.Do(t, http.MethodDelete, "/api/v1/webhooks/"+wh.ID, nil, http.StatusNoContent, nil)
	close(release)

	// Shutdown lets the in-flight attempt finish and records it, so afterwards the database
	// shows all there will ever be.
	s.Stop(t)
	store, err := store.Open(context.Background(), s.DBPath)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, q := range []string{
		`SELECT COUNT(*) FROM deliveries WHERE webhook_id = ?`,
		`SELECT COUNT(*) FROM attempts WHERE webhook_id = ?`,
	} {
		var n int64
		if err := store.ScanSQL(context.Background(), &n, q, wh.ID); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s: %d rows of the deleted webhook remain", q, n)
		}
	}
}

func TestRedeliveryKeepsMessageIDAndBodyWithTheNextAttemptNumber(t *testing.T) {
	var healthy atomic.Bool
	rc := testsrv.NewReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	s, _ := startWithHook(t, testsrv.Options{RetrySchedule: []time.Duration{}}, rc.URL)
	eventID, id := publishOne(t, s)
	if d := s.WaitDelivery(t, id, 15*time.Second, testsrv.Finished); d.Status != "failed" {
		t.Fatalf("delivery = %s, want failed after its single attempt", d.Status)
	}

	healthy.Store(true)
	var queued api.Delivery
	s.Do(t, http.MethodPost, "/api/v1/deliveries/"+id+"/retry", nil, http.StatusAccepted, &queued)
	if queued.Status != "pending" {
		t.Errorf("redelivery answered status %s, want pending", queued.Status)
	}
	d := s.WaitDelivery(t, id, 15*time.Second, testsrv.Finished)
	if d.Status != "succeeded" || d.AttemptCount != 2 || len(d.Attempts) != 2 {
		t.Fatalf("after redelivery: %s with %d attempts, want succeeded with 2", d.Status, len(d.Attempts))
	}
	caps := rc.Captures()
	if len(caps) != 2 {
		t.Fatalf("receiver got %d requests, want 2", len(caps))
	}
	if !bytes.Equal(caps[0].Body, caps[1].Body) {
		t.Errorf("redelivered body differs:\n%s\n%s", caps[0].Body, caps[1].Body)
	}
	checkHeaders(t, caps[1], plainSecret, "conversation.started", eventID, 2, false)
}
