package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hookrelay/hookrelay/api"
	"github.com/hookrelay/hookrelay/internal/apivalidate"
	"github.com/hookrelay/hookrelay/internal/testsrv"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

const adminToken = testsrv.AdminToken

// envOptions changes how newEnv builds the server.
type envOptions struct {
	allowHTTP    bool
	allowPrivate bool
	https        bool // public URL uses https:// (cookie Secure flag)
	noDispatch   bool // deliveries stay pending: nothing claims them
	ui           fs.FS
	extra        []func(r *gin.Engine, authed *gin.RouterGroup)
	signIn       api.SignInLimits
	proxies      []string
	autoDisable  time.Duration
	dbPath       string          // reuse a database file (a restart)
	timeout      time.Duration   // --delivery-timeout; 0: 10 s
	schedule     []time.Duration // --retry-schedule; nil: a single attempt
}

type envOption func(*envOptions)

// withLocalTargets lets webhooks point at httptest receivers on 127.0.0.1.
func withLocalTargets() envOption {
	return func(o *envOptions) { o.allowHTTP, o.allowPrivate = true, true }
}

// withDelivery sets the delivery timeout and retry schedule, as the flags would.
func withDelivery(timeout time.Duration, schedule ...time.Duration) envOption {
	return func(o *envOptions) { o.timeout, o.schedule = timeout, schedule }
}

func withoutDispatcher() envOption { return func(o *envOptions) { o.noDispatch = true } }

func withUI(ui fs.FS) envOption { return func(o *envOptions) { o.ui = ui } }

func withSignInLimits(l api.SignInLimits, trustedProxies ...string) envOption {
	return func(o *envOptions) { o.signIn, o.proxies = l, trustedProxies }
}

// withAutoDisable sets --auto-disable-after.
func withAutoDisable(d time.Duration) envOption { return func(o *envOptions) { o.autoDisable = d } }

// withDB reopens an earlier env's database: a restart.
func withDB(path string) envOption { return func(o *envOptions) { o.dbPath = path } }

func withHTTPSPublicURL() envOption { return func(o *envOptions) { o.https = true } }

func withExtra(f func(r *gin.Engine, authed *gin.RouterGroup)) envOption {
	return func(o *envOptions) { o.extra = append(o.extra, f) }
}

// env is one Hookrelay (a single attempt per delivery: no retry schedule) served over a real socket (internal/testsrv, wired by app.New as
// main.go wires it), on its own database, with a running dispatcher (unless withoutDispatcher).
type env struct {
	t         *testing.T
	srv       *testsrv.Server
	store     *store.Store
	dbPath    string
	publicURL string
	router    *gin.Engine
	client    *http.Client
}

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	o := envOptions{}
	for _, f := range opts {
		f(&o)
	}
	if o.timeout == 0 {
		o.timeout = 10 * time.Second
	}
	if o.schedule == nil {
		o.schedule = []time.Duration{}
	}
	srv := testsrv.Start(t, testsrv.Options{AllowHTTP: o.allowHTTP, AllowPrivate: o.allowPrivate, Timeout: o.timeout,
		RetrySchedule: o.schedule, Workers: 8, InspectorRate: 50, NoDispatch: o.noDispatch,
		PublicHTTPS: o.https, UI: o.ui, Extra: o.extra, SignInLimits: o.signIn, TrustedProxies: o.proxies,
		AutoDisableAfter: o.autoDisable, DBPath: o.dbPath, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return &env{t: t, srv: srv, store: srv.Store, dbPath: srv.DBPath, publicURL: srv.PublicURL, router: srv.Router,
		// Every exchange is checked against openapi/openapi.json: a handler that drifts from
		// its documentation fails the test that exercised it.
		client: &http.Client{Timeout: 30 * time.Second, Transport: apivalidate.Transport(t, nil)}}
}

// req is one HTTP request to the server under test.
type req struct {
	method  string
	path    string
	body    string
	headers map[string]string
	noAuth  bool // send no Authorization header
	token   string
}

// resp is what the server answered.
type resp struct {
	status  int
	header  http.Header
	body    []byte
	cookies []*http.Cookie
}

func (r resp) String() string { return fmt.Sprintf("%d %s", r.status, r.body) }

// do sends r with the admin token unless r says otherwise; a JSON body gets application/json.
func (e *env) do(r req) resp {
	e.t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr, err := http.NewRequest(r.method, e.srv.BaseURL+r.path, body)
	if err != nil {
		e.t.Fatalf("build request: %v", err)
	}
	if r.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	if !r.noAuth {
		tok := r.token
		if tok == "" {
			tok = adminToken
		}
		hr.Header.Set("Authorization", "Bearer "+tok)
	}
	for k, v := range r.headers {
		if v == "" {
			hr.Header.Del(k)
			continue
		}
		hr.Header.Set(k, v)
	}
	res, err := e.client.Do(hr)
	if err != nil {
		e.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("read %s %s: %v", r.method, r.path, err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b, cookies: res.Cookies()}
}

func (e *env) get(path string) resp { e.t.Helper(); return e.do(req{method: "GET", path: path}) }

func (e *env) post(path, body string) resp {
	e.t.Helper()
	return e.do(req{method: "POST", path: path, body: body})
}

// mustJSON decodes a response body that must have the wanted status.
func mustJSON[T any](t *testing.T, r resp, status int) T {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return v
}

// field reads a dotted path ("errors.0.field") out of a JSON document.
func field(t *testing.T, body []byte, path string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, body)
	}
	for _, part := range strings.Split(path, ".") {
		switch cur := v.(type) {
		case map[string]any:
			next, ok := cur[part]
			if !ok {
				return nil
			}
			v = next
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(cur) {
				return nil
			}
			v = cur[i]
		default:
			return nil
		}
	}
	return v
}

// apiCase is one row of a table of API scenarios.
type apiCase struct {
	name   string
	req    req
	status int
	// contains and absent are substrings of the body.
	contains []string
	absent   []string
	// fields are dotted JSON paths and their expected values (numbers as float64).
	fields map[string]any
	// problemField: the body is a problem whose errors name this field.
	problemField string
	check        func(t *testing.T, r resp)
}

func (e *env) run(t *testing.T, cases []apiCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Helper()
			r := e.withT(t).do(tc.req)
			checkCase(t, tc, r)
		})
	}
}

func checkCase(t *testing.T, tc apiCase, r resp) {
	t.Helper()
	if r.status != tc.status {
		t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
	}
	for _, s := range tc.contains {
		if !bytes.Contains(r.body, []byte(s)) {
			t.Errorf("body lacks %q: %s", s, r.body)
		}
	}
	for _, s := range tc.absent {
		if bytes.Contains(r.body, []byte(s)) {
			t.Errorf("body contains %q: %s", s, r.body)
		}
	}
	for path, want := range tc.fields {
		if got := field(t, r.body, path); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %v, want %v (body %s)", path, got, want, r.body)
		}
	}
	if tc.status >= 400 {
		checkProblem(t, r, tc.status)
	}
	if tc.problemField != "" {
		checkProblemNames(t, r, tc.problemField)
	}
	if tc.check != nil {
		tc.check(t, r)
	}
}

// checkProblem asserts an RFC 9457 body with the given status.
func checkProblem(t *testing.T, r resp, status int) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var p struct {
		Type   *string `json:"type"`
		Title  *string `json:"title"`
		Status *int    `json:"status"`
		Detail *string `json:"detail"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body is not JSON: %v: %s", err, r.body)
	}
	if p.Type == nil || *p.Type == "" || p.Title == nil || *p.Title == "" || p.Detail == nil || *p.Detail == "" || p.Status == nil {
		t.Errorf("problem lacks type/title/status/detail: %s", r.body)
	} else if *p.Status != status {
		t.Errorf("problem status %d, want %d", *p.Status, status)
	}
}

// checkProblemNames asserts the problem's errors name field.
func checkProblemNames(t *testing.T, r resp, name string) {
	t.Helper()
	var p struct {
		Detail string              `json:"detail"`
		Errors []models.FieldError `json:"errors"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body is not JSON: %v: %s", err, r.body)
	}
	for _, e := range p.Errors {
		if e.Field == name {
			if e.Message == "" {
				t.Errorf("error for %s has no message: %s", name, r.body)
			}
			if !strings.Contains(p.Detail, name) {
				t.Errorf("detail does not name %s: %s", name, r.body)
			}
			return
		}
	}
	t.Errorf("problem does not name field %q: %s", name, r.body)
}

// withT returns a copy of e that reports to t (for subtests).
func (e *env) withT(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

// healthy asserts the server still answers normally.
func (e *env) healthy() {
	e.t.Helper()
	if r := e.get("/api/v1/webhooks"); r.status != http.StatusOK {
		e.t.Fatalf("server unhealthy after the case: %s", r)
	}
}

// webhookView is the API's webhook as tests read it.
type webhookView struct {
	ID             string   `json:"id"`
	Name           string   `json:"name"`
	URL            string   `json:"url"`
	Events         []string `json:"events"`
	Format         string   `json:"format"`
	Enabled        bool     `json:"enabled"`
	HasSecret      bool     `json:"has_secret"`
	DisabledReason *string  `json:"disabled_reason"`
	Secret         string   `json:"secret"`
}

type deliveryView struct {
	ID           string        `json:"id"`
	EventID      string        `json:"event_id"`
	WebhookID    string        `json:"webhook_id"`
	Event        string        `json:"event"`
	Status       string        `json:"status"`
	AttemptCount int           `json:"attempt_count"`
	Test         bool          `json:"test"`
	Spilled      bool          `json:"spilled"`
	Attempts     []attemptView `json:"attempts"`
}

type attemptView struct {
	ID             string            `json:"id"`
	Number         int               `json:"number"`
	Outcome        string            `json:"outcome"`
	ResponseStatus *int              `json:"response_status"`
	RequestHeaders map[string]string `json:"request_headers"`
	Error          *string           `json:"error"`
}

type list[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// createWebhook creates a webhook from a JSON body and returns it.
func (e *env) createWebhook(body string) webhookView {
	e.t.Helper()
	return mustJSON[webhookView](e.t, e.post("/api/v1/webhooks", body), http.StatusCreated)
}

// hookTo creates an enabled webhook for both events pointing at url.
func (e *env) hookTo(url string, extra string) webhookView {
	e.t.Helper()
	body := `{"name":"receiver","url":` + strconv.Quote(url) + `,"events":["conversation.started","message.received"]` + extra + `}`
	return e.createWebhook(body)
}

const conversationData = `{"conversation_id":123,"visitor_name":"John Doe","visitor_email":"john@example.com",` +
	`"visitor_phone":"+1234567890","visitor_ip":"192.168.1.100","current_url":"https://example.com/products","status":"open"}`

// publish publishes a conversation.started event and returns its id.
func (e *env) publish() string {
	e.t.Helper()
	r := e.post("/api/v1/events", `{"event":"conversation.started","data":`+conversationData+`}`)
	out := mustJSON[struct{ ID string }](e.t, r, http.StatusAccepted)
	return out.ID
}

// delivery reads one delivery with its attempts.
func (e *env) delivery(id string) deliveryView {
	e.t.Helper()
	return mustJSON[deliveryView](e.t, e.get("/api/v1/deliveries/"+id), http.StatusOK)
}

// deliveriesOf lists a webhook's deliveries.
func (e *env) deliveriesOf(webhookID string) []deliveryView {
	e.t.Helper()
	return mustJSON[list[deliveryView]](e.t, e.get("/api/v1/deliveries?webhook_id="+webhookID), http.StatusOK).Data
}

// captured is one request a receiver got.
type captured struct {
	header http.Header
	body   []byte
}

// receiver is an httptest endpoint that records what it gets and answers with the status its
// respond function picks (200 by default).
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	got     []captured
	respond func(n int) int // n is the 1-based request number
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, captured{header: r.Header.Clone(), body: b})
		n := len(rc.got)
		respond := rc.respond
		rc.mu.Unlock()
		status := http.StatusOK
		if respond != nil {
			status = respond(n)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"received":` + strconv.Itoa(n) + `}`))
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []captured {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]captured(nil), rc.got...)
}

func (rc *receiver) setRespond(f func(n int) int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.respond = f
}
