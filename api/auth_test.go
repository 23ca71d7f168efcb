package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/models"
)

// concretePath fills a route pattern's parameters with a placeholder.
func concretePath(pattern string) string {
	parts := strings.Split(pattern, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") || strings.HasPrefix(p, "*") {
			parts[i] = "x"
		}
	}
	return strings.Join(parts, "/")
}

func TestEveryAPIRouteRequiresAToken(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	n := 0
	for _, rt := range e.router.Routes() {
		if !strings.HasPrefix(rt.Path, "/api/v1/") || (rt.Method == http.MethodPost && rt.Path == "/api/v1/session") {
			continue
		}
		n++
		path := concretePath(rt.Path)
		for _, c := range []struct {
			name    string
			headers map[string]string
		}{
			{"no token", nil},
			{"wrong token", map[string]string{"Authorization": "Bearer wrong-token-0123456789abcdef"}},
			{"not bearer", map[string]string{"Authorization": "Basic " + adminToken}},
			{"empty bearer", map[string]string{"Authorization": "Bearer "}},
			{"unknown session cookie", map[string]string{"Cookie": "hookrelay_session=0123456789abcdef"}},
		} {
			if rt.Method == http.MethodGet && rt.Path == "/api/v1/session" && !strings.HasPrefix(c.headers["Authorization"], "Bearer") {
				continue // the session probe answers "not logged in" instead (TestSessionProbe…)
			}
			t.Run(rt.Method+" "+rt.Path+" "+c.name, func(t *testing.T) {
				r := e.withT(t).do(req{method: rt.Method, path: path, noAuth: true, headers: c.headers, body: bodyFor(rt.Method)})
				checkCase(t, apiCase{status: http.StatusUnauthorized}, r)
				if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
				}
			})
		}
	}
	if n < 20 {
		t.Fatalf("only %d /api/v1 routes found; the router changed shape", n)
	}
}

func bodyFor(method string) string {
	if method == http.MethodPost || method == http.MethodPatch {
		return `{}`
	}
	return ""
}

func TestAdminTokenIsAccepted(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	e.run(t, []apiCase{
		{name: "list webhooks", req: req{method: "GET", path: "/api/v1/webhooks"}, status: 200, fields: map[string]any{"next_cursor": nil}},
		{name: "session says token", req: req{method: "GET", path: "/api/v1/session"}, status: 200,
			fields: map[string]any{"authenticated": true, "method": "token"}},
		{name: "event types", req: req{method: "GET", path: "/api/v1/event-types"}, status: 200,
			contains: []string{`"conversation.started"`, `"message.received"`, `"schema"`, `"example"`}},
		{name: "the scheme is case-insensitive", req: req{method: "GET", path: "/api/v1/webhooks",
			headers: map[string]string{"Authorization": "bearer " + adminToken}}, status: 200},
		{name: "surrounding spaces in the header are tolerated", req: req{method: "GET", path: "/api/v1/webhooks",
			headers: map[string]string{"Authorization": "Bearer  " + adminToken + " "}}, status: 200},
	})
}

func TestAPIKeyLifecycle(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	created := mustJSON[struct {
		ID, Name, Prefix, Token string
	}](t, e.post("/api/v1/api-keys", `{"name":"  chat backend  "}`), http.StatusCreated)
	if created.Name != "chat backend" || !strings.HasPrefix(created.Token, "hr_") || len(created.Token) < 40 {
		t.Fatalf("created key %+v", created)
	}
	if !strings.HasPrefix(created.Token, created.Prefix) || len(created.Prefix) >= len(created.Token)/2 {
		t.Fatalf("prefix %q does not abbreviate token", created.Prefix)
	}

	// The token is shown once: never in the list, never stored in clear.
	l := e.get("/api/v1/api-keys")
	checkCase(t, apiCase{status: 200, contains: []string{created.ID, created.Prefix, `"last_used_at"`},
		absent: []string{created.Token, `"token"`}}, l)
	var rows []map[string]any
	if err := e.store.ScanSQL(t.Context(), &rows, `SELECT * FROM api_keys`); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("%d api_keys rows", len(rows))
	}
	for col, v := range rows[0] {
		if s, ok := v.(string); ok && strings.Contains(s, created.Token) {
			t.Errorf("api_keys.%s holds the token", col)
		}
	}
	if rows[0]["hash"] != models.HashToken(created.Token) {
		t.Errorf("api_keys.hash = %v, want the token's SHA-256", rows[0]["hash"])
	}

	// The key works as a bearer token, and using it is recorded.
	r := e.do(req{method: "GET", path: "/api/v1/webhooks", token: created.Token})
	if r.status != http.StatusOK {
		t.Fatalf("API key rejected: %s", r)
	}
	if got := field(t, e.get("/api/v1/api-keys").body, "data.0.last_used_at"); got == nil {
		t.Errorf("last_used_at not recorded")
	}

	e.run(t, []apiCase{
		{name: "create without name", req: req{method: "POST", path: "/api/v1/api-keys", body: `{}`}, status: 422, problemField: "name"},
		{name: "create with blank name", req: req{method: "POST", path: "/api/v1/api-keys", body: `{"name":"   "}`}, status: 422, problemField: "name"},
		{name: "create with long name", req: req{method: "POST", path: "/api/v1/api-keys", body: `{"name":"` + strings.Repeat("k", 101) + `"}`}, status: 422, problemField: "name"},
		{name: "create with unknown field", req: req{method: "POST", path: "/api/v1/api-keys", body: `{"name":"x","scope":"all"}`}, status: 422, problemField: "scope"},
		{name: "revoke unknown", req: req{method: "DELETE", path: "/api/v1/api-keys/key_nope"}, status: 404},
	})

	if r := e.do(req{method: "DELETE", path: "/api/v1/api-keys/" + created.ID}); r.status != http.StatusNoContent {
		t.Fatalf("revoke: %s", r)
	}
	r = e.do(req{method: "GET", path: "/api/v1/webhooks", token: created.Token})
	checkCase(t, apiCase{status: http.StatusUnauthorized}, r)
	if r := e.do(req{method: "DELETE", path: "/api/v1/api-keys/" + created.ID}); r.status != http.StatusNotFound {
		t.Fatalf("second revoke: %s", r)
	}
}

// setCookie returns the raw Set-Cookie header that sets the session cookie (not one that
// expires an old one).
func setCookie(t *testing.T, r resp) string {
	t.Helper()
	for _, v := range r.header.Values("Set-Cookie") {
		if strings.HasPrefix(v, "hookrelay_session=") && !strings.HasPrefix(v, "hookrelay_session=;") {
			return v
		}
	}
	t.Fatalf("no session cookie set: %v", r.header)
	return ""
}

func login(t *testing.T, e *env, token string) string {
	t.Helper()
	r := e.do(req{method: "POST", path: "/api/v1/session", noAuth: true, body: `{"token":"` + token + `"}`})
	if r.status != http.StatusNoContent {
		t.Fatalf("login: %s", r)
	}
	raw := setCookie(t, r)
	value, _, _ := strings.Cut(strings.TrimPrefix(raw, "hookrelay_session="), ";")
	if value == "" || strings.Contains(value, token) {
		t.Fatalf("bad session cookie value %q", value)
	}
	return "hookrelay_session=" + value
}

func TestSessionCookieAttributes(t *testing.T) {
	for _, c := range []struct {
		name   string
		opts   []envOption
		secure bool
	}{
		{"http public URL", nil, false},
		{"https public URL", []envOption{withHTTPSPublicURL()}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, append(c.opts, withoutDispatcher())...)
			r := e.do(req{method: "POST", path: "/api/v1/session", noAuth: true, body: `{"token":"` + adminToken + `"}`})
			if r.status != http.StatusNoContent {
				t.Fatalf("login: %s", r)
			}
			raw := setCookie(t, r)
			// Scoped to the API: a bin URL (/inspect/…) never receives the admin's session.
			for _, attr := range []string{"HttpOnly", "SameSite=Strict", "Path=/api/;"} {
				if !strings.Contains(raw, attr) {
					t.Errorf("cookie %q lacks %s", raw, attr)
				}
			}
			if got := strings.Contains(raw, "Secure"); got != c.secure {
				t.Errorf("cookie %q: Secure = %v, want %v", raw, got, c.secure)
			}
		})
	}
}

func TestSessionCookieAuthAndCSRF(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	cookie := login(t, e, adminToken)
	host := strings.TrimPrefix(e.srv.BaseURL, "http://")
	create := `{"name":"x","url":"https://example.com/h","events":["message.received"]}`
	e.run(t, []apiCase{
		{name: "GET with cookie", req: req{method: "GET", path: "/api/v1/webhooks", noAuth: true,
			headers: map[string]string{"Cookie": cookie}}, status: 200},
		{name: "session reports cookie", req: req{method: "GET", path: "/api/v1/session", noAuth: true,
			headers: map[string]string{"Cookie": cookie}}, status: 200, fields: map[string]any{"method": "session"}},
		{name: "POST with cookie but no X-Requested-With", req: req{method: "POST", path: "/api/v1/webhooks", noAuth: true, body: create,
			headers: map[string]string{"Cookie": cookie}}, status: 403},
		{name: "DELETE with cookie but no X-Requested-With", req: req{method: "DELETE", path: "/api/v1/api-keys/key_x", noAuth: true,
			headers: map[string]string{"Cookie": cookie}}, status: 403},
		{name: "POST with cookie from another origin", req: req{method: "POST", path: "/api/v1/webhooks", noAuth: true, body: create,
			headers: map[string]string{"Cookie": cookie, "X-Requested-With": "fetch", "Origin": "https://evil.example"}}, status: 403},
		{name: "POST with cookie cross-site fetch metadata", req: req{method: "POST", path: "/api/v1/webhooks", noAuth: true, body: create,
			headers: map[string]string{"Cookie": cookie, "X-Requested-With": "fetch", "Sec-Fetch-Site": "cross-site"}}, status: 403},
		{name: "POST with cookie and X-Requested-With", req: req{method: "POST", path: "/api/v1/webhooks", noAuth: true, body: create,
			headers: map[string]string{"Cookie": cookie, "X-Requested-With": "fetch"}}, status: 201},
		{name: "POST with cookie, X-Requested-With and same Origin", req: req{method: "POST", path: "/api/v1/webhooks", noAuth: true, body: create,
			headers: map[string]string{"Cookie": cookie, "X-Requested-With": "fetch", "Origin": "http://" + host, "Sec-Fetch-Site": "same-origin"}}, status: 201},
		{name: "login with a wrong token", req: req{method: "POST", path: "/api/v1/session", noAuth: true, body: `{"token":"nope-nope-nope-nope"}`},
			status: 401, problemField: "token"},
		{name: "login without token", req: req{method: "POST", path: "/api/v1/session", noAuth: true, body: `{}`}, status: 422, problemField: "token"},
		{name: "login with a number", req: req{method: "POST", path: "/api/v1/session", noAuth: true, body: `{"token":5}`}, status: 422, problemField: "token"},
		{name: "login as a form", req: req{method: "POST", path: "/api/v1/session", noAuth: true, body: `token=x`,
			headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, status: 415},
	})

	// Logging out invalidates the cookie server-side, not only in the browser.
	r := e.do(req{method: "DELETE", path: "/api/v1/session", noAuth: true,
		headers: map[string]string{"Cookie": cookie, "X-Requested-With": "fetch"}})
	if r.status != http.StatusNoContent {
		t.Fatalf("logout: %s", r)
	}
	cleared := map[string]bool{}
	for _, v := range r.header.Values("Set-Cookie") {
		if strings.HasPrefix(v, "hookrelay_session=;") && strings.Contains(v, "Max-Age=0") {
			_, path, _ := strings.Cut(v, "Path=")
			path, _, _ = strings.Cut(path, ";")
			cleared[path] = true
		}
	}
	// The API-scoped cookie, and the Path=/ one an earlier version set.
	if !cleared["/api/"] || !cleared["/"] {
		t.Errorf("logout clears the session cookie on paths %v, want / and /api/", cleared)
	}
	r = e.do(req{method: "GET", path: "/api/v1/webhooks", noAuth: true, headers: map[string]string{"Cookie": cookie}})
	checkCase(t, apiCase{status: http.StatusUnauthorized}, r)
}

func TestSessionEndsWhenItsAPIKeyIsRevoked(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	key := mustJSON[struct{ ID, Token string }](t, e.post("/api/v1/api-keys", `{"name":"ui"}`), http.StatusCreated)
	keyCookie := login(t, e, key.Token)
	adminCookie := login(t, e, adminToken)
	for _, c := range []string{keyCookie, adminCookie} {
		if r := e.do(req{method: "GET", path: "/api/v1/webhooks", noAuth: true, headers: map[string]string{"Cookie": c}}); r.status != 200 {
			t.Fatalf("cookie rejected before revoke: %s", r)
		}
	}
	if r := e.do(req{method: "DELETE", path: "/api/v1/api-keys/" + key.ID}); r.status != http.StatusNoContent {
		t.Fatalf("revoke: %s", r)
	}
	r := e.do(req{method: "GET", path: "/api/v1/webhooks", noAuth: true, headers: map[string]string{"Cookie": keyCookie}})
	checkCase(t, apiCase{status: http.StatusUnauthorized}, r)
	if r := e.do(req{method: "GET", path: "/api/v1/webhooks", noAuth: true, headers: map[string]string{"Cookie": adminCookie}}); r.status != 200 {
		t.Fatalf("an unrelated session ended with the key: %s", r)
	}
}
