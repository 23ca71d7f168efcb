package cli

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/api"
	"github.com/hookrelay/hookrelay/inspector"
	"github.com/hookrelay/hookrelay/internal/wait"
)

// proxy is a TCP proxy the test can cut: while down, every connection through it is closed
// and new ones are closed as soon as they are accepted.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]bool
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.sever()
	})
	return p
}

func (p *proxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			in.Close()
			out.Close()
			continue
		}
		p.conns[in], p.conns[out] = true, true
		p.mu.Unlock()
		go pipe(in, out)
		go pipe(out, in)
	}
}

func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// sever cuts every connection and refuses new ones until restore.
func (p *proxy) sever() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *proxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// Requests that reach the bin while listen is cut off from the server are forwarded after it
// reconnects, oldest first, and every request exactly once.
func TestListenCatchesUpAfterReconnecting(t *testing.T) {
	s := startServer(t)
	b, wh := newLinkedBin(t, s, "reconnect")
	rc := newReceiver(t, wh.Secret)
	p := newProxy(t, strings.TrimPrefix(s.BaseURL, "http://"))
	e := newEnv(map[string]string{"HOOKRELAY_URL": p.url(), "HOOKRELAY_TOKEN": s.Token}, "")
	r := startListen(t, e, "--forward-to", rc.URL, "--bin", b.ID, "--webhook", wh.ID)

	publish := func(n int) {
		data := map[string]any{"conversation_id": n + 1}
		if n%2 == 1 {
			data["message_id"], data["content"] = n, "message"
		}
		s.Publish(t, events[n%2], data, "")
	}
	publish(0)
	rc.waitFor(t, 1)

	p.sever()
	wait.Until(t, "listen notices the disconnection", func() bool { return strings.Contains(e.errOut.String(), "disconnected") })
	for n := 1; n <= 3; n++ {
		publish(n)
	}
	wait.Until(t, "the bin holds the requests sent meanwhile", func() bool { return captureCount(t, s, b.ID) == 4 })
	if got := len(rc.requests()); got != 1 {
		t.Fatalf("receiver got %d requests while listen was cut off", got)
	}
	p.restore()
	rc.waitFor(t, 4)
	if !strings.Contains(e.errOut.String(), "reconnected; 3 request(s) arrived meanwhile") {
		t.Errorf("no reconnection line:\n%s", e.errOut)
	}
	publish(4)
	rc.waitFor(t, 5)
	wait.Until(t, "five output lines", func() bool { return len(e.out.lines()) == 5 })
	r.stop(t)

	caps := binCaptures(t, s, b.ID)
	assertForwarded(t, rc.requests(), caps, "")
	for i, g := range rc.requests() {
		if !g.Verified {
			t.Errorf("request %d: the receiver's signature check failed", i)
		}
	}
	for i, line := range e.out.lines() {
		if !strings.HasSuffix(line, " id="+caps[i].ID) || !strings.Contains(line, " status=200 ") {
			t.Errorf("line %d = %q, want status=200 and id=%s", i, line, caps[i].ID)
		}
	}
}

func captureCount(t *testing.T, s interface {
	Do(testing.TB, string, string, any, int, any) []byte
}, binID string) int {
	var page api.List[inspector.CaptureSummary]
	s.Do(t, http.MethodGet, "/api/v1/inspector/bins/"+binID+"/requests?limit=200", nil, http.StatusOK, &page)
	return len(page.Data)
}

// Ctrl-C while the local receiver has not answered ends listen at once, with exit 0.
func TestListenStopsCleanlyDuringAForward(t *testing.T) {
	s := startServer(t)
	b, wh := newLinkedBin(t, s, "ctrl-c")
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // so that the server notices the client leaving
		once.Do(func() { close(arrived) })
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer func() {
		close(release)
		hang.Close()
	}()
	e := serverEnv(s.BaseURL)
	r := startListen(t, e, "--forward-to", hang.URL, "--bin", b.ID, "--webhook", wh.ID)
	s.Publish(t, "conversation.started", map[string]any{"conversation_id": 1}, "")
	select {
	case <-arrived:
	case <-time.After(wait.Timeout):
		t.Fatal("the forward never reached the receiver")
	}
	r.stop(t)
	if out := e.out.String(); out != "" {
		t.Errorf("a line was printed for a request that was never answered: %q", out)
	}
}
