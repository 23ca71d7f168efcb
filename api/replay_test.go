package api_test

import (
	"bytes"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/wait"
)

func replayBody(since time.Time, extra string) string {
	return `{"since":"` + since.UTC().Format(time.RFC3339Nano) + `"` + extra + `}`
}

func TestReplaySendsPastEventsIncludingThoseBeforeTheWebhook(t *testing.T) {
	e := newEnv(t, withLocalTargets())
	rc := newReceiver(t)
	start := time.Now().Add(-time.Minute)

	// Published while nobody listened: stored with no deliveries.
	var convIDs []string
	for range 3 {
		convIDs = append(convIDs, e.publish())
	}
	e.post("/api/v1/events", eventWith(`"message.received"`, messageData))

	hook := e.createWebhook(`{"name":"late","url":"` + rc.URL + `","events":["conversation.started"],"secret":"s3cret"}`)
	// A test action is not a published event and is never replayed.
	mustJSON[attemptView](t, e.post("/api/v1/webhooks/"+hook.ID+"/test", ""), http.StatusOK)

	r := e.post("/api/v1/webhooks/"+hook.ID+"/replay", replayBody(start, ""))
	checkCase(t, apiCase{status: http.StatusAccepted, fields: map[string]any{"queued": 3}}, r)
	wait.Until(t, "3 replayed requests", func() bool { return len(rc.requests()) == 4 })

	// The replay is a stored job: it can be read, and is listed with the webhook's replays.
	started := mustJSON[struct{ Job struct{ ID, Status string } }](t, r, http.StatusAccepted)
	type jobView struct {
		ID, Status    string
		Total, Queued int64
		FinishedAt    *time.Time `json:"finished_at"`
	}
	var job jobView
	wait.Until(t, "the replay job is done", func() bool {
		job = mustJSON[jobView](t, e.get("/api/v1/replays/"+started.Job.ID), http.StatusOK)
		return job.Status == "done"
	})
	if job.Total != 3 || job.Queued != 3 || job.FinishedAt == nil {
		t.Errorf("job %+v, want 3 of 3 queued and a finish time", job)
	}
	if l := mustJSON[list[jobView]](t, e.get("/api/v1/webhooks/"+hook.ID+"/replays"), http.StatusOK); len(l.Data) != 1 || l.Data[0].ID != job.ID {
		t.Errorf("replays of the webhook: %+v", l.Data)
	}
	checkCase(t, apiCase{status: http.StatusNotFound}, e.get("/api/v1/replays/rpl_unknown"))

	var gotIDs []string
	for _, c := range rc.requests()[1:] {
		id := c.header.Get("X-Webhook-Id")
		gotIDs = append(gotIDs, id)
		if c.header.Get("X-Webhook-Test") != "" || c.header.Get("X-Webhook-Event") != "conversation.started" {
			t.Errorf("replayed request headers %v", c.header)
		}
		if want := storedPayload(t, e, id); !bytes.Equal(c.body, want) {
			t.Errorf("replayed body of %s\n%s\nwant the stored\n%s", id, c.body, want)
		}
	}
	slices.Sort(gotIDs)
	slices.Sort(convIDs)
	if !slices.Equal(gotIDs, convIDs) {
		t.Errorf("replayed %v, want %v", gotIDs, convIDs)
	}
	wait.Until(t, "replayed deliveries to succeed", func() bool {
		n := 0
		for _, d := range e.deliveriesOf(hook.ID) {
			if !d.Test && d.Status == "succeeded" {
				n++
			}
		}
		return n == 3
	})
	// The event shows the new delivery in its fan-out.
	checkCase(t, apiCase{status: 200, fields: map[string]any{"delivery_count": 1, "deliveries.0.webhook_id": hook.ID}},
		e.get("/api/v1/events/"+convIDs[0]))

	e.run(t, []apiCase{
		{name: "range before the events", req: req{method: "POST", path: "/api/v1/webhooks/" + hook.ID + "/replay",
			body: replayBody(start.Add(-time.Hour), `,"until":"`+start.Format(time.RFC3339)+`"`)}, status: 202, fields: map[string]any{"queued": 0}},
		{name: "range in the future", req: req{method: "POST", path: "/api/v1/webhooks/" + hook.ID + "/replay",
			body: replayBody(time.Now().Add(time.Hour), "")}, status: 202, fields: map[string]any{"queued": 0}},
		{name: "only failed when all succeeded", req: req{method: "POST", path: "/api/v1/webhooks/" + hook.ID + "/replay",
			body: replayBody(start, `,"only_failed":true`)}, status: 202, fields: map[string]any{"queued": 0}},
	})
}

func TestReplayOnlyFailed(t *testing.T) {
	e := newEnv(t, withLocalTargets()) // no retries: a failed attempt fails the delivery
	rc := newReceiver(t)
	rc.setRespond(func(int) int { return http.StatusServiceUnavailable })
	hook := e.hookTo(rc.URL, "")
	start := time.Now().Add(-time.Minute)
	failed := []string{e.publish(), e.publish()}
	wait.Until(t, "two failed deliveries", func() bool {
		n := 0
		for _, d := range e.deliveriesOf(hook.ID) {
			if d.Status == "failed" {
				n++
			}
		}
		return n == 2
	})
	rc.setRespond(nil)
	ok := e.publish()
	wait.Until(t, "one succeeded delivery", func() bool {
		for _, d := range e.deliveriesOf(hook.ID) {
			if d.EventID == ok && d.Status == "succeeded" {
				return true
			}
		}
		return false
	})
	before := len(rc.requests())

	r := e.post("/api/v1/webhooks/"+hook.ID+"/replay", replayBody(start, `,"only_failed":true`))
	checkCase(t, apiCase{status: http.StatusAccepted, fields: map[string]any{"queued": 2}}, r)
	wait.Until(t, "two replayed requests", func() bool { return len(rc.requests()) == before+2 })
	var ids []string
	for _, c := range rc.requests()[before:] {
		ids = append(ids, c.header.Get("X-Webhook-Id"))
	}
	slices.Sort(ids)
	slices.Sort(failed)
	if !slices.Equal(ids, failed) {
		t.Errorf("replayed %v, want the failed %v", ids, failed)
	}
	// Once they got through, nothing counts as failed any more; everything still replays.
	wait.Until(t, "replays to succeed", func() bool {
		n := 0
		for _, d := range e.deliveriesOf(hook.ID) {
			if d.Status == "succeeded" {
				n++
			}
		}
		return n == 3
	})
	checkCase(t, apiCase{status: 202, fields: map[string]any{"queued": 0}},
		e.post("/api/v1/webhooks/"+hook.ID+"/replay", replayBody(start, `,"only_failed":true`)))
	checkCase(t, apiCase{status: 202, fields: map[string]any{"queued": 3}},
		e.post("/api/v1/webhooks/"+hook.ID+"/replay", replayBody(start, `,"until":null`)))
}

func TestReplayRejectsBadInput(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	hook := e.createWebhook(validHook)
	off := e.createWebhook(hookWith("enabled", "false"))
	e.post("/api/v1/events", eventWith(`"message.received"`, messageData))
	post := func(id, body string) req {
		return req{method: "POST", path: "/api/v1/webhooks/" + id + "/replay", body: body}
	}
	now := time.Now().UTC()
	e.run(t, []apiCase{
		{name: "no body", req: req{method: "POST", path: "/api/v1/webhooks/" + hook.ID + "/replay"}, status: 400},
		{name: "not JSON", req: post(hook.ID, `since=yesterday`), status: 400},
		{name: "since missing", req: post(hook.ID, `{}`), status: 422, problemField: "since"},
		{name: "since null", req: post(hook.ID, `{"since":null}`), status: 422, problemField: "since"},
		{name: "since not a time", req: post(hook.ID, `{"since":"yesterday"}`), status: 422, problemField: "since"},
		{name: "since a number", req: post(hook.ID, `{"since":1736899200}`), status: 422, problemField: "since"},
		{name: "until not a time", req: post(hook.ID, replayBody(now, `,"until":"soon"`)), status: 422, problemField: "until"},
		{name: "until before since", req: post(hook.ID, replayBody(now, `,"until":"`+now.Add(-time.Hour).Format(time.RFC3339)+`"`)), status: 422, problemField: "until"},
		{name: "until equal to since", req: post(hook.ID, `{"since":"2025-01-15T10:00:00Z","until":"2025-01-15T11:00:00+01:00"}`), status: 422, problemField: "until"},
		{name: "only_failed not a boolean", req: post(hook.ID, replayBody(now, `,"only_failed":"yes"`)), status: 422, problemField: "only_failed"},
		{name: "unknown field", req: post(hook.ID, replayBody(now, `,"event":"message.received"`)), status: 422, problemField: "event"},
		{name: "unknown webhook", req: post("wh_nope", replayBody(now, "")), status: 404},
		{name: "disabled webhook", req: post(off.ID, replayBody(now.Add(-time.Hour), "")), status: 409},
		{name: "enabled webhook with its event pending", req: post(hook.ID, replayBody(now.Add(-time.Hour), "")), status: 202,
			fields: map[string]any{"queued": 0}},
	})
	if n := len(e.deliveriesOf(hook.ID)); n != 1 {
		t.Errorf("%d deliveries after rejected replays, want 1", n)
	}
}
