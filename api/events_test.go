package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

const messageData = `{"message_id":456,"content":"Hello, I need help with my order.","conversation_id":123}`

// eventWith builds a publish body; data is raw JSON ("" leaves it out).
func eventWith(event, data string) string {
	parts := []string{}
	if event != "" {
		parts = append(parts, `"event":`+event)
	}
	if data != "" {
		parts = append(parts, `"data":`+data)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func TestPublishRejectsBadEvents(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	post := func(body string) req { return req{method: "POST", path: "/api/v1/events", body: body} }
	conv := `"conversation.started"`
	msg := `"message.received"`
	e.run(t, []apiCase{
		{name: "malformed JSON", req: post(`{"event":`), status: 400},
		{name: "array", req: post(`[{"event":"conversation.started"}]`), status: 400},
		{name: "trailing garbage", req: post(eventWith(conv, conversationData) + `,`), status: 400},
		{name: "over 1 MiB", req: post(`{"event":"message.received","data":{"content":"` + strings.Repeat("x", 1<<20) + `"}}`), status: 413},
		{name: "wrong content type", req: req{method: "POST", path: "/api/v1/events", body: eventWith(conv, conversationData),
			headers: map[string]string{"Content-Type": "text/xml"}}, status: 415},
		{name: "unknown top-level field", req: post(`{"event":"conversation.started","data":` + conversationData + `,"priority":1}`), status: 422, problemField: "priority"},
		{name: "event missing", req: post(eventWith("", conversationData)), status: 422, problemField: "event"},
		{name: "event unknown", req: post(eventWith(`"conversation.closed"`, conversationData)), status: 422, problemField: "event",
			contains: []string{"conversation.closed", "conversation.started", "message.received"}},
		{name: "event not a string", req: post(eventWith(`7`, conversationData)), status: 422, problemField: "event"},
		{name: "event unknown and data missing", req: post(eventWith(`"x"`, "")), status: 422, problemField: "data"},
		{name: "data missing", req: post(eventWith(conv, "")), status: 422, problemField: "data"},
		{name: "data null", req: post(eventWith(conv, "null")), status: 422, problemField: "data"},
		{name: "data an array", req: post(eventWith(conv, "[]")), status: 422, problemField: "data"},
		{name: "data a string", req: post(eventWith(conv, `"x"`)), status: 422, problemField: "data"},
		{name: "data empty", req: post(eventWith(conv, "{}")), status: 422, problemField: "data.conversation_id"},
		{name: "conversation_id a string", req: post(eventWith(conv, `{"conversation_id":"123"}`)), status: 422, problemField: "data.conversation_id"},
		{name: "conversation_id zero", req: post(eventWith(conv, `{"conversation_id":0}`)), status: 422, problemField: "data.conversation_id"},
		{name: "conversation_id negative", req: post(eventWith(conv, `{"conversation_id":-4}`)), status: 422, problemField: "data.conversation_id"},
		{name: "conversation_id fractional", req: post(eventWith(conv, `{"conversation_id":1.5}`)), status: 422, problemField: "data.conversation_id"},
		{name: "conversation_id too big", req: post(eventWith(conv, `{"conversation_id":99999999999999999999}`)), status: 422, problemField: "data.conversation_id"},
		{name: "conversation_id null", req: post(eventWith(conv, `{"conversation_id":null}`)), status: 422, problemField: "data.conversation_id"},
		{name: "unknown data field", req: post(eventWith(conv, `{"conversation_id":1,"mood":"happy"}`)), status: 422, problemField: "data.mood"},
		{name: "message field on a conversation", req: post(eventWith(conv, `{"conversation_id":1,"content":"hi"}`)), status: 422, problemField: "data.content"},
		{name: "visitor_name a number", req: post(eventWith(conv, `{"conversation_id":1,"visitor_name":5}`)), status: 422, problemField: "data.visitor_name"},
		{name: "current_url an object", req: post(eventWith(conv, `{"conversation_id":1,"current_url":{}}`)), status: 422, problemField: "data.current_url"},
		{name: "status a boolean", req: post(eventWith(conv, `{"conversation_id":1,"status":true}`)), status: 422, problemField: "data.status"},
		{name: "created_at not a time", req: post(eventWith(conv, `{"conversation_id":1,"created_at":"yesterday"}`)), status: 422, problemField: "data.created_at"},
		{name: "created_at a number", req: post(eventWith(conv, `{"conversation_id":1,"created_at":1736937000}`)), status: 422, problemField: "data.created_at"},
		{name: "message without message_id", req: post(eventWith(msg, `{"conversation_id":1,"content":"hi"}`)), status: 422, problemField: "data.message_id"},
		{name: "message without content", req: post(eventWith(msg, `{"conversation_id":1,"message_id":2}`)), status: 422, problemField: "data.content"},
		{name: "message with blank content", req: post(eventWith(msg, `{"conversation_id":1,"message_id":2,"content":"  "}`)), status: 422, problemField: "data.content"},
		{name: "is_from_admin a string", req: post(eventWith(msg, `{"conversation_id":1,"message_id":2,"content":"hi","is_from_admin":"no"}`)), status: 422, problemField: "data.is_from_admin"},
		{name: "admin_name a number", req: post(eventWith(msg, `{"conversation_id":1,"message_id":2,"content":"hi","admin_name":1}`)), status: 422, problemField: "data.admin_name"},
		{name: "every data error named", req: post(eventWith(msg, `{"visitor_email":1}`)), status: 422, check: func(t *testing.T, r resp) {
			for _, f := range []string{"data.conversation_id", "data.message_id", "data.content", "data.visitor_email"} {
				checkProblemNames(t, r, f)
			}
		}},
		{name: "timestamp not a time", req: post(`{"event":"conversation.started","data":` + conversationData + `,"timestamp":"2025-13-01T00:00:00Z"}`), status: 422, problemField: "timestamp"},
		{name: "timestamp without zone", req: post(`{"event":"conversation.started","data":` + conversationData + `,"timestamp":"2025-01-15T10:30:00"}`), status: 422, problemField: "timestamp"},
		{name: "timestamp a number", req: post(`{"event":"conversation.started","data":` + conversationData + `,"timestamp":1736937000}`), status: 422, problemField: "timestamp"},
		{name: "timestamp null means now", req: post(`{"event":"conversation.started","data":` + conversationData + `,"timestamp":null}`), status: 202},
		{name: "Idempotency-Key too long", req: req{method: "POST", path: "/api/v1/events", body: eventWith(conv, conversationData),
			headers: map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}}, status: 400, problemField: "Idempotency-Key"},
		{name: "minimal conversation", req: post(eventWith(conv, `{"conversation_id":1}`)), status: 202, fields: map[string]any{"deliveries": 0, "event": "conversation.started"}},
		{name: "minimal message", req: post(eventWith(msg, `{"conversation_id":1,"message_id":2,"content":"hi"}`)), status: 202},
	})
	e.healthy()
}

func TestPublishNormalisesTimestampsToUTC(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	r := e.post("/api/v1/events", `{"event":"message.received","timestamp":"2025-01-15T11:31:00.999+01:00",`+
		`"data":{"message_id":456,"content":"Hello","conversation_id":123,"created_at":"2025-01-15T10:31:00Z"}}`)
	pub := mustJSON[struct{ ID, Event, Timestamp string }](t, r, http.StatusAccepted)
	if pub.Timestamp != "2025-01-15T10:31:00+00:00" {
		t.Errorf("timestamp %q, want 2025-01-15T10:31:00+00:00", pub.Timestamp)
	}
	ev := e.get("/api/v1/events/" + pub.ID)
	checkCase(t, apiCase{status: 200, fields: map[string]any{
		"timestamp":               "2025-01-15T10:31:00+00:00",
		"payload.timestamp":       "2025-01-15T10:31:00+00:00",
		"payload.data.created_at": "2025-01-15T10:31:00+00:00",
		"payload.data.admin_name": nil,
		"payload.data.visitor_ip": nil,
	}}, ev)

	// created_at defaults to the event time; every key is present in the documented order.
	r = e.post("/api/v1/events", `{"event":"conversation.started","timestamp":"2025-01-15T05:30:00-05:00","data":{"conversation_id":9}}`)
	id := mustJSON[struct{ ID string }](t, r, http.StatusAccepted).ID
	payload := storedPayload(t, e, id)
	want := `{"event":"conversation.started","timestamp":"2025-01-15T10:30:00+00:00","data":{"conversation_id":9,"visitor_name":null,` +
		`"visitor_email":null,"visitor_phone":null,"visitor_ip":null,"current_url":null,"status":null,"created_at":"2025-01-15T10:30:00+00:00"}}`
	if string(payload) != want {
		t.Errorf("stored body\n%s\nwant\n%s", payload, want)
	}
}

func TestGetEventShowsExactPayloadAndDeliveries(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	a := e.createWebhook(validHook)
	b := e.createWebhook(validHook)
	// Characters a default JSON encoder would rewrite (<, >, &, U+2028) must come back as sent.
	r := e.post("/api/v1/events", `{"event":"message.received","data":{"message_id":1,"conversation_id":2,`+
		`"content":"<b>Tom & Jerry</b> \u2028 ünïcode 😀","visitor_name":"O'Brien \"Bob\""}}`)
	id := mustJSON[struct{ ID string }](t, r, http.StatusAccepted).ID
	stored := storedPayload(t, e, id)
	got := e.get("/api/v1/events/" + id)
	if got.status != 200 {
		t.Fatalf("get event: %s", got)
	}
	if !bytes.Contains(got.body, append([]byte(`"payload":`), stored...)) {
		t.Errorf("payload is not the stored bytes\nstored %s\nbody   %s", stored, got.body)
	}
	var ev struct {
		DeliveryCount int `json:"delivery_count"`
		Deliveries    []struct {
			WebhookID string `json:"webhook_id"`
			Status    string `json:"status"`
			EventID   string `json:"event_id"`
		} `json:"deliveries"`
	}
	_ = json.Unmarshal(got.body, &ev)
	if ev.DeliveryCount != 2 || len(ev.Deliveries) != 2 {
		t.Fatalf("fan-out %+v", ev)
	}
	hooks := map[string]bool{}
	for _, d := range ev.Deliveries {
		hooks[d.WebhookID] = d.EventID == id && d.Status == "pending"
	}
	if !hooks[a.ID] || !hooks[b.ID] {
		t.Errorf("deliveries %+v, want one pending per webhook", ev.Deliveries)
	}
}

func TestEventWithoutSubscribersIsStoredWithNoDeliveries(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	e.createWebhook(hookWith("events", `["message.received"]`)) // listens to the other event
	e.createWebhook(hookWith("enabled", `false`))               // listens, but disabled
	e.createWebhook(`{"name":"off","url":"https://example.com/h","events":["conversation.started"],"enabled":false}`)
	r := e.post("/api/v1/events", eventWith(`"conversation.started"`, conversationData))
	pub := mustJSON[struct {
		ID         string
		Deliveries int
	}](t, r, http.StatusAccepted)
	if pub.Deliveries != 0 {
		t.Fatalf("deliveries = %d", pub.Deliveries)
	}
	checkCase(t, apiCase{status: 200, fields: map[string]any{"delivery_count": 0, "id": pub.ID},
		contains: []string{`"deliveries":[]`}}, e.get("/api/v1/events/"+pub.ID))
	checkCase(t, apiCase{status: 200, fields: map[string]any{"data.0.id": pub.ID}}, e.get("/api/v1/events"))
}

func TestIdempotencyKeyReplaysTheFirstPublish(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	hook := e.createWebhook(hookWith("events", `["conversation.started"]`))
	body := eventWith(`"conversation.started"`, conversationData)
	publish := func(key, body string) resp {
		return e.do(req{method: "POST", path: "/api/v1/events", body: body, headers: map[string]string{"Idempotency-Key": key}})
	}
	first := publish("order-123", body)
	p1 := mustJSON[struct {
		ID, Timestamp string
		Deliveries    int
	}](t, first, http.StatusAccepted)
	if first.header.Get("Idempotent-Replayed") != "" || p1.Deliveries != 1 {
		t.Fatalf("first publish: %s %v", first, first.header)
	}
	second := publish("order-123", body)
	p2 := mustJSON[struct {
		ID, Timestamp string
		Deliveries    int
	}](t, second, http.StatusAccepted)
	if p2 != p1 {
		t.Errorf("replay answered %+v, want %+v", p2, p1)
	}
	if second.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("Idempotent-Replayed = %q", second.header.Get("Idempotent-Replayed"))
	}
	if ds := e.deliveriesOf(hook.ID); len(ds) != 1 {
		t.Errorf("%d deliveries after a replay, want 1", len(ds))
	}
	if l := mustJSON[list[struct{ ID string }]](t, e.get("/api/v1/events"), 200); len(l.Data) != 1 {
		t.Errorf("%d events after a replay, want 1", len(l.Data))
	}

	conflict := publish("order-123", eventWith(`"conversation.started"`, `{"conversation_id":999}`))
	checkCase(t, apiCase{status: http.StatusConflict, contains: []string{"order-123"}}, conflict)

	// Another key is another event.
	other := mustJSON[struct{ ID string }](t, publish("order-124", body), http.StatusAccepted)
	if other.ID == p1.ID {
		t.Error("a different key replayed the first event")
	}
	// A key that only failed validation was never used.
	checkCase(t, apiCase{status: 422}, publish("order-125", eventWith(`"conversation.started"`, `{}`)))
	checkCase(t, apiCase{status: 202, check: func(t *testing.T, r resp) {
		if r.header.Get("Idempotent-Replayed") != "" {
			t.Error("a key rejected by validation was remembered")
		}
	}}, publish("order-125", body))
}

func TestListEventsFiltersByType(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	e.post("/api/v1/events", eventWith(`"conversation.started"`, conversationData))
	e.post("/api/v1/events", eventWith(`"message.received"`, messageData))
	e.post("/api/v1/events", eventWith(`"conversation.started"`, conversationData))
	for _, c := range []struct {
		query string
		n     int
	}{{"", 3}, {"?event=conversation.started", 2}, {"?event=message.received", 1}} {
		t.Run("filter "+c.query, func(t *testing.T) {
			l := mustJSON[list[struct{ Event string }]](t, e.get("/api/v1/events"+c.query), 200)
			if len(l.Data) != c.n {
				t.Errorf("%q: %d events, want %d", c.query, len(l.Data), c.n)
			}
			for _, ev := range l.Data {
				if c.query != "" && !strings.HasSuffix(c.query, ev.Event) {
					t.Errorf("%q listed a %s", c.query, ev.Event)
				}
			}
		})
	}
	// A list entry is a summary: no payload.
	checkCase(t, apiCase{status: 200, absent: []string{`"payload"`}}, e.get("/api/v1/events"))
}

// storedPayload reads an event's body bytes straight from the database.
func storedPayload(t *testing.T, e *env, id string) []byte {
	t.Helper()
	var row struct{ Payload []byte }
	if err := e.store.ScanSQL(t.Context(), &row, `SELECT payload FROM events WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	if len(row.Payload) == 0 {
		t.Fatalf("event %s has no stored payload", id)
	}
	return row.Payload
}
