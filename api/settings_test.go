package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/api"
	"github.com/hookrelay/hookrelay/inspector"
)

func TestSettingsReportTheFlagsTheServerRunsWith(t *testing.T) {
	e := newEnv(t, withoutDispatcher(), withLocalTargets(), withDelivery(3*time.Second, 2*time.Second, time.Minute, 90*time.Minute))
	got := mustJSON[api.Settings](t, e.get("/api/v1/settings"), http.StatusOK)
	if got.DeliveryTimeoutSeconds != 3 || !got.AllowHTTP || !got.AllowPrivateTargets {
		t.Errorf("timeout %v s, allow_http %v, allow_private_targets %v; want 3, true, true", got.DeliveryTimeoutSeconds, got.AllowHTTP, got.AllowPrivateTargets)
	}
	if len(got.RetryScheduleSeconds) != 3 || got.RetryScheduleSeconds[0] != 2 || got.RetryScheduleSeconds[1] != 60 || got.RetryScheduleSeconds[2] != 5400 {
		t.Errorf("retry_schedule_seconds %v, want [2 60 5400]", got.RetryScheduleSeconds)
	}
	if got.MaxAttempts != 4 || got.RetryWindowSeconds != 5462 {
		t.Errorf("max_attempts %d, retry_window_seconds %v; want 4 and 5462", got.MaxAttempts, got.RetryWindowSeconds)
	}
	if got.MaxBodyBytes != api.MaxBodyBytes || got.InspectorMaxBodyBytes != inspector.MaxBodyBytes || got.Version != "test" {
		t.Errorf("body limits %d/%d, version %q", got.MaxBodyBytes, got.InspectorMaxBodyBytes, got.Version)
	}
}

func TestSettingsDefaultsRefuseHTTPAndPrivateTargets(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	got := mustJSON[api.Settings](t, e.get("/api/v1/settings"), http.StatusOK)
	if got.DeliveryTimeoutSeconds != 10 || got.AllowHTTP || got.AllowPrivateTargets || got.MaxAttempts != 1 || len(got.RetryScheduleSeconds) != 0 {
		t.Errorf("settings %+v", got)
	}
	if r := e.do(req{method: "GET", path: "/api/v1/settings", noAuth: true}); r.status != http.StatusUnauthorized {
		t.Errorf("without a token: %s", r)
	}
}

func TestSessionProbeAnswersNotLoggedInWithoutA401(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	cookie := login(t, e, adminToken)
	e.run(t, []apiCase{
		{name: "no credential", req: req{method: "GET", path: "/api/v1/session", noAuth: true}, status: 200,
			fields: map[string]any{"authenticated": false, "method": ""}},
		{name: "session cookie that is not valid", req: req{method: "GET", path: "/api/v1/session", noAuth: true,
			headers: map[string]string{"Cookie": "hookrelay_session=0123456789abcdef"}}, status: 200, fields: map[string]any{"authenticated": false}},
		{name: "valid cookie", req: req{method: "GET", path: "/api/v1/session", noAuth: true,
			headers: map[string]string{"Cookie": cookie}}, status: 200, fields: map[string]any{"authenticated": true, "method": "session"}},
		{name: "valid token", req: req{method: "GET", path: "/api/v1/session"}, status: 200,
			fields: map[string]any{"authenticated": true, "method": "token"}},
		{name: "wrong token is still refused", req: req{method: "GET", path: "/api/v1/session", noAuth: true,
			headers: map[string]string{"Authorization": "Bearer wrong-token-0123456789abcdef"}}, status: 401},
		{name: "wrong token next to a valid cookie is refused", req: req{method: "GET", path: "/api/v1/session", noAuth: true,
			headers: map[string]string{"Authorization": "Bearer wrong-token-0123456789abcdef", "Cookie": cookie}}, status: 401},
	})
}
