package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/wait"
)

// sentView is an attempt with what it sent and got back.
type sentView struct {
	Format         string            `json:"format"`
	RequestBody    *string           `json:"request_body"`
	RequestHeaders map[string]string `json:"request_headers"`
	ResponseStatus *int              `json:"response_status"`
	ResponseBody   string            `json:"response_body"`
	Outcome        string            `json:"outcome"`
}

// Each attempt shows the exact body sent, in the format the webhook had then (a later change
// of format does not rewrite it), with the headers sent, signature included and no secret.
func TestAttemptShowsTheBodyAndHeadersSent(t *testing.T) {
	e := newEnv(t, withLocalTargets())
	rc := newReceiver(t)
	hook := e.hookTo(rc.URL, `,"secret":"s3cret-value","format":"slack"`)
	content := `Say \"hi\" <@U1> & go\nnow`
	r := e.post("/api/v1/events", eventWith(`"message.received"`, `{"message_id":1,"conversation_id":7,"content":"`+content+`"}`))
	mustJSON[struct{ ID string }](t, r, http.StatusAccepted)
	var ds []deliveryView
	wait.Until(t, "a delivery", func() bool { ds = e.deliveriesOf(hook.ID); return len(ds) == 1 })
	waitStatus(t, e, ds[0].ID, "succeeded", 1)

	read := func() sentView {
		d := mustJSON[struct{ Attempts []sentView }](t, e.get("/api/v1/deliveries/"+ds[0].ID), http.StatusOK)
		if len(d.Attempts) != 1 {
			t.Fatalf("%d attempts", len(d.Attempts))
		}
		return d.Attempts[0]
	}
	got := rc.requests()[0]
	a := read()
	if a.Format != "slack" || a.RequestBody == nil || *a.RequestBody != string(got.body) {
		t.Fatalf("attempt shows format %q body %v;\nthe receiver got %s", a.Format, a.RequestBody, got.body)
	}
	if !strings.HasPrefix(*a.RequestBody, `{"text":"New message in conversation #7`) {
		t.Errorf("not the Slack one-liner: %s", *a.RequestBody)
	}
	if sig := got.header.Get("X-Webhook-Signature"); sig == "" || a.RequestHeaders["X-Webhook-Signature"] != sig {
		t.Errorf("signature shown %q, sent %q", a.RequestHeaders["X-Webhook-Signature"], sig)
	}
	raw := e.get("/api/v1/deliveries/" + ds[0].ID)
	if strings.Contains(string(raw.body), "s3cret-value") {
		t.Error("the delivery shows the secret")
	}
	if strings.Contains(string(raw.body), `\u003c`) {
		t.Error("the request body is shown with < escaped")
	}

	e.do(req{method: "PATCH", path: "/api/v1/webhooks/" + hook.ID, body: `{"format":"json"}`})
	if b := read(); b.Format != "slack" || *b.RequestBody != string(got.body) {
		t.Errorf("after the webhook became json, the attempt shows %q %s", b.Format, *b.RequestBody)
	}
}

// A failed test answers the receiver's status and body, and the body it sent.
func TestFailedTestShowsTheReceiversBody(t *testing.T) {
	e := newEnv(t, withLocalTargets())
	rc := newReceiver(t)
	rc.setRespond(func(int) int { return http.StatusInternalServerError })
	hook := e.hookTo(rc.URL, `,"secret":"s3cret"`)
	a := mustJSON[sentView](t, e.post("/api/v1/webhooks/"+hook.ID+"/test", ""), http.StatusOK)
	got := rc.requests()[0]
	if a.Outcome != "failed" || a.ResponseStatus == nil || *a.ResponseStatus != 500 || a.ResponseBody != `{"received":1}` {
		t.Errorf("test answer %+v, want failed, 500 and the receiver's body", a)
	}
	if a.Format != "json" || a.RequestBody == nil || *a.RequestBody != string(got.body) {
		t.Errorf("test answer shows the body %v, the receiver got %s", a.RequestBody, got.body)
	}
	// Tests count apart from deliveries in the webhook's activity.
	w := mustJSON[struct {
		Stats []struct {
			Succeeded, Failed int
			TestsFailed       int `json:"tests_failed"`
		} `json:"stats_24h"`
	}](t, e.get("/api/v1/webhooks/"+hook.ID), http.StatusOK)
	var attempts, tests int
	for _, s := range w.Stats {
		attempts += s.Succeeded + s.Failed
		tests += s.TestsFailed
	}
	if attempts != 0 || tests != 1 {
		t.Errorf("activity: %d delivery attempts and %d failed tests, want 0 and 1", attempts, tests)
	}
	// The failed-deliveries view leaves the test out.
	l := mustJSON[list[deliveryView]](t, e.get("/api/v1/deliveries?status=failed&tests=exclude&webhook_id="+hook.ID), http.StatusOK)
	all := mustJSON[list[deliveryView]](t, e.get("/api/v1/deliveries?status=failed&webhook_id="+hook.ID), http.StatusOK)
	if len(l.Data) != 0 || len(all.Data) != 1 {
		t.Errorf("failed deliveries: %d without tests, %d with; want 0 and 1", len(l.Data), len(all.Data))
	}
	checkProblemNames(t, e.get("/api/v1/deliveries?tests=maybe"), "tests")
}

// The events list counts each event's deliveries by status.
func TestEventListCountsDeliveriesByStatus(t *testing.T) {
	e := newEnv(t, withLocalTargets())
	ok, bad := newReceiver(t), newReceiver(t)
	bad.setRespond(func(int) int { return http.StatusInternalServerError })
	e.hookTo(ok.URL, "")
	e.hookTo(bad.URL, "")
	id := e.publish()
	type counts struct{ Pending, Succeeded, Failed, Cancelled int }
	var c counts
	wait.Until(t, "both deliveries finished", func() bool {
		l := mustJSON[list[struct {
			ID     string
			Counts counts `json:"delivery_counts"`
		}]](t, e.get("/api/v1/events"), http.StatusOK)
		for _, ev := range l.Data {
			if ev.ID == id {
				c = ev.Counts
			}
		}
		return c.Pending == 0 && c.Succeeded+c.Failed == 2
	})
	if c != (counts{Succeeded: 1, Failed: 1}) {
		t.Errorf("counts %+v, want 1 succeeded and 1 failed", c)
	}
	d := mustJSON[struct {
		Counts counts `json:"delivery_counts"`
	}](t, e.get("/api/v1/events/"+id), http.StatusOK)
	if d.Counts != c {
		t.Errorf("the event's page counts %+v, the list %+v", d.Counts, c)
	}
}

// A replay can be previewed (counted, nothing queued); the deliveries it then queues name
// the job.
func TestReplayPreviewQueuesNothingAndReplayedDeliveriesNameTheirJob(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	start := time.Now().Add(-time.Minute)
	for range 2 {
		e.publish()
	}
	hook := e.createWebhook(`{"name":"late","url":"https://example.com/h","events":["conversation.started"]}`)
	p := e.post("/api/v1/webhooks/"+hook.ID+"/replay/preview", replayBody(start, ""))
	checkCase(t, apiCase{status: http.StatusOK, fields: map[string]any{"events": 2, "only_failed": false}}, p)
	if n := len(e.deliveriesOf(hook.ID)); n != 0 {
		t.Fatalf("the preview queued %d deliveries", n)
	}
	checkProblemNames(t, e.post("/api/v1/webhooks/"+hook.ID+"/replay/preview", `{}`), "since")
	checkCase(t, apiCase{status: http.StatusNotFound}, e.post("/api/v1/webhooks/wh_unknown/replay/preview", replayBody(start, "")))

	r := mustJSON[struct{ Job struct{ ID string } }](t, e.post("/api/v1/webhooks/"+hook.ID+"/replay", replayBody(start, "")), http.StatusAccepted)
	var ds []struct {
		ID       string
		ReplayID *string `json:"replay_id"`
	}
	wait.Until(t, "2 replayed deliveries", func() bool {
		ds = mustJSON[list[struct {
			ID       string
			ReplayID *string `json:"replay_id"`
		}]](t, e.get("/api/v1/deliveries?webhook_id="+hook.ID), http.StatusOK).Data
		return len(ds) == 2
	})
	for _, d := range ds {
		if d.ReplayID == nil || *d.ReplayID != r.Job.ID {
			t.Errorf("delivery %s names replay %v, want %s", d.ID, d.ReplayID, r.Job.ID)
		}
	}
	one := mustJSON[struct {
		ReplayID *string `json:"replay_id"`
	}](t, e.get("/api/v1/deliveries/"+ds[0].ID), http.StatusOK)
	if one.ReplayID == nil || *one.ReplayID != r.Job.ID {
		t.Errorf("the delivery's page names replay %v", one.ReplayID)
	}

	e.do(req{method: "PATCH", path: "/api/v1/webhooks/" + hook.ID, body: `{"enabled":false}`})
	checkCase(t, apiCase{status: http.StatusConflict}, e.post("/api/v1/webhooks/"+hook.ID+"/replay/preview", replayBody(start, "")))
}
