package delivery

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// The sender reads answers from any server a webhook points at: the head of a response, past
// informational ones, must come back as a response or an error, never a panic, and never
// beyond the header limit.
func FuzzReadFinal(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	f.Add([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Service Unavailable\r\nRetry-After: 120\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 101 Switching Protocols\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 302 Found\r\nLocation: http://x/\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 429\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\n"))
	f.Add([]byte("garbage\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		go func() { _, _ = b.Write(raw); b.Close() }()
		lim := &limitedReader{r: a}
		pc := &h1Conn{raw: a, c: a, lim: lim, br: bufio.NewReader(lim)}
		resp, err := readFinal(pc)
		if err != nil {
			return
		}
		if resp.StatusCode < 200 || resp.StatusCode > 999 {
			t.Errorf("status %d returned as final: want a final status, 200 to 999", resp.StatusCode)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if d := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); d < 0 || d > 24*time.Hour {
			t.Errorf("Retry-After %q read as %v, want 0 to 24 h", resp.Header.Get("Retry-After"), d)
		}
	})
}
