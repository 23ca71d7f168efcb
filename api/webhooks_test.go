package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/signature"
)

const validHook = `{"name":"n","url":"https://example.com/h","events":["message.received"]}`

// hookWith returns validHook with one field replaced (or added) by raw JSON.
func hookWith(field, raw string) string {
	m := map[string]string{"name": `"n"`, "url": `"https://example.com/h"`, "events": `["message.received"]`}
	if raw == "" {
		delete(m, field)
	} else {
		m[field] = raw
	}
	parts := make([]string, 0, len(m))
	for _, k := range []string{"name", "url", "events", "secret", "generate_secret", "format", "enabled", "trace_context", "colour"} {
		if v, ok := m[k]; ok {
			parts = append(parts, `"`+k+`":`+v)
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func TestCreateWebhookRejectsBadInput(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	own := e.publicURL + "/inspect/abc"
	post := func(body string) req { return req{method: "POST", path: "/api/v1/webhooks", body: body} }
	e.run(t, []apiCase{
		{name: "malformed JSON", req: post(`{"name":`), status: 400},
		{name: "invalid JSON token", req: post(`{name: "x"}`), status: 400},
		{name: "array instead of object", req: post(`[1,2]`), status: 400},
		{name: "string instead of object", req: post(`"webhook"`), status: 400},
		{name: "null instead of object", req: post(`null`), status: 400},
		{name: "number instead of object", req: post(`42`), status: 400},
		{name: "empty body", req: req{method: "POST", path: "/api/v1/webhooks", headers: map[string]string{"Content-Type": "application/json"}}, status: 400},
		{name: "whitespace body", req: post("   \n"), status: 400},
		{name: "trailing garbage", req: post(validHook + ` x`), status: 400},
		{name: "trailing brace", req: post(validHook + `}`), status: 400},
		{name: "trailing bracket", req: post(validHook + `]`), status: 400},
		{name: "two objects", req: post(validHook + validHook), status: 400},
		{name: "body over 1 MiB", req: post(`{"name":"` + strings.Repeat("a", 1<<20) + `"}`), status: 413},
		{name: "text/plain", req: req{method: "POST", path: "/api/v1/webhooks", body: validHook,
			headers: map[string]string{"Content-Type": "text/plain"}}, status: 415},
		{name: "form encoded", req: req{method: "POST", path: "/api/v1/webhooks", body: validHook,
			headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, status: 415},
		{name: "unparsable content type", req: req{method: "POST", path: "/api/v1/webhooks", body: validHook,
			headers: map[string]string{"Content-Type": "application/json; ;;"}}, status: 415},
		{name: "unknown field", req: post(hookWith("colour", `"red"`)), status: 422, problemField: "colour"},
		{name: "name missing", req: post(hookWith("name", "")), status: 422, problemField: "name"},
		{name: "name null", req: post(hookWith("name", "null")), status: 422, problemField: "name"},
		{name: "name not a string", req: post(hookWith("name", "5")), status: 422, problemField: "name"},
		{name: "name empty", req: post(hookWith("name", `""`)), status: 422, problemField: "name"},
		{name: "name only spaces", req: post(hookWith("name", `"   "`)), status: 422, problemField: "name"},
		{name: "name 101 chars", req: post(hookWith("name", `"`+strings.Repeat("n", 101)+`"`)), status: 422, problemField: "name"},
		{name: "name 100 chars plus spaces is trimmed", req: post(hookWith("name", `"  `+strings.Repeat("n", 100)+`  "`)), status: 201,
			fields: map[string]any{"name": strings.Repeat("n", 100)}},
		{name: "name of 100 multibyte characters", req: post(hookWith("name", `"`+strings.Repeat("é", 100)+`"`)), status: 201},
		{name: "url missing", req: post(hookWith("url", "")), status: 422, problemField: "url"},
		{name: "url not a string", req: post(hookWith("url", `{"href":"x"}`)), status: 422, problemField: "url"},
		{name: "url relative", req: post(hookWith("url", `"/hooks/chat"`)), status: 422, problemField: "url"},
		{name: "url without scheme", req: post(hookWith("url", `"example.com/h"`)), status: 422, problemField: "url"},
		{name: "url ftp", req: post(hookWith("url", `"ftp://example.com/h"`)), status: 422, problemField: "url"},
		{name: "url javascript", req: post(hookWith("url", `"javascript:alert(1)"`)), status: 422, problemField: "url"},
		{name: "url http without --allow-http", req: post(hookWith("url", `"http://example.com/h"`)), status: 422, problemField: "url",
			contains: []string{"--allow-http"}},
		{name: "url loopback IP", req: post(hookWith("url", `"https://127.0.0.1/h"`)), status: 422, problemField: "url",
			contains: []string{"--allow-private-targets"}},
		{name: "url private IP", req: post(hookWith("url", `"https://10.1.2.3/h"`)), status: 422, problemField: "url"},
		{name: "url metadata IP", req: post(hookWith("url", `"https://169.254.169.254/latest/meta-data"`)), status: 422, problemField: "url"},
		{name: "url IPv6 loopback", req: post(hookWith("url", `"https://[::1]:8443/h"`)), status: 422, problemField: "url"},
		{name: "url IPv4-mapped loopback", req: post(hookWith("url", `"https://[::ffff:127.0.0.1]/h"`)), status: 422, problemField: "url"},
		{name: "url unspecified", req: post(hookWith("url", `"https://0.0.0.0/h"`)), status: 422, problemField: "url"},
		{name: "url localhost", req: post(hookWith("url", `"https://localhost/h"`)), status: 422, problemField: "url"},
		{name: "url with credentials", req: post(hookWith("url", `"https://user:pw@example.com/h"`)), status: 422, problemField: "url",
			contains: []string{"credentials"}},
		{name: "own inspector URL with credentials", req: post(hookWith("url", `"`+strings.Replace(own, "://", "://u:p@", 1)+`"`)), status: 422,
			problemField: "url", contains: []string{"credentials"}},
		{name: "url with fragment", req: post(hookWith("url", `"https://example.com/h#x"`)), status: 422, problemField: "url"},
		{name: "url too long", req: post(hookWith("url", `"https://example.com/`+strings.Repeat("a", 2100)+`"`)), status: 422, problemField: "url"},
		{name: "own inspector URL needs no flags", req: post(hookWith("url", `"`+own+`"`)), status: 201, fields: map[string]any{"url": own}},
		{name: "own inspector URL cannot escape /inspect/", req: post(hookWith("url", `"`+e.publicURL+`/inspect/../api/v1/webhooks"`)), status: 422, problemField: "url"},
		{name: "own host outside /inspect/ is private", req: post(hookWith("url", `"`+e.publicURL+`/api/v1/webhooks"`)), status: 422, problemField: "url"},
		{name: "events missing", req: post(hookWith("events", "")), status: 422, problemField: "events"},
		{name: "events empty", req: post(hookWith("events", `[]`)), status: 422, problemField: "events"},
		{name: "events null", req: post(hookWith("events", `null`)), status: 422, problemField: "events"},
		{name: "events a string", req: post(hookWith("events", `"message.received"`)), status: 422, problemField: "events"},
		{name: "events with a number", req: post(hookWith("events", `[1]`)), status: 422, problemField: "events"},
		{name: "events unknown", req: post(hookWith("events", `["chat.closed"]`)), status: 422, problemField: "events",
			contains: []string{"chat.closed"}},
		{name: "events duplicated", req: post(hookWith("events", `["message.received","message.received"]`)), status: 422, problemField: "events"},
		{name: "format invalid", req: post(hookWith("format", `"xml"`)), status: 422, problemField: "format"},
		{name: "format not a string", req: post(hookWith("format", `1`)), status: 422, problemField: "format"},
		{name: "format slack", req: post(hookWith("format", `"slack"`)), status: 201, fields: map[string]any{"format": "slack"}},
		{name: "enabled not a boolean", req: post(hookWith("enabled", `"yes"`)), status: 422, problemField: "enabled"},
		{name: "enabled false", req: post(hookWith("enabled", `false`)), status: 201, fields: map[string]any{"enabled": false}},
		{name: "trace_context not a boolean", req: post(hookWith("trace_context", `"yes"`)), status: 422, problemField: "trace_context"},
		{name: "trace_context null", req: post(hookWith("trace_context", `null`)), status: 422, problemField: "trace_context"},
		{name: "trace_context true", req: post(hookWith("trace_context", `true`)), status: 201, fields: map[string]any{"trace_context": true}},
		{name: "secret and generate_secret", req: post(`{"name":"n","url":"https://example.com/h","events":["message.received"],"secret":"abc","generate_secret":true}`),
			status: 422, problemField: "generate_secret"},
		{name: "secret empty", req: post(hookWith("secret", `""`)), status: 422, problemField: "secret"},
		{name: "secret not a string", req: post(hookWith("secret", `123`)), status: 422, problemField: "secret"},
		{name: "secret with surrounding spaces", req: post(hookWith("secret", `" abc "`)), status: 422, problemField: "secret"},
		{name: "generate_secret not a boolean", req: post(hookWith("generate_secret", `"yes"`)), status: 422, problemField: "generate_secret"},
		{name: "generate_secret", req: post(hookWith("generate_secret", `true`)), status: 201, contains: []string{`"secret":"whsec_`},
			fields: map[string]any{"has_secret": true}},
		{name: "several errors at once", req: post(`{"name":"","url":"ftp://x","events":[]}`), status: 422,
			check: func(t *testing.T, r resp) {
				for _, f := range []string{"name", "url", "events"} {
					checkProblemNames(t, r, f)
				}
			}},
	})
	e.healthy()
}

func TestWebhookDefaultsAndSecretVisibility(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	const secret = "my-very-own-secret-value"
	r := e.post("/api/v1/webhooks", `{"name":"  Slack Notifications ","url":"https://example.com/h","events":["message.received","conversation.started"],"secret":"`+secret+`"}`)
	created := mustJSON[webhookView](t, r, http.StatusCreated)
	if created.Secret != secret || !created.HasSecret || !created.Enabled || created.Format != "json" || created.Name != "Slack Notifications" {
		t.Fatalf("created %+v", created)
	}
	if got := r.header.Get("Location"); got != "/api/v1/webhooks/"+created.ID {
		t.Errorf("Location = %q", got)
	}
	if !slices.Equal(created.Events, []string{"conversation.started", "message.received"}) {
		t.Errorf("events = %v", created.Events)
	}

	e.run(t, []apiCase{
		{name: "list hides the secret", req: req{method: "GET", path: "/api/v1/webhooks"}, status: 200,
			contains: []string{created.ID, `"has_secret":true`, `"stats_24h"`, `"last_delivery":null`}, absent: []string{secret, `"secret"`}},
		{name: "get hides the secret", req: req{method: "GET", path: "/api/v1/webhooks/" + created.ID}, status: 200,
			contains: []string{`"has_secret":true`}, absent: []string{secret, `"secret"`}},
		{name: "patch of another field hides the secret", req: req{method: "PATCH", path: "/api/v1/webhooks/" + created.ID, body: `{"name":"renamed"}`},
			status: 200, fields: map[string]any{"name": "renamed", "has_secret": true, "format": "json", "trace_context": false}, absent: []string{secret, `"secret"`}},
		{name: "patch turns trace context on", req: req{method: "PATCH", path: "/api/v1/webhooks/" + created.ID, body: `{"trace_context":true}`},
			status: 200, fields: map[string]any{"trace_context": true, "name": "renamed"}},
		{name: "a patch of another field keeps trace context", req: req{method: "PATCH", path: "/api/v1/webhooks/" + created.ID, body: `{"format":"json"}`},
			status: 200, fields: map[string]any{"trace_context": true, "name": "renamed"}},
		{name: "patch with generate_secret false hides the secret", req: req{method: "PATCH", path: "/api/v1/webhooks/" + created.ID, body: `{"generate_secret":false}`},
			status: 200, absent: []string{secret, `"secret"`}},
		{name: "reveal shows it", req: req{method: "GET", path: "/api/v1/webhooks/" + created.ID + "/secret"}, status: 200,
			fields: map[string]any{"secret": secret}, check: func(t *testing.T, r resp) {
				if r.header.Get("Cache-Control") != "no-store" {
					t.Errorf("reveal is cacheable: %q", r.header.Get("Cache-Control"))
				}
			}},
		{name: "patch invalid leaves it unchanged", req: req{method: "PATCH", path: "/api/v1/webhooks/" + created.ID, body: `{"name":"changed","url":"ftp://x"}`},
			status: 422, problemField: "url"},
		{name: "still renamed only", req: req{method: "GET", path: "/api/v1/webhooks/" + created.ID}, status: 200,
			fields: map[string]any{"name": "renamed", "url": "https://example.com/h"}},
		{name: "patch secret null with generate_secret", req: req{method: "PATCH", path: "/api/v1/webhooks/" + created.ID, body: `{"secret":null,"generate_secret":true}`},
			status: 422, problemField: "generate_secret"},
		{name: "patch secret null removes it", req: req{method: "PATCH", path: "/api/v1/webhooks/" + created.ID, body: `{"secret":null}`},
			status: 200, fields: map[string]any{"has_secret": false}, absent: []string{secret}},
		{name: "reveal after removal", req: req{method: "GET", path: "/api/v1/webhooks/" + created.ID + "/secret"}, status: 200,
			fields: map[string]any{"secret": ""}},
		{name: "patch generate_secret returns the new one", req: req{method: "PATCH", path: "/api/v1/webhooks/" + created.ID, body: `{"generate_secret":true}`},
			status: 200, fields: map[string]any{"has_secret": true}, contains: []string{`"secret":"whsec_`}},
		{name: "patch name null", req: req{method: "PATCH", path: "/api/v1/webhooks/" + created.ID, body: `{"name":null}`}, status: 422, problemField: "name"},
		{name: "patch events empty", req: req{method: "PATCH", path: "/api/v1/webhooks/" + created.ID, body: `{"events":[]}`}, status: 422, problemField: "events"},
		{name: "patch unknown field", req: req{method: "PATCH", path: "/api/v1/webhooks/" + created.ID, body: `{"id":"wh_other"}`}, status: 422, problemField: "id"},
		{name: "patch not JSON", req: req{method: "PATCH", path: "/api/v1/webhooks/" + created.ID, body: `name=x`}, status: 400},
		{name: "patch empty object changes nothing", req: req{method: "PATCH", path: "/api/v1/webhooks/" + created.ID, body: `{}`}, status: 200,
			fields: map[string]any{"name": "renamed"}},
	})

	for _, c := range []struct{ method, path, body string }{
		{"GET", "/api/v1/webhooks/wh_nope", ""},
		{"PATCH", "/api/v1/webhooks/wh_nope", `{"name":"x"}`},
		{"DELETE", "/api/v1/webhooks/wh_nope", ""},
		{"POST", "/api/v1/webhooks/wh_nope/test", ""},
		{"GET", "/api/v1/webhooks/wh_nope/secret", ""},
		{"POST", "/api/v1/webhooks/wh_nope/secret/rotate", ""},
		{"POST", "/api/v1/webhooks/wh_nope/secret/rotation", ""},
		{"POST", "/api/v1/webhooks/wh_nope/secret/rotation/activate", ""},
		{"DELETE", "/api/v1/webhooks/wh_nope/secret/rotation", ""},
		{"POST", "/api/v1/webhooks/wh_nope/replay", `{"since":"2025-01-01T00:00:00Z"}`},
		{"GET", "/api/v1/events/evt_nope", ""},
		{"GET", "/api/v1/deliveries/dlv_nope", ""},
		{"POST", "/api/v1/deliveries/dlv_nope/retry", ""},
	} {
		t.Run("unknown id "+c.method+" "+c.path, func(t *testing.T) {
			checkCase(t, apiCase{status: 404}, e.withT(t).do(req{method: c.method, path: c.path, body: c.body}))
		})
	}
}

// rotate?activate=now is the one-step rotation of earlier versions.
func TestRotateNowSignsWithBothSecretsFor24h(t *testing.T) {
	e := newEnv(t, withLocalTargets())
	rc := newReceiver(t)
	const old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	hook := e.hookTo(rc.URL, `,"secret":"`+old+`"`)

	before := time.Now()
	rot := mustJSON[struct {
		Secret            string     `json:"secret"`
		PreviousExpiresAt *time.Time `json:"previous_expires_at"`
	}](t, e.post("/api/v1/webhooks/"+hook.ID+"/secret/rotate?activate=now", ""), http.StatusOK)
	if !strings.HasPrefix(rot.Secret, "whsec_") || rot.Secret == old {
		t.Fatalf("rotated secret %q", rot.Secret)
	}
	if rot.PreviousExpiresAt == nil {
		t.Fatal("previous_expires_at missing")
	}
	if d := rot.PreviousExpiresAt.Sub(before); d < 24*time.Hour-time.Minute || d > 24*time.Hour+time.Minute {
		t.Errorf("previous secret expires in %s, want about 24h", d)
	}
	if got := mustJSON[struct{ Secret string }](t, e.get("/api/v1/webhooks/"+hook.ID+"/secret"), 200).Secret; got != rot.Secret {
		t.Errorf("reveal after rotate = %q, want the new secret", got)
	}

	a := mustJSON[attemptView](t, e.post("/api/v1/webhooks/"+hook.ID+"/test", ""), http.StatusOK)
	if a.Outcome != "succeeded" {
		t.Fatalf("test attempt %+v", a)
	}
	got := rc.requests()
	if len(got) != 1 {
		t.Fatalf("receiver got %d requests", len(got))
	}
	h, body := got[0].header, got[0].body
	sigs := strings.Fields(h.Get("webhook-signature"))
	if len(sigs) != 2 || !strings.HasPrefix(sigs[0], "v1,") || !strings.HasPrefix(sigs[1], "v1,") {
		t.Fatalf("webhook-signature = %q, want two v1 entries", h.Get("webhook-signature"))
	}
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	for _, sec := range []string{rot.Secret, old} {
		ok := 0
		for _, s := range sigs {
			if signature.VerifyStandard(sec, id, ts, body, s) {
				ok++
			}
		}
		if ok != 1 {
			t.Errorf("secret %q matches %d of the signatures, want exactly 1", sec, ok)
		}
	}
	if !signature.VerifyHexHMAC(rot.Secret, body, h.Get("X-Webhook-Signature")) {
		t.Error("X-Webhook-Signature is not signed with the new secret")
	}

	// A second rotation within the window replaces the previous secret: only two stay active.
	mustJSON[struct{ Secret string }](t, e.post("/api/v1/webhooks/"+hook.ID+"/secret/rotate?activate=now", ""), http.StatusOK)
	mustJSON[attemptView](t, e.post("/api/v1/webhooks/"+hook.ID+"/test", ""), http.StatusOK)
	got = rc.requests()
	if n := len(strings.Fields(got[len(got)-1].header.Get("webhook-signature"))); n != 2 {
		t.Errorf("after a second rotation %d signatures, want 2", n)
	}

	// Rotating a webhook without a secret gives it one, with nothing to expire.
	bare := e.hookTo(rc.URL, "")
	r := e.post("/api/v1/webhooks/"+bare.ID+"/secret/rotate", "")
	checkCase(t, apiCase{status: 200, contains: []string{`"secret":"whsec_`}, absent: []string{"previous_expires_at"}}, r)
	if got := field(t, e.get("/api/v1/webhooks/"+bare.ID).body, "has_secret"); got != true {
		t.Errorf("after rotating a webhook without a secret, has_secret = %v", got)
	}
}

func TestDisablingWebhookCancelsPendingDeliveries(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	hook := e.createWebhook(validHook)
	other := e.createWebhook(validHook)
	r := e.post("/api/v1/events", `{"event":"message.received","data":{"conversation_id":1,"message_id":2,"content":"hi"}}`)
	if got := field(t, r.body, "deliveries"); got != float64(2) {
		t.Fatalf("publish: %s", r)
	}
	ds := e.deliveriesOf(hook.ID)
	if len(ds) != 1 || ds[0].Status != "pending" {
		t.Fatalf("deliveries before disable: %+v", ds)
	}

	r = e.do(req{method: "PATCH", path: "/api/v1/webhooks/" + hook.ID, body: `{"enabled":false}`})
	checkCase(t, apiCase{status: 200, fields: map[string]any{"enabled": false}}, r)
	if d := e.delivery(ds[0].ID); d.Status != "cancelled" {
		t.Errorf("delivery after disable: %s, want cancelled", d.Status)
	}
	if d := e.deliveriesOf(other.ID); len(d) != 1 || d[0].Status != "pending" {
		t.Errorf("the other webhook's delivery changed: %+v", d)
	}
	// Toggling does not delete anything, and re-enabling does not resurrect cancelled work.
	r = e.do(req{method: "PATCH", path: "/api/v1/webhooks/" + hook.ID, body: `{"enabled":true}`})
	checkCase(t, apiCase{status: 200, fields: map[string]any{"enabled": true, "disabled_reason": nil}}, r)
	if d := e.delivery(ds[0].ID); d.Status != "cancelled" {
		t.Errorf("delivery after re-enable: %s", d.Status)
	}
	// A disabled webhook gets no new deliveries.
	e.do(req{method: "PATCH", path: "/api/v1/webhooks/" + hook.ID, body: `{"enabled":false}`})
	r = e.post("/api/v1/events", `{"event":"message.received","data":{"conversation_id":1,"message_id":3,"content":"again"}}`)
	checkCase(t, apiCase{status: 202, fields: map[string]any{"deliveries": 1}}, r)
}

func TestDeleteWebhookRemovesItsDeliveries(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	hook := e.createWebhook(validHook)
	keep := e.createWebhook(validHook)
	e.post("/api/v1/events", `{"event":"message.received","data":{"conversation_id":1,"message_id":2,"content":"hi"}}`)
	ds := e.deliveriesOf(hook.ID)
	if len(ds) != 1 {
		t.Fatalf("deliveries: %+v", ds)
	}
	r := e.do(req{method: "DELETE", path: "/api/v1/webhooks/" + hook.ID})
	if r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("delete: %s", r)
	}
	e.run(t, []apiCase{
		{name: "webhook gone", req: req{method: "GET", path: "/api/v1/webhooks/" + hook.ID}, status: 404},
		{name: "delivery gone", req: req{method: "GET", path: "/api/v1/deliveries/" + ds[0].ID}, status: 404},
		{name: "no deliveries listed", req: req{method: "GET", path: "/api/v1/deliveries?webhook_id=" + hook.ID}, status: 200,
			contains: []string{`"data":[]`}},
		{name: "second delete", req: req{method: "DELETE", path: "/api/v1/webhooks/" + hook.ID}, status: 404},
	})
	if d := e.deliveriesOf(keep.ID); len(d) != 1 {
		t.Errorf("the other webhook lost its delivery: %+v", d)
	}
}

// walkPages follows next_cursor from path with limit=2 and returns the ids in order.
func walkPages(t *testing.T, e *env, path string) []string {
	t.Helper()
	var seen []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		p := path + "?limit=2"
		if cursor != "" {
			p += "&cursor=" + cursor
		}
		page := mustJSON[list[struct{ ID string }]](t, e.get(p), http.StatusOK)
		if len(page.Data) == 0 || len(page.Data) > 2 {
			t.Fatalf("%s: page of %d", p, len(page.Data))
		}
		for _, x := range page.Data {
			seen = append(seen, x.ID)
		}
		if page.NextCursor == nil {
			return seen
		}
		cursor = *page.NextCursor
	}
}

func TestListPaginationWalksEveryItemOnce(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	hook := e.createWebhook(hookWith("events", `["conversation.started"]`))
	want := map[string][]string{"/api/v1/webhooks": {hook.ID}}
	for range 4 {
		want["/api/v1/webhooks"] = append(want["/api/v1/webhooks"], e.createWebhook(validHook).ID)
	}
	for range 5 {
		want["/api/v1/events"] = append(want["/api/v1/events"], e.publish())
		k := mustJSON[struct{ ID string }](t, e.post("/api/v1/api-keys", `{"name":"k"}`), http.StatusCreated)
		want["/api/v1/api-keys"] = append(want["/api/v1/api-keys"], k.ID)
	}
	for _, d := range e.deliveriesOf(hook.ID) {
		want["/api/v1/deliveries"] = append([]string{d.ID}, want["/api/v1/deliveries"]...)
	}
	if len(want["/api/v1/deliveries"]) != 5 {
		t.Fatalf("%d deliveries", len(want["/api/v1/deliveries"]))
	}
	for path, ids := range want {
		t.Run(path, func(t *testing.T) {
			ids = slices.Clone(ids)
			slices.Reverse(ids) // newest first
			if got := walkPages(t, e, path); !slices.Equal(got, ids) {
				t.Fatalf("pages gave %v, want %v", got, ids)
			}
		})
	}
}

func TestListsRejectBadPaging(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	var cases []apiCase
	for _, path := range []string{"/api/v1/webhooks", "/api/v1/events", "/api/v1/deliveries", "/api/v1/api-keys"} {
		for _, q := range []struct{ query, field string }{
			{"limit=0", "limit"}, {"limit=201", "limit"}, {"limit=-1", "limit"}, {"limit=abc", "limit"}, {"limit=1.5", "limit"},
			{"cursor=!!!", "cursor"}, {"cursor=" + strings.Repeat("QUFB", 50), "cursor"},
		} {
			cases = append(cases, apiCase{name: path + "?" + q.query, req: req{method: "GET", path: path + "?" + q.query},
				status: 400, problemField: q.field})
		}
		cases = append(cases,
			apiCase{name: path + " limit 200", req: req{method: "GET", path: path + "?limit=200"}, status: 200},
			apiCase{name: path + " unknown cursor", req: req{method: "GET", path: path + "?cursor=QUFB"}, status: 200})
	}
	cases = append(cases,
		apiCase{name: "deliveries invalid status", req: req{method: "GET", path: "/api/v1/deliveries?status=done"}, status: 400, problemField: "status"},
		apiCase{name: "deliveries unknown event", req: req{method: "GET", path: "/api/v1/deliveries?event=chat.closed"}, status: 400, problemField: "event"},
		apiCase{name: "events unknown event", req: req{method: "GET", path: "/api/v1/events?event=chat.closed"}, status: 400, problemField: "event"},
		apiCase{name: "deliveries by status", req: req{method: "GET", path: "/api/v1/deliveries?status=failed"}, status: 200},
	)
	e.run(t, cases)
}

func TestTestActionSendsSampleWithTestHeader(t *testing.T) {
	e := newEnv(t, withLocalTargets())
	rc := newReceiver(t)
	hook := e.createWebhook(`{"name":"t","url":"` + rc.URL + `/hook","events":["conversation.started"],"secret":"s3cret"}`)

	a := mustJSON[attemptView](t, e.post("/api/v1/webhooks/"+hook.ID+"/test", ""), http.StatusOK)
	if a.Outcome != "succeeded" || a.ResponseStatus == nil || *a.ResponseStatus != 200 || a.Number != 1 {
		t.Fatalf("attempt %+v", a)
	}
	if a.RequestHeaders["X-Webhook-Test"] != "true" {
		t.Errorf("attempt log lacks X-Webhook-Test: %v", a.RequestHeaders)
	}
	got := rc.requests()
	if len(got) != 1 {
		t.Fatalf("receiver got %d requests", len(got))
	}
	h := got[0].header
	if h.Get("X-Webhook-Test") != "true" || h.Get("X-Webhook-Event") != "conversation.started" {
		t.Errorf("headers %v", h)
	}
	if !signature.VerifyHexHMAC("s3cret", got[0].body, h.Get("X-Webhook-Signature")) {
		t.Error("test request is not signed")
	}
	if !strings.Contains(string(got[0].body), `"visitor_name":"John Doe"`) {
		t.Errorf("body is not the sample: %s", got[0].body)
	}

	ds := e.deliveriesOf(hook.ID)
	if len(ds) != 1 || !ds[0].Test || ds[0].Status != "succeeded" {
		t.Fatalf("delivery log %+v", ds)
	}
	e.run(t, []apiCase{
		{name: "retry of a test delivery", req: req{method: "POST", path: "/api/v1/deliveries/" + ds[0].ID + "/retry"}, status: 409},
		{name: "event not subscribed", req: req{method: "POST", path: "/api/v1/webhooks/" + hook.ID + "/test", body: `{"event":"message.received"}`},
			status: 422, problemField: "event"},
		{name: "event unknown", req: req{method: "POST", path: "/api/v1/webhooks/" + hook.ID + "/test", body: `{"event":"chat.closed"}`},
			status: 422, problemField: "event"},
		{name: "event not a string", req: req{method: "POST", path: "/api/v1/webhooks/" + hook.ID + "/test", body: `{"event":5}`},
			status: 422, problemField: "event"},
		{name: "unknown field", req: req{method: "POST", path: "/api/v1/webhooks/" + hook.ID + "/test", body: `{"evnt":"x"}`},
			status: 422, problemField: "evnt"},
		{name: "empty form-encoded body is no body", req: req{method: "POST", path: "/api/v1/webhooks/" + hook.ID + "/test",
			headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, status: 200},
		{name: "explicit event", req: req{method: "POST", path: "/api/v1/webhooks/" + hook.ID + "/test", body: `{"event":"conversation.started"}`},
			status: 200, fields: map[string]any{"outcome": "succeeded"}},
	})
	if n := len(rc.requests()); n != 3 {
		t.Errorf("receiver got %d requests, want 3 (rejected tests send nothing)", n)
	}

	// It works on a disabled webhook, and a failing receiver is a result, not an API error.
	e.do(req{method: "PATCH", path: "/api/v1/webhooks/" + hook.ID, body: `{"enabled":false}`})
	rc.setRespond(func(int) int { return http.StatusInternalServerError })
	r := e.post("/api/v1/webhooks/"+hook.ID+"/test", `{"event":"conversation.started"}`)
	checkCase(t, apiCase{status: 200, fields: map[string]any{"outcome": "failed", "response_status": 500}}, r)
	if got := rc.requests(); got[len(got)-1].header.Get("X-Webhook-Test") != "true" {
		t.Error("disabled webhook test lacks X-Webhook-Test")
	}
	// Test events do not appear among published events.
	if l := mustJSON[list[struct{ ID string }]](t, e.get("/api/v1/events"), 200); len(l.Data) != 0 {
		t.Errorf("test events listed as published: %+v", l.Data)
	}
}

// Each change reads and writes the webhook in one transaction: a rename racing a disable
// must not switch the webhook back on, and racing rotations must chain (the previous secret
// is always one this API handed out, never the stale original).
func TestConcurrentWebhookChangesAreNotLost(t *testing.T) {
	e := newEnv(t, withLocalTargets())
	rc := newReceiver(t)
	const original = "original-secret-value"
	hook := e.hookTo(rc.URL, `,"secret":"`+original+`"`)

	const n = 8
	secrets := make(chan string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(3)
		go func() {
			defer wg.Done()
			r := e.do(req{method: "PATCH", path: "/api/v1/webhooks/" + hook.ID, body: `{"name":"rename ` + strconv.Itoa(i) + `"}`})
			if r.status != http.StatusOK {
				t.Errorf("rename: %s", r)
			}
		}()
		go func() {
			defer wg.Done()
			r := e.do(req{method: "POST", path: "/api/v1/webhooks/" + hook.ID + "/secret/rotate?activate=now"})
			if r.status != http.StatusOK {
				t.Errorf("rotate: %s", r)
				return
			}
			secrets <- field(t, r.body, "secret").(string)
		}()
		go func() {
			defer wg.Done()
			if i == n/2 {
				r := e.do(req{method: "PATCH", path: "/api/v1/webhooks/" + hook.ID, body: `{"enabled":false}`})
				if r.status != http.StatusOK {
					t.Errorf("disable: %s", r)
				}
			}
		}()
	}
	wg.Wait()
	close(secrets)
	handed := map[string]bool{}
	for s := range secrets {
		handed[s] = true
	}
	if len(handed) != n {
		t.Fatalf("%d distinct secrets from %d rotations", len(handed), n)
	}

	got := mustJSON[webhookView](t, e.get("/api/v1/webhooks/"+hook.ID), http.StatusOK)
	if got.Enabled {
		t.Error("a concurrent rename switched the disabled webhook back on")
	}
	current := mustJSON[struct{ Secret string }](t, e.get("/api/v1/webhooks/"+hook.ID+"/secret"), http.StatusOK).Secret
	if !handed[current] {
		t.Fatalf("current secret %q was never handed out", current)
	}
	mustJSON[attemptView](t, e.post("/api/v1/webhooks/"+hook.ID+"/test", ""), http.StatusOK)
	reqs := rc.requests()
	h, body := reqs[len(reqs)-1].header, reqs[len(reqs)-1].body
	sigs := strings.Fields(h.Get("webhook-signature"))
	if len(sigs) != 2 {
		t.Fatalf("webhook-signature %q, want two entries", h.Get("webhook-signature"))
	}
	if signature.VerifyStandard(original, h.Get("webhook-id"), h.Get("webhook-timestamp"), body, h.Get("webhook-signature")) {
		t.Error("the original secret still signs after 8 rotations: a rotation read a stale webhook")
	}
	prevOK := false
	for s := range handed {
		if s != current && signature.VerifyStandard(s, h.Get("webhook-id"), h.Get("webhook-timestamp"), body, sigs[1]) {
			prevOK = true
		}
	}
	if !prevOK {
		t.Error("the previous secret is not one of the rotated ones")
	}
}

// A spilled webhook shows its backlog: since when, and (reading that one webhook) how many
// events it still owes; lists show the time only, and a webhook that is not behind shows null.
func TestSpilledWebhookShowsItsBacklog(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	hook := e.createWebhook(validHook)
	calm := e.createWebhook(validHook)
	if !e.store.SpillSupported() {
		checkCase(t, apiCase{status: 200, fields: map[string]any{"backlog": nil}}, e.get("/api/v1/webhooks/"+hook.ID))
		return
	}
	if _, err := e.store.Spill(context.Background(), []string{hook.ID}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		e.post("/api/v1/events", fmt.Sprintf(`{"event":"message.received","data":{"conversation_id":1,"message_id":%d,"content":"hi"}}`, i+1))
	}
	r := e.get("/api/v1/webhooks/" + hook.ID)
	checkCase(t, apiCase{status: 200, fields: map[string]any{"backlog.owed_events": 3}}, r)
	if since, _ := field(t, r.body, "backlog.spilled_since").(string); since == "" {
		t.Errorf("backlog without spilled_since: %s", r)
	}
	checkCase(t, apiCase{status: 200, fields: map[string]any{"backlog": nil}}, e.get("/api/v1/webhooks/"+calm.ID))
	list := e.get("/api/v1/webhooks")
	for i := range 2 {
		id, _ := field(t, list.body, fmt.Sprintf("data.%d.id", i)).(string)
		backlog := field(t, list.body, fmt.Sprintf("data.%d.backlog", i))
		owed := field(t, list.body, fmt.Sprintf("data.%d.backlog.owed_events", i))
		switch {
		case id == hook.ID && (backlog == nil || owed != nil):
			t.Errorf("list: the spilled webhook shows backlog %v, want the time and owed_events null", backlog)
		case id == calm.ID && backlog != nil:
			t.Errorf("list: the other webhook shows backlog %v, want null", backlog)
		}
	}
}

// An admin looking at a webhook whose endpoint hangs sees every event waiting for it as a
// pending delivery, and their count, whether the deliveries have rows yet or wait in the
// webhook's spill (the store spills such a webhook after a few dozen events).
func TestEveryPendingDeliveryOfAHangingWebhookIsListedAndCounted(t *testing.T) {
	e := newEnv(t, withLocalTargets())
	release := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hanging.Close)
	t.Cleanup(func() { close(release) })
	hook := e.hookTo(hanging.URL, "")
	const events = 300
	published := map[string]bool{}
	for i := range events {
		r := e.post("/api/v1/events", fmt.Sprintf(`{"event":"message.received","data":{"conversation_id":1,"message_id":%d,"content":"hi"}}`, i+1))
		published[mustJSON[struct{ ID string }](t, r, http.StatusAccepted).ID] = true
	}

	seen := map[string]bool{} // event ids
	var spilledSeen int
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > events {
			t.Fatal("paging does not end")
		}
		path := "/api/v1/deliveries?limit=37&webhook_id=" + hook.ID
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		page := mustJSON[list[deliveryView]](t, e.get(path), http.StatusOK)
		for _, d := range page.Data {
			if d.Status != "pending" || d.WebhookID != hook.ID {
				t.Fatalf("delivery %+v, want pending for the hanging webhook", d)
			}
			if seen[d.EventID] {
				t.Fatalf("event %s listed twice", d.EventID)
			}
			seen[d.EventID] = true
			if d.Spilled {
				spilledSeen++
			}
		}
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	if len(seen) != events {
		t.Fatalf("listed %d pending deliveries of %d published events", len(seen), events)
	}
	for id := range published {
		if !seen[id] {
			t.Fatalf("event %s has no listed delivery", id)
		}
	}
	if e.store.SpillSupported() && spilledSeen == 0 {
		t.Errorf("no delivery listed as spilled: the webhook did not spill, so the test did not cover it")
	}
	t.Logf("%d pending deliveries listed, %d of them waiting in the spill", len(seen), spilledSeen)

	// The count, in the list and in the single read; the status filter agrees.
	checkCase(t, apiCase{status: 200, fields: map[string]any{"pending_deliveries": events}}, e.get("/api/v1/webhooks/"+hook.ID))
	checkCase(t, apiCase{status: 200, fields: map[string]any{"data.0.pending_deliveries": events}}, e.get("/api/v1/webhooks"))
	if n := len(mustJSON[list[deliveryView]](t, e.get("/api/v1/deliveries?limit=200&status=succeeded&webhook_id="+hook.ID), http.StatusOK).Data); n != 0 {
		t.Errorf("%d succeeded deliveries listed, want 0", n)
	}

	// The newest delivery: readable by id, shown on its event, not redeliverable before its turn.
	newest := mustJSON[list[deliveryView]](t, e.get("/api/v1/deliveries?limit=1&webhook_id="+hook.ID), http.StatusOK).Data[0]
	got := e.delivery(newest.ID)
	if got.ID != newest.ID || got.Status != "pending" || got.Spilled != newest.Spilled || len(got.Attempts) != 0 {
		t.Errorf("read by id: %+v, listed as %+v", got, newest)
	}
	ev := mustJSON[struct {
		Deliveries []deliveryView `json:"deliveries"`
	}](t, e.get("/api/v1/events/"+newest.EventID), http.StatusOK)
	if len(ev.Deliveries) != 1 || ev.Deliveries[0].ID != newest.ID {
		t.Errorf("event detail shows deliveries %+v, want %s", ev.Deliveries, newest.ID)
	}
	if newest.Spilled {
		checkCase(t, apiCase{status: http.StatusConflict}, e.post("/api/v1/deliveries/"+newest.ID+"/retry", ""))
	}
}
