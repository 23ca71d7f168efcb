package api_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/wait"
	"github.com/hookrelay/hookrelay/signature"
)

// seedVerifies checks X-Webhook-Signature as the README's receivers do: the lowercase hex
// HMAC-SHA256 of the raw body, written out here rather than taken from the signature package
// so the test holds the server to the algorithm receivers use.
func seedVerifies(secret string, c captured) bool {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(c.body)
	return hmac.Equal([]byte(hex.EncodeToString(m.Sum(nil))), []byte(c.header.Get("X-Webhook-Signature")))
}

// standardVerifies checks webhook-signature as a Standard Webhooks library does: any of its
// space-separated signatures made with secret.
func standardVerifies(secret string, c captured) bool {
	h := c.header
	return signature.VerifyStandard(secret, h.Get("webhook-id"), h.Get("webhook-timestamp"), c.body, h.Get("webhook-signature"))
}

// rotationView is the webhook's secret_rotation.
type rotationView struct {
	PendingSince       *time.Time `json:"pending_since"`
	ActivatesAt        *time.Time `json:"activates_at"`
	PreviousValidUntil *time.Time `json:"previous_valid_until"`
}

func (e *env) rotationOf(id string) rotationView {
	e.t.Helper()
	r := e.get("/api/v1/webhooks/" + id)
	if strings.Contains(string(r.body), "whsec_") {
		e.t.Fatalf("the webhook resource shows a secret: %s", r)
	}
	return mustJSON[struct {
		R rotationView `json:"secret_rotation"`
	}](e.t, r, http.StatusOK).R
}

// sendTest sends a test delivery to the webhook and returns what its receiver got.
func (e *env) sendTest(rc *receiver, id string) captured {
	e.t.Helper()
	if a := mustJSON[attemptView](e.t, e.post("/api/v1/webhooks/"+id+"/test", ""), http.StatusOK); a.Outcome != "succeeded" {
		e.t.Fatalf("test attempt: %+v", a)
	}
	got := rc.requests()
	return got[len(got)-1]
}

type started struct {
	Secret             string     `json:"secret"`
	ActivatesAt        *time.Time `json:"activates_at"`
	PreviousValidUntil *time.Time `json:"previous_valid_until"`
}

// A seed receiver (one X-Webhook-Signature, one secret) sees no failed request through a
// whole rotation: the header keeps the old secret while the new one is pending, and switches
// only on activation; webhook-signature carries both secrets from the start and the old one
// for 24 h after the switch.
func TestRotationKeepsTheSeedSignatureUntilActivated(t *testing.T) {
	e := newEnv(t, withLocalTargets())
	rc := newReceiver(t)
	const old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	hook := e.hookTo(rc.URL, `,"secret":"`+old+`"`)

	r := e.post("/api/v1/webhooks/"+hook.ID+"/secret/rotation", "")
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("start answered Cache-Control %q, want no-store", cc)
	}
	st := mustJSON[started](t, r, http.StatusOK)
	next := st.Secret
	if !strings.HasPrefix(next, "whsec_") || next == old || st.ActivatesAt != nil || st.PreviousValidUntil != nil {
		t.Fatalf("start: %s", r)
	}
	rot := e.rotationOf(hook.ID)
	if rot.PendingSince == nil || rot.ActivatesAt != nil || rot.PreviousValidUntil != nil {
		t.Fatalf("while pending: %+v", rot)
	}
	rev := mustJSON[struct {
		Secret     string `json:"secret"`
		NextSecret string `json:"next_secret"`
	}](t, e.get("/api/v1/webhooks/"+hook.ID+"/secret"), http.StatusOK)
	if rev.Secret != old || rev.NextSecret != next {
		t.Errorf("reveal while pending: %+v, want the current and the next secret", rev)
	}

	// Pending: a test and a real delivery, both over HTTP to the receiver.
	pending := []captured{e.sendTest(rc, hook.ID)}
	e.publish()
	wait.Until(t, "the published event arrives", func() bool { return len(rc.requests()) == 2 })
	pending = append(pending, rc.requests()[1])
	for i, c := range pending {
		if !seedVerifies(old, c) || seedVerifies(next, c) {
			t.Errorf("request %d while pending: X-Webhook-Signature does not verify with the old secret alone", i)
		}
		if !standardVerifies(old, c) || !standardVerifies(next, c) {
			t.Errorf("request %d while pending: webhook-signature %q does not carry both secrets", i, c.header.Get("webhook-signature"))
		}
	}

	before := time.Now()
	r = e.post("/api/v1/webhooks/"+hook.ID+"/secret/rotation/activate", "")
	checkCase(t, apiCase{status: 200, fields: map[string]any{"secret_rotation.pending_since": nil, "secret_rotation.activates_at": nil},
		absent: []string{"whsec_"}}, r)
	rot = e.rotationOf(hook.ID)
	if rot.PreviousValidUntil == nil {
		t.Fatal("after activation: previous_valid_until missing")
	}
	if d := rot.PreviousValidUntil.Sub(before); d < 24*time.Hour-time.Minute || d > 24*time.Hour+time.Minute {
		t.Errorf("the old secret signs webhook-signature for %s after activation, want 24h", d)
	}

	c := e.sendTest(rc, hook.ID)
	if !seedVerifies(next, c) || seedVerifies(old, c) {
		t.Error("after activation: X-Webhook-Signature does not verify with the new secret alone")
	}
	if !standardVerifies(old, c) || !standardVerifies(next, c) {
		t.Errorf("after activation: webhook-signature %q does not carry both secrets during the overlap", c.header.Get("webhook-signature"))
	}
	if got := mustJSON[struct{ Secret string }](t, e.get("/api/v1/webhooks/"+hook.ID+"/secret"), http.StatusOK).Secret; got != next {
		t.Errorf("reveal after activation = %q, want the new secret", got)
	}
}

// A rotation scheduled for a time happens then with nobody calling the API, also across a
// restart: the time is stored and signing compares it with the clock.
func TestScheduledActivationHappensOnTimeAcrossARestart(t *testing.T) {
	e := newEnv(t, withLocalTargets())
	rc := newReceiver(t)
	const old = "old-secret-of-a-seed-receiver"
	hook := e.hookTo(rc.URL, `,"secret":"`+old+`"`)
	at := time.Now().UTC().Add(3 * time.Second).Truncate(time.Second)
	st := mustJSON[started](t, e.post("/api/v1/webhooks/"+hook.ID+"/secret/rotation",
		`{"activate_at":"`+at.Format(time.RFC3339)+`"}`), http.StatusOK)
	if st.ActivatesAt == nil || !st.ActivatesAt.Equal(at) || st.PreviousValidUntil == nil || !st.PreviousValidUntil.Equal(at.Add(24*time.Hour)) {
		t.Fatalf("scheduled start: %+v, want activation at %s", st, at)
	}
	if c := e.sendTest(rc, hook.ID); time.Now().Before(at) && !seedVerifies(old, c) {
		t.Error("before the activation time X-Webhook-Signature is not signed with the old secret")
	}

	e.srv.Stop(t)
	e = newEnv(t, withLocalTargets(), withDB(e.dbPath))
	if rot := e.rotationOf(hook.ID); time.Now().Before(at) && (rot.ActivatesAt == nil || !rot.ActivatesAt.Equal(at)) {
		t.Fatalf("after a restart: %+v, want activation at %s", rot, at)
	}
	wait.Until(t, "X-Webhook-Signature switches to the new secret at the activation time", func() bool {
		return seedVerifies(st.Secret, e.sendTest(rc, hook.ID))
	})
	if time.Now().Before(at) {
		t.Fatalf("the new secret signed X-Webhook-Signature before %s", at)
	}
	c := e.sendTest(rc, hook.ID)
	if !standardVerifies(old, c) {
		t.Error("after the scheduled activation webhook-signature dropped the old secret")
	}
	rot := e.rotationOf(hook.ID)
	if rot.PendingSince != nil || rot.PreviousValidUntil == nil || !rot.PreviousValidUntil.Equal(at.Add(24*time.Hour)) {
		t.Errorf("after the activation time: %+v, want done, the old secret valid until %s", rot, at.Add(24*time.Hour))
	}
}

// Cancelling drops the pending secret from webhook-signature; X-Webhook-Signature never moved.
func TestCancelledRotationLeavesTheCurrentSecret(t *testing.T) {
	e := newEnv(t, withLocalTargets())
	rc := newReceiver(t)
	const old = "a-current-secret"
	hook := e.hookTo(rc.URL, `,"secret":"`+old+`"`)
	st := mustJSON[started](t, e.post("/api/v1/webhooks/"+hook.ID+"/secret/rotation", ""), http.StatusOK)
	r := e.do(req{method: "DELETE", path: "/api/v1/webhooks/" + hook.ID + "/secret/rotation"})
	checkCase(t, apiCase{status: 200, fields: map[string]any{"secret_rotation.pending_since": nil}}, r)
	c := e.sendTest(rc, hook.ID)
	if !seedVerifies(old, c) || standardVerifies(st.Secret, c) || !standardVerifies(old, c) {
		t.Errorf("after cancel: X-Webhook-Signature %q, webhook-signature %q; want the current secret only",
			c.header.Get("X-Webhook-Signature"), c.header.Get("webhook-signature"))
	}
	if n := len(strings.Fields(c.header.Get("webhook-signature"))); n != 1 {
		t.Errorf("after cancel webhook-signature holds %d signatures, want 1", n)
	}
	if got := field(t, e.get("/api/v1/webhooks/"+hook.ID+"/secret").body, "next_secret"); got != nil {
		t.Errorf("reveal after cancel shows next_secret %v", got)
	}
}

func TestRotationRefusesBadInputAndWrongState(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	hook := e.createWebhook(hookWith("secret", `"s3cret"`))
	base := "/api/v1/webhooks/" + hook.ID + "/secret/rotation"
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	far := time.Now().Add(100 * 24 * time.Hour).UTC().Format(time.RFC3339)
	e.run(t, []apiCase{
		{name: "activate with nothing pending", req: req{method: "POST", path: base + "/activate"}, status: 409, contains: []string{"no secret rotation is pending"}},
		{name: "cancel with nothing pending", req: req{method: "DELETE", path: base}, status: 409},
		{name: "activate_at in the past", req: req{method: "POST", path: base, body: `{"activate_at":"` + past + `"}`}, status: 422, problemField: "activate_at"},
		{name: "activate_at not a time", req: req{method: "POST", path: base, body: `{"activate_at":"tomorrow"}`}, status: 422, problemField: "activate_at"},
		{name: "activate_at a number", req: req{method: "POST", path: base, body: `{"activate_at":1700000000}`}, status: 422, problemField: "activate_at"},
		{name: "activate_at beyond 90 days", req: req{method: "POST", path: base, body: `{"activate_at":"` + far + `"}`}, status: 422, problemField: "activate_at"},
		{name: "unknown field", req: req{method: "POST", path: base, body: `{"when":"now"}`}, status: 422, problemField: "when"},
		{name: "not JSON", req: req{method: "POST", path: base, body: `now`}, status: 400},
		{name: "rotate with a bad activate", req: req{method: "POST", path: "/api/v1/webhooks/" + hook.ID + "/secret/rotate?activate=later"}, status: 422, problemField: "activate"},
		{name: "null activate_at starts a manual rotation", req: req{method: "POST", path: base, body: `{"activate_at":null}`}, status: 200,
			fields: map[string]any{"activates_at": nil}},
		{name: "a second start while pending", req: req{method: "POST", path: base}, status: 409, contains: []string{"already pending"}},
		{name: "the one-step rotate while pending", req: req{method: "POST", path: "/api/v1/webhooks/" + hook.ID + "/secret/rotate"}, status: 409},
	})
	// Setting the secret outright ends the rotation.
	r := e.do(req{method: "PATCH", path: "/api/v1/webhooks/" + hook.ID, body: `{"secret":"replaced"}`})
	checkCase(t, apiCase{status: 200, fields: map[string]any{"secret_rotation.pending_since": nil}}, r)
}

// A failing webhook shows since when, and when auto-disable will turn it off.
func TestFailingWebhookShowsWhenItWillBeDisabled(t *testing.T) {
	e := newEnv(t, withLocalTargets(), withAutoDisable(48*time.Hour))
	rc := newReceiver(t)
	rc.setRespond(func(int) int { return http.StatusInternalServerError })
	hook := e.hookTo(rc.URL, "")
	checkCase(t, apiCase{status: 200, fields: map[string]any{"failing_since": nil, "disable_at": nil}}, e.get("/api/v1/webhooks/"+hook.ID))
	e.publish()
	var w struct {
		FailingSince *time.Time `json:"failing_since"`
		DisableAt    *time.Time `json:"disable_at"`
	}
	wait.Until(t, "the webhook shows it is failing", func() bool {
		w = mustJSON[struct {
			FailingSince *time.Time `json:"failing_since"`
			DisableAt    *time.Time `json:"disable_at"`
		}](t, e.get("/api/v1/webhooks/"+hook.ID), http.StatusOK)
		return w.FailingSince != nil
	})
	if w.DisableAt == nil || !w.DisableAt.Equal(w.FailingSince.Add(48*time.Hour)) {
		t.Errorf("disable_at %v, want failing_since %v + 48h", w.DisableAt, w.FailingSince)
	}
	// The list shows the same.
	l := e.get("/api/v1/webhooks")
	if !strings.Contains(string(l.body), `"disable_at":"`) {
		t.Errorf("the list has no disable_at: %s", l)
	}
	// Disabled, it is no longer failing towards a disable.
	r := e.do(req{method: "PATCH", path: "/api/v1/webhooks/" + hook.ID, body: `{"enabled":false}`})
	checkCase(t, apiCase{status: 200, fields: map[string]any{"failing_since": nil, "disable_at": nil}}, r)

	// Without auto-disable the date is null, failing_since is still shown.
	e2 := newEnv(t, withLocalTargets())
	hook2 := e2.hookTo(rc.URL, "")
	e2.publish()
	wait.Until(t, "the second server's webhook shows it is failing", func() bool {
		return field(t, e2.get("/api/v1/webhooks/"+hook2.ID).body, "failing_since") != nil
	})
	checkCase(t, apiCase{status: 200, fields: map[string]any{"disable_at": nil}}, e2.get("/api/v1/webhooks/"+hook2.ID))
}
