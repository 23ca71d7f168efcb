package inspector_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/hookrelay/hookrelay/api"
	"github.com/hookrelay/hookrelay/inspector"
	"github.com/hookrelay/hookrelay/internal/apivalidate"
	"github.com/hookrelay/hookrelay/internal/testsrv"
	"github.com/hookrelay/hookrelay/internal/wait"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

const adminToken = testsrv.AdminToken

type envOptions struct {
	dbPath       string
	rate         float64
	refusedHold  time.Duration // 0: 10 ms, so tests that meet the limit do not wait a second each
	maxHeld      int
	allowPrivate bool
	dispatch     bool // run the delivery loop (published events are sent)
	hub          inspector.HubConfig
	connState    func(net.Conn, http.ConnState)
}

// env is the whole server (API, receiver, sender) on a real socket and a real database
// (internal/testsrv, wired by app.New as main.go wires it), started with no --allow-http and
// no --allow-private-targets unless asked.
type env struct {
	t         *testing.T
	srv       *testsrv.Server
	store     *store.Store
	insp      *inspector.Inspector
	hub       *inspector.Hub
	publicURL string
	client    *http.Client
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	if o.refusedHold == 0 {
		o.refusedHold = 10 * time.Millisecond
	}
	srv := testsrv.Start(t, testsrv.Options{DBPath: o.dbPath, InspectorRate: o.rate, AllowPrivate: o.allowPrivate,
		RefusedHold: o.refusedHold, MaxHeld: o.maxHeld,
		Timeout: 10 * time.Second, RetrySchedule: []time.Duration{time.Hour}, Workers: 4, NoDispatch: !o.dispatch,
		Hub: o.hub, ConnState: o.connState, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	// Every exchange is checked against openapi/openapi.json (see internal/apivalidate).
	client := &http.Client{Transport: apivalidate.Transport(t, &http.Transport{}), Timeout: 60 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	return &env{t: t, srv: srv, store: srv.Store, insp: srv.Inspector, hub: srv.Hub, publicURL: srv.PublicURL, client: client}
}

// stop shuts the server down as main.go does (WebSocket clients are told goodbye).
func (e *env) stop() { e.srv.Stop(e.t) }

// do sends an API request with the admin token and decodes a JSON answer into out (if not nil).
func (e *env) do(method, path string, body any, out any) *http.Response {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatalf("encode body: %v", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.publicURL+path, rd)
	if err != nil {
		e.t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("read %s %s: %v", method, path, err)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	return resp
}

// must is do that fails the test unless the status is want.
func (e *env) must(want int, method, path string, body any, out any) {
	e.t.Helper()
	resp := e.do(method, path, body, out)
	if resp.StatusCode != want {
		raw, _ := io.ReadAll(resp.Body)
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, raw)
	}
}

// send makes a raw request to a receiver URL and returns the status and body.
func (e *env) send(method, url string, header http.Header, body []byte) (int, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		e.t.Fatalf("new request: %v", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

func (e *env) createBin(body map[string]any) api.Bin {
	e.t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	var b api.Bin
	e.must(http.StatusCreated, "POST", "/api/v1/inspector/bins", body, &b)
	return b
}

// captures lists a bin's captures (summaries) and reads each whole.
func (e *env) captures(binID string) []inspector.Capture {
	e.t.Helper()
	var out []inspector.Capture
	for _, s := range e.summaries(binID) {
		out = append(out, e.whole(binID, s.ID))
	}
	return out
}

func (e *env) summaries(binID string) []inspector.CaptureSummary {
	e.t.Helper()
	var out api.List[inspector.CaptureSummary]
	e.must(http.StatusOK, "GET", "/api/v1/inspector/bins/"+binID+"/requests?limit=200", nil, &out)
	return out.Data
}

// whole reads one capture whole: headers and the full body.
func (e *env) whole(binID, id string) inspector.Capture {
	e.t.Helper()
	var c inspector.Capture
	e.must(http.StatusOK, "GET", "/api/v1/inspector/bins/"+binID+"/requests/"+id, nil, &c)
	return c
}

// dial opens the bin's WebSocket with the admin token, as a script would.
func (e *env) dial(binID string) *websocket.Conn {
	e.t.Helper()
	conn, resp, err := e.dialWith(binID, http.Header{"Authorization": {"Bearer " + adminToken}})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		e.t.Fatalf("dial ws: %v (status %d)", err, status)
	}
	e.t.Cleanup(func() { conn.Close() })
	return conn
}

func (e *env) dialWith(binID string, h http.Header) (*websocket.Conn, *http.Response, error) {
	u := "ws" + strings.TrimPrefix(e.publicURL, "http") + "/api/v1/inspector/bins/" + binID + "/ws"
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.Dial(u, h)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	return conn, resp, err
}

// next reads one capture message from the socket, with a generous deadline.
func next(t *testing.T, conn *websocket.Conn) inspector.CaptureSummary {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	var msg struct {
		Type string                   `json:"type"`
		Data inspector.CaptureSummary `json:"data"`
	}
	if err := conn.ReadJSON(&msg); err != nil {
		t.Fatalf("read ws message: %v", err)
	}
	if msg.Type != "request" {
		t.Fatalf("message type %q, want request", msg.Type)
	}
	return msg.Data
}

// waitClients waits until the bin has n live WebSocket clients. The server registers a client
// just after the handshake, so a test must wait before publishing.
func (e *env) waitClients(binID string, n int) {
	e.t.Helper()
	wait.Until(e.t, "the bin has the expected WebSocket clients", func() bool { return e.hub.Clients(binID) == n })
}

func sampleBody(t *testing.T, event string) []byte {
	t.Helper()
	et, ok := models.LookupEventType(event)
	if !ok {
		t.Fatalf("unknown event %q", event)
	}
	return et.Example(time.Now().UTC())
}
