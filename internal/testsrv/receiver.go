package testsrv

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Capture is one request a Receiver got, with the body's raw bytes.
type Capture struct {
	N      int // 1-based arrival order
	Method string
	Path   string
	Header http.Header
	Body   []byte
	At     time.Time
}

// Respond answers the n-th request (1-based). A nil Respond answers 200 {"ok":true}.
type Respond func(n int, w http.ResponseWriter, r *http.Request)

// Receiver is an httptest server standing in for a customer endpoint: it keeps every
// request byte for byte and answers with Respond.
type Receiver struct {
	*httptest.Server
	respond Respond

	mu      sync.Mutex
	caps    []Capture
	arrived chan struct{} // closed and replaced on each arrival
	done    chan struct{} // closed at cleanup: hanging handlers return
}

// NewReceiver starts a receiver closed at the end of the test.
func NewReceiver(t testing.TB, respond Respond) *Receiver {
	t.Helper()
	rc := &Receiver{respond: respond, arrived: make(chan struct{}), done: make(chan struct{})}
	rc.Server = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(func() {
		close(rc.done)
		rc.Server.Close()
	})
	return rc
}

func (rc *Receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	c := Capture{N: len(rc.caps) + 1, Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body, At: time.Now()}
	rc.caps = append(rc.caps, c)
	close(rc.arrived)
	rc.arrived = make(chan struct{})
	rc.mu.Unlock()
	if rc.respond == nil {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
		return
	}
	rc.respond(c.N, w, r)
}

// Done is closed when the test ends; a handler that hangs should return when it closes.
func (rc *Receiver) Done() <-chan struct{} { return rc.done }

// Captures returns what arrived so far.
func (rc *Receiver) Captures() []Capture {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Capture(nil), rc.caps...)
}

// WaitFor waits until at least n requests arrived and returns them; it fails the test after
// timeout.
func (rc *Receiver) WaitFor(t testing.TB, n int, timeout time.Duration) []Capture {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		rc.mu.Lock()
		if len(rc.caps) >= n {
			out := append([]Capture(nil), rc.caps...)
			rc.mu.Unlock()
			return out
		}
		arrived := rc.arrived
		got := len(rc.caps)
		rc.mu.Unlock()
		select {
		case <-arrived:
		case <-deadline.C:
			t.Fatalf("receiver got %d requests within %s, want %d", got, timeout, n)
		}
	}
}

// Status answers every request with the given status code.
func Status(code int) Respond {
	return func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// HoldFirst answers the first request only once release is closed (or its client gives up),
// and every request with status. arrived is closed when the first request is in: tests use
// it to act while an attempt is in flight.
func HoldFirst(status int) (respond Respond, arrived <-chan struct{}, release chan struct{}) {
	in := make(chan struct{})
	release = make(chan struct{})
	return func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			close(in)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(status)
	}, in, release
}
