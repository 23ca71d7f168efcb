package api_test

import (
	"net/http"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gin-gonic/gin"
)

const indexHTML = `<!doctype html><html><head><title>Hookrelay</title></head><body><div id="app"></div></body></html>`

func testUI() fstest.MapFS {
	return fstest.MapFS{
		"index.html":            {Data: []byte(indexHTML)},
		"favicon.svg":           {Data: []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`)},
		"assets/index-abc12.js": {Data: []byte(`console.log("hookrelay")`)},
	}
}

func TestHealthAndRouting(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	e.run(t, []apiCase{
		{name: "healthz", req: req{method: "GET", path: "/healthz", noAuth: true}, status: 200, fields: map[string]any{"status": "ok"}},
		{name: "readyz", req: req{method: "GET", path: "/readyz", noAuth: true}, status: 200, fields: map[string]any{"status": "ready"}},
		{name: "API responses are nosniff", req: req{method: "GET", path: "/api/v1/webhooks"}, status: 200, check: func(t *testing.T, r resp) {
			if r.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("X-Content-Type-Options %q", r.header.Get("X-Content-Type-Options"))
			}
		}},
		{name: "unknown API route", req: req{method: "GET", path: "/api/v1/x"}, status: 404},
		{name: "unknown API route without token", req: req{method: "GET", path: "/api/v1/x", noAuth: true}, status: 404},
		{name: "unknown API version", req: req{method: "GET", path: "/api/v2/webhooks"}, status: 404},
		{name: "wrong method", req: req{method: "PUT", path: "/api/v1/webhooks", body: validHook}, status: 405,
			check: func(t *testing.T, r resp) {
				if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
					t.Errorf("Allow = %q", allow)
				}
			}},
		{name: "wrong method on an item", req: req{method: "POST", path: "/api/v1/webhooks/wh_x"}, status: 405},
		{name: "wrong method on healthz", req: req{method: "DELETE", path: "/healthz"}, status: 405},
		{name: "no UI built: placeholder", req: req{method: "GET", path: "/", noAuth: true}, status: 200, contains: []string{"Hookrelay is running"}},
	})
}

func TestReadyzFailsWithoutDatabase(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	checkCase(t, apiCase{status: http.StatusServiceUnavailable}, e.do(req{method: "GET", path: "/readyz", noAuth: true}))
	checkCase(t, apiCase{status: http.StatusOK}, e.do(req{method: "GET", path: "/healthz", noAuth: true}))
}

func TestServesUIWithHistoryFallback(t *testing.T) {
	e := newEnv(t, withoutDispatcher(), withUI(testUI()))
	isIndex := func(t *testing.T, r resp) {
		t.Helper()
		if string(r.body) != indexHTML {
			t.Errorf("body is not index.html: %.200s", r.body)
		}
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("Content-Type %q", ct)
		}
		if r.header.Get("Cache-Control") != "no-cache" {
			t.Errorf("index.html Cache-Control %q, want no-cache so new builds load", r.header.Get("Cache-Control"))
		}
	}
	secured := func(t *testing.T, r resp) {
		t.Helper()
		csp := r.header.Get("Content-Security-Policy")
		for _, d := range []string{"default-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
			if !strings.Contains(csp, d) {
				t.Errorf("CSP %q lacks %s", csp, d)
			}
		}
		// Sockets reach this origin only: a bare "ws:" or "wss:" source would allow any host.
		connect := ""
		for _, d := range strings.Split(csp, ";") {
			if d = strings.TrimSpace(d); strings.HasPrefix(d, "connect-src ") {
				connect = d
			}
		}
		if want := "connect-src 'self' ws://" + strings.TrimPrefix(e.srv.BaseURL, "http://") + " wss://" + strings.TrimPrefix(e.srv.BaseURL, "http://"); connect != want {
			t.Errorf("CSP %s, want %s", connect, want)
		}
		if r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("X-Content-Type-Options %q", r.header.Get("X-Content-Type-Options"))
		}
	}
	both := func(t *testing.T, r resp) { t.Helper(); isIndex(t, r); secured(t, r) }
	e.run(t, []apiCase{
		{name: "root", req: req{method: "GET", path: "/", noAuth: true}, status: 200, check: both},
		{name: "index.html", req: req{method: "GET", path: "/index.html", noAuth: true}, status: 200, check: both},
		{name: "client route", req: req{method: "GET", path: "/some/client/route", noAuth: true}, status: 200, check: both},
		{name: "client route with id", req: req{method: "GET", path: "/webhooks/wh_0190c3f1", noAuth: true}, status: 200, check: both},
		{name: "client route with query", req: req{method: "GET", path: "/events?event=message.received", noAuth: true}, status: 200, check: both},
		{name: "asset", req: req{method: "GET", path: "/assets/index-abc12.js", noAuth: true}, status: 200,
			contains: []string{`console.log("hookrelay")`}, check: func(t *testing.T, r resp) {
				secured(t, r)
				if !strings.Contains(r.header.Get("Cache-Control"), "immutable") {
					t.Errorf("hashed asset Cache-Control %q", r.header.Get("Cache-Control"))
				}
			}},
		{name: "favicon", req: req{method: "GET", path: "/favicon.svg", noAuth: true}, status: 200, contains: []string{"<svg"}},
		{name: "missing asset", req: req{method: "GET", path: "/assets/missing.js", noAuth: true}, status: 404},
		{name: "missing file at root", req: req{method: "GET", path: "/robots.txt", noAuth: true}, status: 404},
		{name: "path traversal", req: req{method: "GET", path: "/assets/../../go.mod", noAuth: true}, status: 404},
		{name: "POST to a client route", req: req{method: "POST", path: "/some/client/route", noAuth: true, body: `{}`}, status: 404},
		{name: "API stays JSON", req: req{method: "GET", path: "/api/v1/nothing-here"}, status: 404},
	})
	r := e.do(req{method: "HEAD", path: "/", noAuth: true})
	if r.status != http.StatusOK || len(r.body) != 0 {
		t.Errorf("HEAD /: %s", r)
	}
}

func TestPanicInHandlerAnswers500AndServerKeepsServing(t *testing.T) {
	e := newEnv(t, withoutDispatcher(), withExtra(func(r *gin.Engine, authed *gin.RouterGroup) {
		r.GET("/test/panic", func(*gin.Context) { panic("boom") })
		authed.POST("/test/panic", func(*gin.Context) { panic(http.ErrNotSupported) })
	}))
	for range 3 {
		r := e.do(req{method: "GET", path: "/test/panic", noAuth: true})
		checkCase(t, apiCase{status: http.StatusInternalServerError, absent: []string{"boom", "goroutine"}}, r)
		r = e.do(req{method: "POST", path: "/api/v1/test/panic", body: `{}`})
		checkCase(t, apiCase{status: http.StatusInternalServerError, absent: []string{"not supported"}}, r)
	}
	e.healthy()
}

// TestGarbageNeverCauses5xx sends malformed bodies to every write route under /api/v1, with
// both an unknown and a real id, and expects a problem below 500 every time.
func TestGarbageNeverCauses5xx(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	hook := e.createWebhook(validHook)
	bodies := []struct{ name, body, ctype string }{
		{"truncated", `{"name":`, "application/json"},
		{"array", `[]`, "application/json"},
		{"null", `null`, "application/json"},
		{"deep nesting", strings.Repeat("[", 100000), "application/json"},
		{"invalid UTF-8", "{\"name\":\"\xff\xfe\"}", "application/json"},
		{"NUL bytes", "{\"name\":\"a\x00b\"}", "application/json"},
		{"wrong types everywhere", `{"name":[],"url":{},"events":"x","event":[],"data":1,"since":{},"token":[],"secret":1,"response":"x","webhook_id":5}`, "application/json"},
		{"huge number", `{"name":1e999999}`, "application/json"},
		{"binary", "\x00\x01\x02\x03", "application/octet-stream"},
		{"over the limit", `{"name":"` + strings.Repeat("x", 1<<20+10) + `"}`, "application/json"},
	}
	for _, rt := range e.router.Routes() {
		if !strings.HasPrefix(rt.Path, "/api/v1/") || (rt.Method != http.MethodPost && rt.Method != http.MethodPatch) {
			continue
		}
		for _, id := range []string{"x", hook.ID} {
			path := strings.ReplaceAll(concretePath(rt.Path), "/x", "/"+id)
			for _, b := range bodies {
				t.Run(rt.Method+" "+path+" "+b.name, func(t *testing.T) {
					r := e.withT(t).do(req{method: rt.Method, path: path, body: b.body, headers: map[string]string{"Content-Type": b.ctype}})
					if r.status >= 500 {
						t.Fatalf("server error: %s", r)
					}
					if r.status >= 400 {
						checkProblem(t, r, r.status)
					}
				})
			}
		}
	}
	e.healthy()
}
