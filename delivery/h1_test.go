package delivery

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/models"
)

// These tests drive h1Transport over real loopback sockets: httptest servers where net/http's
// own server behaviour is wanted, raw TCP servers where the bytes on the wire matter.

const h1Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func h1Request(url string) Request {
	return Request{
		Webhook:   &models.Webhook{ID: "wh_h1", URL: url, Secret: h1Secret, Format: models.FormatJSON, Enabled: true},
		MessageID: "evt_h1", EventType: models.EventMessageReceived, Body: []byte(`{"hello":"world"}`), Attempt: 1,
	}
}

// h1Sender is a Sender for loopback servers, its idle connections closed when the test ends.
func h1Sender(t *testing.T, timeout time.Duration) *Sender {
	t.Helper()
	s := NewSender(SenderConfig{Timeout: timeout, AllowPrivate: true, Version: "test"})
	t.Cleanup(s.CloseIdleConnections)
	return s
}

func h1SendOK(t *testing.T, s *Sender, url string) *Response {
	t.Helper()
	resp := s.Send(context.Background(), h1Request(url))
	if !resp.OK() {
		t.Fatalf("send to %s: status %d, err %v; want a 2xx", url, resp.Status, resp.Err)
	}
	return resp
}

func idleCounts(tr *h1Transport) (nIdle, keys int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.nIdle, len(tr.idle)
}

// countedServer is an httptest server that counts the connections it opened and closed.
type countedServer struct {
	*httptest.Server
	mu      sync.Mutex
	opened  int
	closed  int
	changed chan struct{}
}

func newCountedServer(t *testing.T, useTLS bool, h http.HandlerFunc, configure func(*http.Server)) *countedServer {
	t.Helper()
	cs := &countedServer{Server: httptest.NewUnstartedServer(h), changed: make(chan struct{}, 1)}
	cs.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		cs.mu.Lock()
		switch st {
		case http.StateNew:
			cs.opened++
		case http.StateClosed, http.StateHijacked:
			cs.closed++
		}
		cs.mu.Unlock()
		select {
		case cs.changed <- struct{}{}:
		default:
		}
	}
	cs.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes and reset writes are expected
	if configure != nil {
		configure(cs.Config)
	}
	if useTLS {
		cs.StartTLS()
	} else {
		cs.Start()
	}
	t.Cleanup(cs.Close)
	return cs
}

func (cs *countedServer) counts() (opened, closed int) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.opened, cs.closed
}

// waitClosed waits until the server has closed n connections.
func (cs *countedServer) waitClosed(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		if _, closed := cs.counts(); closed >= n {
			return
		}
		select {
		case <-cs.changed:
		case <-timeout:
			_, closed := cs.counts()
			t.Fatalf("the server closed %d connections in 5s, want %d", closed, n)
		}
	}
}

// rawServer accepts loopback TCP connections and serves each with serve (i counts
// connections from 0). It records every request it reads, whole.
type rawServer struct {
	url    string
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	done   bool
	conns  []net.Conn
	heads  []string
	bodies [][]byte
}

func newRawServer(t *testing.T, serve func(s *rawServer, i int, c net.Conn, br *bufio.Reader)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{url: "http://" + ln.Addr().String(), ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.done {
				s.mu.Unlock()
				_ = c.Close()
				return
			}
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second)) // no server goroutine outlives a stuck test by much
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				serve(s, i, c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		s.mu.Lock()
		s.done = true
		for _, c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// read reads one whole request (head and Content-Length body) and records it; false when
// the connection ended or failed first.
func (s *rawServer) read(br *bufio.Reader) bool {
	var head strings.Builder
	n := 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return false
		}
		head.WriteString(line)
		if line == "\r\n" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Content-Length") {
			n, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return false
	}
	s.mu.Lock()
	s.heads = append(s.heads, head.String())
	s.bodies = append(s.bodies, body)
	s.mu.Unlock()
	return true
}

func (s *rawServer) stats() (conns int, heads []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns), append([]string(nil), s.heads...)
}

const rawOK = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

// serveOK answers every request on the connection with an empty 200.
func serveOK(s *rawServer, _ int, c net.Conn, br *bufio.Reader) {
	for s.read(br) {
		if _, err := io.WriteString(c, rawOK); err != nil {
			return
		}
	}
}

func TestH1ReusesOneConnectionForSequentialSends(t *testing.T) {
	srv := newCountedServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}, nil)
	s := h1Sender(t, 5*time.Second)
	for i := range 50 {
		if resp := s.Send(context.Background(), h1Request(srv.URL)); resp.Status != http.StatusOK || resp.Err != nil {
			t.Fatalf("send %d: status %d, err %v", i, resp.Status, resp.Err)
		}
	}
	if opened, _ := srv.counts(); opened != 1 {
		t.Errorf("50 sequential sends opened %d connections, want 1 kept alive", opened)
	}
	if n, _ := idleCounts(s.guarded); n != 1 {
		t.Errorf("%d connections idle in the pool after the sends, want 1", n)
	}
}

func TestH1ReconnectsWhenTheServerClosedTheIdleConnection(t *testing.T) {
	srv := newCountedServer(t, false, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) },
		func(hs *http.Server) { hs.IdleTimeout = 100 * time.Millisecond })
	s := h1Sender(t, 5*time.Second)
	h1SendOK(t, s, srv.URL)
	srv.waitClosed(t, 1)
	resp := s.Send(context.Background(), h1Request(srv.URL))
	if resp.Status != http.StatusOK || resp.Err != nil {
		t.Fatalf("send after the server closed the idle connection: status %d, err %v; want 200", resp.Status, resp.Err)
	}
	if opened, _ := srv.counts(); opened != 2 {
		t.Errorf("%d connections opened, want 2 (the closed one replaced once)", opened)
	}
}

// A kept-alive connection the server closes after reading the request, without answering:
// nothing came back, so the request is made once more on a new connection.
func TestH1RetriesOnANewConnectionWhenAKeptAliveOneDiesUnanswered(t *testing.T) {
	srv := newRawServer(t, func(s *rawServer, i int, c net.Conn, br *bufio.Reader) {
		if i == 0 {
			if !s.read(br) {
				return
			}
			if _, err := io.WriteString(c, rawOK); err != nil {
				return
			}
			s.read(br) // the second request, read whole and left unanswered
			return
		}
		serveOK(s, i, c, br)
	})
	s := h1Sender(t, 5*time.Second)
	h1SendOK(t, s, srv.url)
	resp := s.Send(context.Background(), h1Request(srv.url))
	if resp.Status != http.StatusOK || resp.Err != nil {
		t.Fatalf("second send: status %d, err %v; want 200 from a retry on a new connection", resp.Status, resp.Err)
	}
	conns, heads := srv.stats()
	if conns != 2 || len(heads) != 3 {
		t.Errorf("server saw %d connections and %d requests, want 2 and 3", conns, len(heads))
	}
}

// A connection idle for less than peekAfter is taken without a peek at its socket, even one
// its server has closed meanwhile: the send on it fails with nothing read, and the retry on a
// new connection answers. Idle for longer, the peek finds it closed and it is dropped.
func TestH1TakesARecentlyUsedConnectionWithoutPeeking(t *testing.T) {
	srv := newRawServer(t, func(s *rawServer, _ int, c net.Conn, br *bufio.Reader) {
		if s.read(br) {
			_, _ = io.WriteString(c, rawOK) // then the connection closes, without a Connection: close
		}
	})
	s := h1Sender(t, 5*time.Second)
	tr := s.guarded
	h1SendOK(t, s, srv.url)
	tr.mu.Lock()
	var pc *h1Conn
	for _, list := range tr.idle {
		pc = list[0]
	}
	tr.mu.Unlock()
	if pc == nil {
		t.Fatal("no idle connection after the first send")
	}
	for deadline := time.Now().Add(5 * time.Second); pc.peekOpen(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the server's close never reached the client")
		}
	}
	pc.idleAt = time.Now()
	if got := tr.get(pc.key); got != pc {
		t.Fatalf("get of a connection idle for a moment returned %p, want it (%p) without a peek", got, pc)
	}
	pc.idleAt = time.Now().Add(-2 * peekAfter)
	tr.mu.Lock()
	tr.idle[pc.key] = append(tr.idle[pc.key], pc)
	tr.nIdle++
	tr.mu.Unlock()
	if got := tr.get(pc.key); got != nil {
		t.Fatalf("get of a closed connection idle for %s returned it, want the peek to drop it", 2*peekAfter)
	}

	// End to end: each answer is followed by a close, and every send right after still gets
	// its 200, through one retry on a new connection.
	for i := range 3 {
		h1SendOK(t, s, srv.url)
		if conns, heads := srv.stats(); conns != 2+i || len(heads) != 2+i {
			t.Fatalf("after send %d the server saw %d connections and %d requests, want %d of each", i+2, conns, len(heads), 2+i)
		}
	}
}

// Once part of an answer came back the request may have been handled: no retry.
func TestH1DoesNotRetryAfterAPartialResponse(t *testing.T) {
	for _, partial := range []string{
		"HTTP/1.1 200",                       // a status line cut before its CRLF
		"HTTP/1.1 20",                        // cut inside the status code
		"HTTP/1.1 200 OK\r\nContent-Len",     // cut inside the headers
		"HTTP/1.1 200 OK\r\nX-A: b\r\n",      // cut before the blank line
		"HTTP/1.1 200 OK\r\n",                // the status line alone
		"H",                                  // one byte
		"HTTP/1.1 103 Early Hints\r\n\r\nHT", // an informational answer, then a cut one
	} {
		t.Run(strconv.Quote(partial), func(t *testing.T) {
			srv := newRawServer(t, func(s *rawServer, i int, c net.Conn, br *bufio.Reader) {
				if i == 0 {
					if !s.read(br) {
						return
					}
					if _, err := io.WriteString(c, rawOK); err != nil {
						return
					}
					if s.read(br) {
						_, _ = io.WriteString(c, partial)
					}
					return
				}
				serveOK(s, i, c, br)
			})
			s := h1Sender(t, 5*time.Second)
			h1SendOK(t, s, srv.url)
			resp := s.Send(context.Background(), h1Request(srv.url))
			if resp.Err == nil || resp.Status != 0 {
				t.Errorf("after a partial answer: status %d, err %v; want an error and no status", resp.Status, resp.Err)
			}
			if conns, heads := srv.stats(); conns != 1 || len(heads) != 2 {
				t.Errorf("server saw %d connections and %d requests, want 1 and 2: the partly answered request was sent again",
					conns, len(heads))
			}
		})
	}
}

func TestH1OpensANewConnectionAfterConnectionClose(t *testing.T) {
	srv := newCountedServer(t, false, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusOK)
	}, nil)
	s := h1Sender(t, 5*time.Second)
	for range 3 {
		h1SendOK(t, s, srv.URL)
	}
	if opened, _ := srv.counts(); opened != 3 {
		t.Errorf("3 sends answered with Connection: close opened %d connections, want 3", opened)
	}
	if n, _ := idleCounts(s.guarded); n != 0 {
		t.Errorf("%d connections pooled after Connection: close answers, want 0", n)
	}
}

func patterned(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}

// The excerpt is the body's first 4 KiB; a body that the bounded drain does not finish
// takes its connection with it, one that it finishes leaves the connection for reuse.
func TestH1LongResponseBodies(t *testing.T) {
	for _, c := range []struct {
		size  int
		conns int
	}{
		{300 << 10, 2}, // past the 4 KiB excerpt + 256 KiB drain: not reused
		{100 << 10, 1}, // drained to its end: reused
	} {
		t.Run(strconv.Itoa(c.size>>10)+"KiB", func(t *testing.T) {
			body := patterned(c.size)
			srv := newCountedServer(t, false, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				_, _ = w.Write(body)
			}, nil)
			s := h1Sender(t, 5*time.Second)
			resp := s.Send(context.Background(), h1Request(srv.URL))
			if resp.Status != http.StatusOK || resp.Err != nil {
				t.Fatalf("status %d, err %v; want 200", resp.Status, resp.Err)
			}
			if resp.Body != string(body[:ResponseExcerptLimit]) {
				t.Errorf("excerpt is %d bytes (starting %.20q), want the body's first %d", len(resp.Body), resp.Body, ResponseExcerptLimit)
			}
			if n, _ := idleCounts(s.guarded); n != 2-c.conns {
				t.Errorf("%d connections pooled after the first send, want %d", n, 2-c.conns)
			}
			h1SendOK(t, s, srv.URL)
			if opened, _ := srv.counts(); opened != c.conns {
				t.Errorf("two sends opened %d connections, want %d", opened, c.conns)
			}
		})
	}
}

func TestH1ReadsChunkedResponsesAndReusesTheConnection(t *testing.T) {
	pieces := []string{"alpha-", "beta-", strings.Repeat("g", 3000), "-delta"}
	srv := newCountedServer(t, false, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		for _, p := range pieces {
			_, _ = io.WriteString(w, p)
			w.(http.Flusher).Flush()
		}
	}, nil)
	s := h1Sender(t, 5*time.Second)
	for i := range 3 {
		resp := s.Send(context.Background(), h1Request(srv.URL))
		if resp.Status != http.StatusAccepted || resp.Err != nil {
			t.Fatalf("send %d: status %d, err %v; want 202", i, resp.Status, resp.Err)
		}
		if want := strings.Join(pieces, ""); resp.Body != want {
			t.Fatalf("send %d: excerpt %q, want %q", i, resp.Body, want)
		}
		if te := resp.Headers.Get("Transfer-Encoding"); te != "" {
			t.Errorf("Transfer-Encoding %q left in the response headers", te)
		}
	}
	if opened, _ := srv.counts(); opened != 1 {
		t.Errorf("3 chunked answers opened %d connections, want 1", opened)
	}
}

func TestH1SkipsInformationalResponses(t *testing.T) {
	for _, c := range []struct {
		hints int
		ok    bool
	}{{1, true}, {max1xx, true}, {max1xx + 1, false}} {
		t.Run(strconv.Itoa(c.hints)+"x103", func(t *testing.T) {
			srv := newCountedServer(t, false, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Link", "</style.css>; rel=preload")
				for range c.hints {
					w.WriteHeader(http.StatusEarlyHints)
				}
				w.Header().Del("Link")
				w.WriteHeader(http.StatusOK)
				_, _ = io.WriteString(w, "final")
			}, nil)
			s := h1Sender(t, 5*time.Second)
			resp := s.Send(context.Background(), h1Request(srv.URL))
			if c.ok {
				if resp.Status != http.StatusOK || resp.Err != nil || resp.Body != "final" {
					t.Fatalf("status %d, body %q, err %v; want 200 and the final body", resp.Status, resp.Body, resp.Err)
				}
				h1SendOK(t, s, srv.URL)
				if opened, _ := srv.counts(); opened != 1 {
					t.Errorf("%d connections opened, want 1: the final answer's connection is reusable", opened)
				}
			} else if resp.Err == nil || resp.Status != 0 || !strings.Contains(resp.Err.Error(), "informational") {
				t.Errorf("%d informational answers: status %d, err %v; want an error about informational responses",
					c.hints, resp.Status, resp.Err)
			}
		})
	}
}

func TestH1RefusesAResponseHeaderBlockOver1MiB(t *testing.T) {
	for name, header := range map[string]func(w *bufio.Writer){
		"many lines": func(w *bufio.Writer) {
			line := "X-Pad: " + strings.Repeat("p", 1000) + "\r\n"
			for range (2 << 20) / len(line) {
				_, _ = w.WriteString(line)
			}
		},
		"one line": func(w *bufio.Writer) {
			_, _ = w.WriteString("X-Pad: ")
			_, _ = w.Write(bytes.Repeat([]byte("p"), 2<<20))
			_, _ = w.WriteString("\r\n")
		},
	} {
		t.Run(name, func(t *testing.T) {
			srv := newRawServer(t, func(s *rawServer, _ int, c net.Conn, br *bufio.Reader) {
				if !s.read(br) {
					return
				}
				w := bufio.NewWriterSize(c, 64<<10)
				_, _ = w.WriteString("HTTP/1.1 200 OK\r\n")
				header(w)
				_, _ = w.WriteString("Content-Length: 0\r\n\r\n")
				_ = w.Flush() // fails once the client gives up and closes
			})
			s := h1Sender(t, 10*time.Second)
			resp := s.Send(context.Background(), h1Request(srv.url))
			if resp.Err == nil || resp.Status != 0 || resp.TimedOut {
				t.Fatalf("a 2 MiB header block: status %d, timed out %v, err %v; want an error at once", resp.Status, resp.TimedOut, resp.Err)
			}
			if !strings.Contains(resp.Err.Error(), "headers") || !strings.Contains(resp.Err.Error(), "1 MiB") {
				t.Errorf("error %q does not say the headers are too large", resp.Err)
			}
			if conns, heads := srv.stats(); conns != 1 || len(heads) != 1 {
				t.Errorf("server saw %d connections and %d requests, want 1 and 1", conns, len(heads))
			}
		})
	}
}

// sendWithin sends in the background and fails the test if no Response comes back within
// 5 s: a send the timeout or the cancellation fails to end would otherwise hang the test.
func sendWithin(t *testing.T, ctx context.Context, s *Sender, r Request) *Response {
	t.Helper()
	done := make(chan *Response, 1)
	go func() { done <- s.Send(ctx, r) }()
	select {
	case resp := <-done:
		return resp
	case <-time.After(5 * time.Second):
		t.Fatal("the send was still going 5s on")
		return nil
	}
}

// blockingServer answers nothing until the test ends; arrived gets a value per request.
func blockingServer(t *testing.T) (*countedServer, chan struct{}) {
	release, arrived := make(chan struct{}), make(chan struct{}, 16)
	srv := newCountedServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}, nil)
	t.Cleanup(func() { close(release) }) // before srv.Close, which waits for the handler
	return srv, arrived
}

func TestH1TimesOutOnAServerThatNeverAnswers(t *testing.T) {
	srv, _ := blockingServer(t)
	s := h1Sender(t, 300*time.Millisecond)
	resp := sendWithin(t, context.Background(), s, h1Request(srv.URL))
	if !resp.TimedOut || resp.Err == nil || resp.Status != 0 {
		t.Fatalf("status %d, timed out %v, err %v; want a timeout", resp.Status, resp.TimedOut, resp.Err)
	}
	if !strings.HasPrefix(resp.Err.Error(), "timeout") {
		t.Errorf("error %q, want it to start with timeout", resp.Err)
	}
	if n, _ := idleCounts(s.guarded); n != 0 {
		t.Errorf("%d connections pooled after a timeout, want 0", n)
	}
}

func TestH1CancellationEndsASendInProgress(t *testing.T) {
	srv, arrived := blockingServer(t)
	s := h1Sender(t, time.Minute) // only the cancellation can end it within sendWithin's 5s
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-arrived:
			cancel()
		case <-ctx.Done():
		}
	}()
	resp := sendWithin(t, ctx, s, h1Request(srv.URL))
	if resp.Err == nil || resp.TimedOut || !strings.HasPrefix(resp.Err.Error(), "cancelled") {
		t.Fatalf("status %d, timed out %v, err %v; want an error starting with cancelled", resp.Status, resp.TimedOut, resp.Err)
	}
}

func TestH1SpeaksHTTP1OverTLS(t *testing.T) {
	var mu sync.Mutex
	var seen []http.Header
	var protos []string
	srv := newCountedServer(t, true, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		protos = append(protos, r.Proto)
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}, nil)
	s := trustingSender(t, srv)
	var first *Response
	for i := range 20 {
		resp := s.Send(context.Background(), h1Request(srv.URL))
		if resp.Status != http.StatusOK || resp.Err != nil {
			t.Fatalf("send %d over TLS: status %d, err %v", i, resp.Status, resp.Err)
		}
		if first == nil {
			first = resp
		}
	}
	if opened, _ := srv.counts(); opened != 1 {
		t.Errorf("20 sends over TLS opened %d connections, want 1", opened)
	}
	mu.Lock()
	h, proto := seen[0], protos[0]
	mu.Unlock()
	if proto != "HTTP/1.1" {
		t.Errorf("the server saw %s, want HTTP/1.1", proto)
	}
	for _, name := range []string{"X-Webhook-Signature", "webhook-signature"} {
		// RequestHeaders keeps the Standard Webhooks names lowercase, as they are sent.
		if got, want := h.Get(name), first.RequestHeaders[name]; len(want) != 1 || got != want[0] {
			t.Errorf("server saw %s %q, want %q", name, got, want)
		}
	}

	untrusting := h1Sender(t, 5*time.Second)
	resp := untrusting.Send(context.Background(), h1Request(srv.URL))
	if resp.Err == nil || !strings.HasPrefix(resp.Err.Error(), "TLS:") {
		t.Errorf("a sender without the test CA: status %d, err %v; want an error starting with TLS:", resp.Status, resp.Err)
	}
}

func TestH1WritesTheExactRequestBytes(t *testing.T) {
	srv := newRawServer(t, serveOK)
	s := h1Sender(t, 5*time.Second)
	req := h1Request(srv.url + "/hook/path?x=1")
	req.Body = bytes.Repeat([]byte(`{"text":"héllo wörld","n":12345}`), 300) // past the 4 KiB write buffer
	resp := s.Send(context.Background(), req)
	if !resp.OK() {
		t.Fatalf("status %d, err %v", resp.Status, resp.Err)
	}
	_, heads := srv.stats()
	if len(heads) != 1 {
		t.Fatalf("server read %d requests, want 1", len(heads))
	}
	lines := strings.Split(strings.TrimSuffix(heads[0], "\r\n\r\n"), "\r\n")
	if lines[0] != "POST /hook/path?x=1 HTTP/1.1" {
		t.Errorf("request line %q, want %q", lines[0], "POST /hook/path?x=1 HTTP/1.1")
	}
	count := map[string]int{}
	values := map[string]string{}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ": ")
		if !ok {
			t.Errorf("malformed header line %q", l)
			continue
		}
		count[strings.ToLower(k)]++
		values[strings.ToLower(k)] = v
	}
	host := strings.TrimPrefix(srv.url, "http://")
	for name, want := range map[string]string{
		"host":           host,
		"content-length": strconv.Itoa(len(req.Body)),
		"content-type":   "application/json",
		"user-agent":     "Hookrelay/test",
		"webhook-id":     "evt_h1",
	} {
		if count[name] != 1 || values[name] != want {
			t.Errorf("%s sent %d times, last %q; want once, %q", name, count[name], values[name], want)
		}
	}
	if count["transfer-encoding"] != 0 {
		t.Error("Transfer-Encoding sent along with Content-Length")
	}
	srv.mu.Lock()
	body := srv.bodies[0]
	srv.mu.Unlock()
	if !bytes.Equal(body, req.Body) {
		t.Errorf("server read a %d-byte body that differs from the %d bytes sent", len(body), len(req.Body))
	}
}

// A header value or name that would split the request is refused before anything is
// dialled or written.
func TestH1RefusesHeadersThatWouldSplitTheRequest(t *testing.T) {
	for _, c := range []struct{ name, value string }{
		{"X-Bad", "a\r\nX-Injected: 1"},
		{"X-Bad", "a\nX-Injected: 1"},
		{"X-Bad", "a\rX-Injected: 1"},
		{"X-Bad", "a\x00b"},
		{"X-Bad\r\nX-Injected", "1"},
		{"X Bad", "1"},
	} {
		t.Run(strconv.Quote(c.name+": "+c.value), func(t *testing.T) {
			srv := newRawServer(t, serveOK)
			s := h1Sender(t, 5*time.Second)
			tr := s.guarded
			tg, err := s.target(srv.url + "/")
			if err != nil {
				t.Fatal(err)
			}
			body := []byte(`{}`)
			deadline := time.Now().Add(5 * time.Second)
			if resp, err := tr.post(context.Background(), tg, http.Header{c.name: {c.value}}, body, deadline); err == nil {
				_ = resp.Body.Close()
				t.Fatalf("a header %q: %q was sent", c.name, c.value)
			}
			// A good request next: it must be the first and only one the server read.
			resp, err := tr.post(context.Background(), tg, http.Header{"X-Probe": {"good"}}, body, deadline)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			conns, heads := srv.stats()
			if conns != 1 || len(heads) != 1 || !strings.Contains(heads[0], "X-Probe: good") || strings.Contains(heads[0], "X-Injected") {
				t.Errorf("server saw %d connections and requests %q; want one connection with only the good request", conns, heads)
			}
		})
	}
}

func TestH1SweepDropsIdleConnectionsTheServerClosed(t *testing.T) {
	srv := newCountedServer(t, false, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }, nil)
	s := h1Sender(t, 10*time.Second)
	tr := s.guarded
	h1SendOK(t, s, srv.URL)
	h1SendOK(t, s, srv.URL+"/other")
	if n, keys := idleCounts(tr); n != 1 || keys != 1 {
		t.Fatalf("after two sends the pool holds %d connections under %d keys, want 1 and 1", n, keys)
	}
	tr.sweep()
	if n, keys := idleCounts(tr); n != 1 || keys != 1 {
		t.Fatalf("a sweep of a live idle connection left %d connections under %d keys, want it kept", n, keys)
	}
	srv.CloseClientConnections()
	srv.waitClosed(t, 1)
	tr.sweep()
	if n, keys := idleCounts(tr); n != 0 || keys != 0 {
		t.Errorf("after the server closed the connection a sweep left %d connections under %d keys, want none", n, keys)
	}
	tr.mu.Lock()
	rescheduled := tr.sweepAt != nil
	tr.mu.Unlock()
	if rescheduled {
		t.Error("a sweep that emptied the pool scheduled another one")
	}
	h1SendOK(t, s, srv.URL)
	if opened, _ := srv.counts(); opened != 2 {
		t.Errorf("%d connections opened, want 2", opened)
	}
}

// A connection stays reusable for the pool's idle time, not only until the deadline of the
// attempt that last used it: a receiver that gets a webhook every few seconds with a short
// attempt timeout still gets them on one connection.
func TestH1KeepsIdleConnectionsPastTheAttemptDeadline(t *testing.T) {
	srv := newCountedServer(t, false, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }, nil)
	const timeout = 300 * time.Millisecond
	s := h1Sender(t, timeout)
	h1SendOK(t, s, srv.URL)
	time.Sleep(timeout + 200*time.Millisecond) // the first attempt's deadline is over
	s.guarded.sweep()
	if n, _ := idleCounts(s.guarded); n != 1 {
		t.Errorf("a sweep %s after the send dropped the live idle connection (%d left), want it kept: the pool's idle time is %s",
			timeout+200*time.Millisecond, n, s.guarded.idleFor)
	}
	h1SendOK(t, s, srv.URL)
	if opened, _ := srv.counts(); opened != 1 {
		t.Errorf("a send after the previous attempt's deadline opened connection #%d, want the idle one reused", opened)
	}
}

func TestH1SendsURLCredentialsAsBasicAuthWithoutLoggingThem(t *testing.T) {
	var mu sync.Mutex
	var auth []string
	srv := newCountedServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}, nil)
	s := h1Sender(t, 5*time.Second)
	url := strings.Replace(srv.URL, "http://", "http://user:s3cr%40t@", 1) + "/"
	resp := s.Send(context.Background(), h1Request(url))
	if resp.Status != http.StatusOK || resp.Err != nil {
		t.Fatalf("send to %s: status %d, err %v", url, resp.Status, resp.Err)
	}
	if n, _ := idleCounts(s.guarded); n != 1 {
		t.Errorf("%d connections pooled in h1Transport after the send, want 1 (it handles credentials itself)", n)
	}
	mu.Lock()
	defer mu.Unlock()
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("user:s3cr@t"))
	if len(auth) != 1 || auth[0] != want {
		t.Errorf("server saw Authorization %q, want %q for the URL's user:s3cr@t", auth, want)
	}
	if got := headerJSON(resp.RequestHeaders); strings.Contains(got, "s3cr") || strings.Contains(got, want[6:]) ||
		strings.Contains(got, "Authorization") {
		t.Errorf("the attempt log's request headers carry the credentials: %s", got)
	}
}

// A receiver that refuses a large body from its head alone, answers and closes without
// reading the rest: the attempt shows its answer, not the write error that follows.
func TestH1ShowsAnAnswerSentBeforeTheBodyWasRead(t *testing.T) {
	srv := newRawServer(t, func(s *rawServer, _ int, c net.Conn, br *bufio.Reader) {
		tp := textproto.NewReader(br)
		if _, err := tp.ReadLine(); err != nil {
			return
		}
		if _, err := tp.ReadMIMEHeader(); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 413 Content Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large")
		// Closing with most of the body unread resets the connection: the sender's write fails.
	})
	s := h1Sender(t, 10*time.Second)
	r := h1Request(srv.url)
	r.Body = bytes.Repeat([]byte("x"), 32<<20)
	resp := s.Send(context.Background(), r)
	if resp.Status != http.StatusRequestEntityTooLarge || resp.Err != nil || resp.Body != "too large" {
		t.Fatalf("got status %d, body %q, err %v; want the receiver's 413", resp.Status, resp.Body, resp.Err)
	}
	if n, _ := idleCounts(s.guarded); n != 0 {
		t.Errorf("%d connections kept after a failed write, want 0", n)
	}
}

// A host that cannot go on the wire as written (here non-ASCII) is sent by the fallback
// Transport, which writes it in its ASCII form, under the same deadline; nothing of it is
// pooled in h1Transport.
func TestH1HandsHostsItCannotWriteToTheFallback(t *testing.T) {
	var mu sync.Mutex
	var hosts []string
	srv := newCountedServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hosts = append(hosts, r.Host)
		mu.Unlock()
		if r.URL.Path == "/hang" {
			_, _ = io.Copy(io.Discard, r.Body) // read whole, so the server watches for the client going away
			<-r.Context().Done()
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}, nil)
	s := h1Sender(t, 300*time.Millisecond)
	var dialed []string
	s.guarded.fallback.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dialed = append(dialed, addr)
		mu.Unlock()
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}
	resp := s.Send(context.Background(), h1Request("http://bücher.test/hook"))
	if resp.Status != http.StatusNoContent || resp.Err != nil {
		t.Fatalf("send: status %d, err %v; want 204 through the fallback", resp.Status, resp.Err)
	}
	resp = sendWithin(t, context.Background(), s, h1Request("http://bücher.test/hang"))
	if !resp.TimedOut || resp.Err == nil || resp.Status != 0 {
		t.Errorf("hanging send: timed out %v, status %d, err %v; want the sender's timeout", resp.TimedOut, resp.Status, resp.Err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dialed) == 0 || dialed[0] != "xn--bcher-kva.test:80" {
		t.Errorf("fallback dialled %q, want the ASCII form xn--bcher-kva.test:80", dialed)
	}
	if len(hosts) != 2 || hosts[0] != "xn--bcher-kva.test" {
		t.Errorf("server saw Host %q, want xn--bcher-kva.test twice", hosts)
	}
	if n, _ := idleCounts(s.guarded); n != 0 {
		t.Errorf("%d connections pooled in h1Transport, want 0 (the fallback sent both)", n)
	}
}

// Cancelled while the answer's body is still coming: the attempt says cancelled, not timed
// out, though the cut is made through the connection's deadline.
func TestH1CancellationDuringTheBodyIsNotATimeout(t *testing.T) {
	release := make(chan struct{})
	srv := newCountedServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "0123456789")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}, nil)
	t.Cleanup(func() { close(release) })
	s := h1Sender(t, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Through post itself, so the cancellation lands after the head, in the body's reading.
	tg, err := s.target(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	hr, err := s.guarded.post(ctx, tg, http.Header{"Content-Type": {"application/json"}}, []byte(`{}`), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var first [10]byte
	if _, err := io.ReadFull(hr.Body, first[:]); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = io.ReadAll(hr.Body)
	_ = hr.Body.Close()
	if err == nil {
		t.Fatal("the body read on after the cancellation")
	}
	if cerr, timedOut := classify(err, ctx, time.Minute); timedOut || !strings.HasPrefix(cerr.Error(), "cancelled") {
		t.Errorf("classified as %v (timed out %v), want cancelled", cerr, timedOut)
	}
	if n, _ := idleCounts(s.guarded); n != 0 {
		t.Errorf("%d connections kept after a cancelled body, want 0", n)
	}
}

// trustingSender is a Sender that trusts srv's test certificate.
func trustingSender(t *testing.T, srv *countedServer) *Sender {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	s := NewSender(SenderConfig{Timeout: 5 * time.Second, AllowPrivate: true, Version: "test", RootCAs: pool})
	t.Cleanup(s.CloseIdleConnections)
	return s
}

// A receiver that closes its connection after each answer: the next connection resumes the
// TLS session instead of a full handshake.
func TestH1ResumesTLSSessionsOnNewConnections(t *testing.T) {
	var mu sync.Mutex
	var resumed []bool
	srv := newCountedServer(t, true, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		resumed = append(resumed, r.TLS.DidResume)
		mu.Unlock()
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusOK)
	}, nil)
	s := trustingSender(t, srv)
	for i := range 3 {
		if resp := s.Send(context.Background(), h1Request(srv.URL)); resp.Status != http.StatusOK || resp.Err != nil {
			t.Fatalf("send %d: status %d, err %v", i, resp.Status, resp.Err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if opened, _ := srv.counts(); opened != 3 || len(resumed) != 3 || resumed[0] || !resumed[1] || !resumed[2] {
		t.Errorf("%d connections, resumed %v; want 3 connections, the 2nd and 3rd resuming the 1st's session", opened, resumed)
	}
}
