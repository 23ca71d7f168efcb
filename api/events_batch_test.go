package api_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/internal/wait"
)

// batchOf builds a batch publish body from raw item objects.
func batchOf(items ...string) string {
	return `{"events":[` + strings.Join(items, ",") + `]}`
}

type batchAnswer struct {
	Events []struct {
		ID, Event, Timestamp string
		Deliveries           int
	}
	Deliveries int
}

func TestBatchPublishQueuesEveryEventInOrder(t *testing.T) {
	e := newEnv(t, withLocalTargets())
	rc := newReceiver(t)
	e.hookTo(rc.URL, "")
	body := batchOf(
		eventWith(`"conversation.started"`, conversationData),
		eventWith(`"message.received"`, messageData),
		`{"event":"conversation.started","data":{"conversation_id":7},"timestamp":"2025-01-15T11:30:00+01:00"}`,
	)
	out := mustJSON[batchAnswer](t, e.post("/api/v1/events/batch", body), http.StatusAccepted)
	if len(out.Events) != 3 || out.Deliveries != 3 {
		t.Fatalf("answer %+v, want 3 events with 3 deliveries in all", out)
	}
	wantTypes := []string{"conversation.started", "message.received", "conversation.started"}
	seen := map[string]bool{}
	for i, ev := range out.Events {
		if ev.Event != wantTypes[i] || ev.Deliveries != 1 || ev.ID == "" || seen[ev.ID] {
			t.Errorf("item %d = %+v, want a new %s with 1 delivery", i, ev, wantTypes[i])
		}
		seen[ev.ID] = true
	}
	if out.Events[2].Timestamp != "2025-01-15T10:30:00+00:00" {
		t.Errorf("item 2 timestamp %q, want it normalised to UTC", out.Events[2].Timestamp)
	}
	// Each item's body is what a single publish of it would have stored, and it is delivered.
	wait.Until(t, "3 deliveries", func() bool { return len(rc.requests()) == 3 })
	for _, ev := range out.Events {
		payload := storedPayload(t, e, ev.ID)
		found := false
		for _, c := range rc.requests() {
			if c.header.Get("X-Webhook-Id") == ev.ID {
				found = bytes.Equal(c.body, payload)
			}
		}
		if !found {
			t.Errorf("event %s was not delivered with its stored bytes", ev.ID)
		}
	}
}

func TestBatchPublishRejectsTheWholeBatchNamingEachBadItem(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	good := eventWith(`"conversation.started"`, conversationData)
	post := func(body string) req { return req{method: "POST", path: "/api/v1/events/batch", body: body} }
	many := make([]string, 1001)
	for i := range many {
		many[i] = good
	}
	e.run(t, []apiCase{
		{name: "events missing", req: post(`{}`), status: 422, problemField: "events"},
		{name: "events null", req: post(`{"events":null}`), status: 422, problemField: "events"},
		{name: "events not an array", req: post(`{"events":{"event":"conversation.started"}}`), status: 422, problemField: "events"},
		{name: "events empty", req: post(`{"events":[]}`), status: 422, problemField: "events"},
		{name: "over 1000 events", req: post(batchOf(many...)), status: 422, problemField: "events", contains: []string{"1001"}},
		{name: "unknown top-level field", req: post(`{"events":[` + good + `],"async":true}`), status: 422, problemField: "async"},
		{name: "item not an object", req: post(batchOf(good, `"conversation.started"`)), status: 422, problemField: "events[1]"},
		{name: "item null", req: post(batchOf(`null`)), status: 422, problemField: "events[0]"},
		{name: "unknown item field", req: post(batchOf(good, `{"event":"conversation.started","data":{"conversation_id":1},"priority":1}`)),
			status: 422, problemField: "events[1].priority"},
		{name: "every bad item named", req: post(batchOf(
			good,
			eventWith(`"message.received"`, `{"conversation_id":"x"}`),
			eventWith(`"conversation.closed"`, `{"conversation_id":1}`),
			good,
			`{"event":"conversation.started","data":{"conversation_id":1},"timestamp":"yesterday"}`,
		)), status: 422, check: func(t *testing.T, r resp) {
			for _, f := range []string{"events[1].data.conversation_id", "events[1].data.message_id", "events[1].data.content",
				"events[2].event", "events[4].timestamp"} {
				checkProblemNames(t, r, f)
			}
			if bytes.Contains(r.body, []byte(`"events[0]`)) || bytes.Contains(r.body, []byte(`"events[3]`)) {
				t.Errorf("a valid item was named: %s", r.body)
			}
		}},
		{name: "wrong content type", req: req{method: "POST", path: "/api/v1/events/batch", body: batchOf(good),
			headers: map[string]string{"Content-Type": "text/plain"}}, status: 415},
		{name: "Idempotency-Key too long", req: req{method: "POST", path: "/api/v1/events/batch", body: batchOf(good),
			headers: map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}}, status: 400, problemField: "Idempotency-Key"},
	})
	// All or nothing: none of the rejected batches stored anything.
	if l := mustJSON[list[struct{ ID string }]](t, e.get("/api/v1/events"), http.StatusOK); len(l.Data) != 0 {
		t.Errorf("%d events stored by rejected batches, want 0", len(l.Data))
	}
	// Exactly 1000 is allowed.
	out := mustJSON[batchAnswer](t, e.post("/api/v1/events/batch", batchOf(many[:1000]...)), http.StatusAccepted)
	if len(out.Events) != 1000 {
		t.Errorf("a batch of 1000 answered %d results", len(out.Events))
	}
}

func TestBatchIdempotencyKeyReplaysTheWholeBatch(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	hook := e.createWebhook(hookWith("events", `["conversation.started"]`))
	body := batchOf(eventWith(`"conversation.started"`, conversationData), eventWith(`"conversation.started"`, `{"conversation_id":9}`))
	publish := func(key, body string) resp {
		return e.do(req{method: "POST", path: "/api/v1/events/batch", body: body, headers: map[string]string{"Idempotency-Key": key}})
	}
	first := publish("import-42", body)
	p1 := mustJSON[batchAnswer](t, first, http.StatusAccepted)
	if first.header.Get("Idempotent-Replayed") != "" || p1.Deliveries != 2 {
		t.Fatalf("first batch: %s", first)
	}
	second := publish("import-42", body)
	p2 := mustJSON[batchAnswer](t, second, http.StatusAccepted)
	if fmt.Sprint(p2) != fmt.Sprint(p1) || second.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay answered %+v (replayed %q), want %+v", p2, second.header.Get("Idempotent-Replayed"), p1)
	}
	if ds := e.deliveriesOf(hook.ID); len(ds) != 2 {
		t.Errorf("%d deliveries after a replayed batch, want 2", len(ds))
	}
	other := batchOf(eventWith(`"conversation.started"`, `{"conversation_id":10}`))
	checkCase(t, apiCase{status: http.StatusConflict, contains: []string{`\"import-42\" was used`}}, publish("import-42", other))
	checkCase(t, apiCase{status: http.StatusAccepted}, publish("import-43", other))
}
