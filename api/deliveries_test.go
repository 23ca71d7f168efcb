package api_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/hookrelay/hookrelay/internal/wait"
)

// waitStatus waits until a delivery reaches status after at least attempts attempts.
func waitStatus(t *testing.T, e *env, id, status string, attempts int) deliveryView {
	t.Helper()
	var d deliveryView
	wait.Until(t, "delivery "+id+" "+status, func() bool {
		d = e.delivery(id)
		return d.Status == status && d.AttemptCount >= attempts && len(d.Attempts) >= attempts
	})
	return d
}

func TestRetryRedeliversSameMessageAndBody(t *testing.T) {
	e := newEnv(t, withLocalTargets()) // no retry schedule: one failure fails the delivery
	rc := newReceiver(t)
	rc.setRespond(func(n int) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	hook := e.hookTo(rc.URL, `,"secret":"s3cret"`)
	e.publish()
	var ds []deliveryView
	wait.Until(t, "a delivery", func() bool { ds = e.deliveriesOf(hook.ID); return len(ds) == 1 })
	failed := waitStatus(t, e, ds[0].ID, "failed", 1)
	if failed.Attempts[0].Outcome != "failed" || *failed.Attempts[0].ResponseStatus != 500 {
		t.Fatalf("first attempt %+v", failed.Attempts[0])
	}

	r := e.post("/api/v1/deliveries/"+failed.ID+"/retry", "")
	checkCase(t, apiCase{status: http.StatusAccepted, fields: map[string]any{"id": failed.ID, "status": "pending"}}, r)
	done := waitStatus(t, e, failed.ID, "succeeded", 2)
	if done.Attempts[1].Number != 2 || done.Attempts[1].Outcome != "succeeded" {
		t.Errorf("attempts %+v", done.Attempts)
	}

	got := rc.requests()
	if len(got) != 2 {
		t.Fatalf("receiver got %d requests", len(got))
	}
	if a, b := got[0].header.Get("X-Webhook-Id"), got[1].header.Get("X-Webhook-Id"); a == "" || a != b {
		t.Errorf("X-Webhook-Id %q then %q", a, b)
	}
	if !bytes.Equal(got[0].body, got[1].body) {
		t.Errorf("bodies differ:\n%s\n%s", got[0].body, got[1].body)
	}
	if got[0].header.Get("X-Webhook-Attempt") != "1" || got[1].header.Get("X-Webhook-Attempt") != "2" {
		t.Errorf("attempt numbers %q, %q", got[0].header.Get("X-Webhook-Attempt"), got[1].header.Get("X-Webhook-Attempt"))
	}
	if got[1].header.Get("X-Webhook-Test") != "" {
		t.Error("a redelivery is marked as a test")
	}

	// A succeeded delivery may be sent again too (the receiver lost it, say).
	checkCase(t, apiCase{status: http.StatusAccepted}, e.post("/api/v1/deliveries/"+failed.ID+"/retry", ""))
	waitStatus(t, e, failed.ID, "succeeded", 3)

	// Not while the webhook is disabled: it would be cancelled at once.
	e.do(req{method: "PATCH", path: "/api/v1/webhooks/" + hook.ID, body: `{"enabled":false}`})
	checkCase(t, apiCase{status: http.StatusConflict, contains: []string{"disabled"}}, e.post("/api/v1/deliveries/"+failed.ID+"/retry", ""))
	if n := len(rc.requests()); n != 3 {
		t.Errorf("receiver got %d requests, want 3", n)
	}
}

func TestListDeliveriesFilters(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	a := e.createWebhook(hookWith("events", `["conversation.started","message.received"]`))
	b := e.createWebhook(hookWith("events", `["message.received"]`))
	e.post("/api/v1/events", eventWith(`"conversation.started"`, conversationData))
	e.post("/api/v1/events", eventWith(`"message.received"`, messageData))
	e.do(req{method: "PATCH", path: "/api/v1/webhooks/" + b.ID, body: `{"enabled":false}`}) // cancels b's delivery
	for _, c := range []struct {
		query string
		n     int
	}{
		{"", 3},
		{"?webhook_id=" + a.ID, 2},
		{"?webhook_id=" + b.ID, 1},
		{"?webhook_id=wh_unknown", 0},
		{"?event=message.received", 2},
		{"?status=pending", 2},
		{"?status=cancelled", 1},
		{"?status=cancelled&webhook_id=" + a.ID, 0},
		{"?event=conversation.started&webhook_id=" + a.ID, 1},
	} {
		t.Run("filter "+c.query, func(t *testing.T) {
			l := mustJSON[list[deliveryView]](t, e.get("/api/v1/deliveries"+c.query), http.StatusOK)
			if len(l.Data) != c.n {
				t.Errorf("%q: %d deliveries, want %d", c.query, len(l.Data), c.n)
			}
		})
	}
	// Retrying a pending delivery that nobody holds just makes it due now.
	ds := e.deliveriesOf(a.ID)
	checkCase(t, apiCase{status: http.StatusAccepted, fields: map[string]any{"status": "pending"}},
		e.post("/api/v1/deliveries/"+ds[0].ID+"/retry", ""))
}
