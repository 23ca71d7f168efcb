package cli

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/hookrelay/hookrelay/api"
	"github.com/hookrelay/hookrelay/inspector"
	"github.com/hookrelay/hookrelay/internal/testsrv"
	"github.com/hookrelay/hookrelay/internal/wait"
)

// startServer runs a real Hookrelay on 127.0.0.1 whose webhooks may point at its own bins.
func startServer(t *testing.T) *testsrv.Server {
	t.Helper()
	return testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true})
}

// buffer is an output the command writes from its goroutine while the test reads it.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// lines returns the complete lines written so far.
func (b *buffer) lines() []string {
	s := b.String()
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return strings.Split(s[:i], "\n")
	}
	return nil
}

// cmdEnv is an Env with captured output and only the given environment variables.
type cmdEnv struct {
	Env
	out, errOut *buffer
}

func newEnv(vars map[string]string, stdin string) cmdEnv {
	out, errOut := &buffer{}, &buffer{}
	return cmdEnv{Env: Env{Stdin: strings.NewReader(stdin), Stdout: out, Stderr: errOut,
		Getenv: func(k string) string { return vars[k] }}, out: out, errOut: errOut}
}

// serverEnv points the commands at s through the environment, as a user would.
func serverEnv(baseURL string) cmdEnv {
	return newEnv(map[string]string{"HOOKRELAY_URL": baseURL, "HOOKRELAY_TOKEN": testsrv.AdminToken}, "")
}

// running is a listen command running in the background.
type running struct {
	cmdEnv
	cancel context.CancelFunc
	code   chan int
}

func startListen(t *testing.T, e cmdEnv, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cmdEnv: e, cancel: cancel, code: make(chan int, 1)}
	go func() { r.code <- listen(ctx, e.Env, args) }()
	t.Cleanup(func() {
		cancel()
		<-r.code
	})
	wait.Until(t, "listen is connected", func() bool { return strings.Contains(e.errOut.String(), "Ctrl-C to stop") })
	return r
}

// stop is Ctrl-C: listen must return 0 and say it stopped.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	if code := <-r.code; code != 0 {
		t.Fatalf("listen exited %d after cancel, want 0; stderr:\n%s", code, r.errOut)
	}
	r.code <- 0 // for the cleanup
	if !strings.Contains(r.errOut.String(), "hookrelay listen: stopped") {
		t.Fatalf("no stop message; stderr:\n%s", r.errOut)
	}
}

// received is one request the local receiver got.
type received struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte
	Verified            bool
}

// receiver stands in for the developer's local endpoint: it keeps every request byte for
// byte and answers 200 only to those whose X-Webhook-Signature and webhook-signature both
// verify with secret, computed here from the raw body as a customer's receiver would (not
// with Hookrelay's signature package), and 401 to the others.
type receiver struct {
	*httptest.Server
	mu  sync.Mutex
	got []received
}

func newReceiver(t *testing.T, secret string) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ok := signedBy(secret, r.Header, body)
		rc.mu.Lock()
		rc.got = append(rc.got, received{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body, ok})
		rc.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// waitFor waits until n requests arrived and returns them.
func (rc *receiver) waitFor(t *testing.T, n int) []received {
	t.Helper()
	wait.Until(t, fmt.Sprintf("the receiver got %d requests", n), func() bool { return len(rc.requests()) >= n })
	return rc.requests()
}

// signedBy checks both signatures of a delivery.
func signedBy(secret string, h http.Header, body []byte) bool {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	if !hmac.Equal([]byte(hex.EncodeToString(m.Sum(nil))), []byte(h.Get("X-Webhook-Signature"))) {
		return false
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	m = hmac.New(sha256.New, key)
	m.Write([]byte(h.Get("Webhook-Id") + "." + h.Get("Webhook-Timestamp") + "."))
	m.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	for _, sig := range strings.Fields(h.Get("Webhook-Signature")) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}

// binCaptures lists a bin's captures oldest first, whole.
func binCaptures(t *testing.T, s *testsrv.Server, binID string) []inspector.Capture {
	t.Helper()
	var page api.List[inspector.CaptureSummary]
	s.Do(t, http.MethodGet, "/api/v1/inspector/bins/"+binID+"/requests?limit=200", nil, http.StatusOK, &page)
	out := make([]inspector.Capture, 0, len(page.Data))
	for i := len(page.Data) - 1; i >= 0; i-- {
		var c inspector.Capture
		s.Do(t, http.MethodGet, "/api/v1/inspector/bins/"+binID+"/requests/"+page.Data[i].ID, nil, http.StatusOK, &c)
		out = append(out, c)
	}
	return out
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}
