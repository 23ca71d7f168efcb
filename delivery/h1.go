package delivery

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// h1Transport sends the dispatcher's POSTs over kept-alive HTTP/1.1 connections, each
// request written and its response read by the calling worker itself.
//
// Why not http.Transport: it hands every request to two goroutines of its own per connection
// (one writes, one reads and watches the idle connection), and each attempt pays the
// channel handoffs and wake-ups between them and the caller. Measured on 2 cores, 1 KiB
// POSTs at concurrency 32 to a Go sink: 31 µs of CPU per request with http.Transport, 21 µs
// written and read in place — about a tenth of the whole cost of a delivery. What the
// Transport's reader goroutine provided, noticing that a server closed an idle connection,
// is done here by a non-blocking peek before reuse and by the periodic sweep.
//
// It speaks HTTP/1.1 only, also over TLS (ALPN offers http/1.1): webhook receivers answer
// one small POST at a time, which HTTP/2's multiplexing does not speed up. Requests whose
// host needs rewriting for the wire (non-ASCII, an IPv6 zone) or with another scheme go to
// the fallback Transport unchanged.
type h1Transport struct {
	dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	tls      *tls.Config
	fallback *http.Transport

	maxIdlePerHost int
	maxIdle        int
	idleFor        time.Duration

	mu      sync.Mutex
	idle    map[string][]*h1Conn
	nIdle   int
	sweepAt *time.Timer

	opened atomic.Uint64 // connections made (dialled, and TLS set up)
	reused atomic.Uint64 // requests sent on a kept-alive connection
}

// maxResponseHeaderBytes bounds a response's status line and headers, as http.Transport's
// default does: a receiver cannot make a worker buffer an endless header block.
const maxResponseHeaderBytes = 1 << 20

// max1xx bounds the informational responses (100, 103) skipped before the final one.
const max1xx = 5

func newH1Transport(dial func(ctx context.Context, network, addr string) (net.Conn, error), rootCAs *x509.CertPool,
	maxIdlePerHost int, fallback *http.Transport) *h1Transport {
	return &h1Transport{
		dial: dial,
		// Sessions are kept so a new connection to a receiver seen before (after its server
		// closed an idle one, or past the idle limit) resumes instead of a full handshake.
		tls: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: rootCAs, NextProtos: []string{"http/1.1"},
			ClientSessionCache: tls.NewLRUClientSessionCache(1024)},
		fallback:       fallback,
		maxIdlePerHost: maxIdlePerHost,
		maxIdle:        maxIdlePerHost * 4,
		idleFor:        90 * time.Second,
		idle:           map[string][]*h1Conn{},
	}
}

// h1Conn is one kept-alive connection. raw is the TCP connection under c (c itself unless
// TLS): the liveness peek reads the socket without consuming anything.
type h1Conn struct {
	key    string
	raw    net.Conn
	c      net.Conn
	lim    *limitedReader
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
}

// limitedReader counts what is read from the connection and fails past a limit, which is
// set while a response's header block is read.
type limitedReader struct {
	r     io.Reader
	n     int64 // bytes read since reset
	limit int64 // 0: none
}

var errHeaderTooLarge = errors.New("the response's headers exceed 1 MiB")

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.limit > 0 {
		if l.n >= l.limit {
			return 0, errHeaderTooLarge
		}
		p = p[:min(int64(len(p)), l.limit-l.n)]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	return n, err
}

func (c *h1Conn) close() { _ = c.c.Close() }

// alive reports whether an idle connection can carry a request: the server has neither
// closed it nor sent anything unasked. One non-blocking peek at the socket.
func (c *h1Conn) alive() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	return c.peekOpen()
}

// peekOpen is alive's peek at the socket.
func (c *h1Conn) peekOpen() bool {
	sc, ok := c.raw.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK // nothing to read: still open
		return true
	})
	return err == nil && ok
}

// target is a webhook URL parsed once, with what sending to it needs.
type target struct {
	u      *url.URL
	direct bool   // false: the fallback Transport sends it
	tls    bool   // https
	key    string // scheme://host:port, the idle pool's key
	host   string // the Host header
	uri    string // the request target: path and query
	own    bool   // this server's own inspector URL (set by the Sender)
}

func newTarget(u *url.URL) *target {
	tg := &target{u: u, direct: plainHost(u.Host) && (u.Scheme == "http" || u.Scheme == "https")}
	if tg.direct {
		tg.tls = u.Scheme == "https"
		tg.key = u.Scheme + "://" + hostPort(u)
		tg.host = strings.TrimSuffix(u.Host, ":")
		tg.uri = u.RequestURI()
	}
	return tg
}

// post sends body to tg with header, bounded by deadline (zero: none) and ended early when
// ctx is. The response body must be closed; read to its end, it frees the connection for
// the next request.
func (t *h1Transport) post(ctx context.Context, tg *target, header http.Header, body []byte, deadline time.Time) (*http.Response, error) {
	if !tg.direct {
		return t.postFallback(ctx, tg, header, body, deadline)
	}
	for name, vs := range header {
		if !httpguts.ValidHeaderFieldName(name) {
			return nil, fmt.Errorf("invalid header name %q", name)
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, fmt.Errorf("invalid value for header %q", name)
			}
		}
	}
	pc, reused := t.get(tg.key), true
	for {
		if pc == nil {
			var err error
			if pc, err = t.connect(ctx, tg, deadline); err != nil {
				return nil, err
			}
			t.opened.Add(1)
			reused = false
		} else {
			t.reused.Add(1)
		}
		resp, err := t.exchange(ctx, pc, tg, header, body, deadline)
		if err == nil {
			return resp, nil
		}
		pc.close()
		// A kept-alive connection the server closed just as it was taken (its FIN crossed
		// our request): nothing of an answer came back, and most likely the request was
		// not read. Once more on a new connection, instead of a failed attempt and a retry
		// minutes later. Should the server have read it and died before answering, this is
		// the resend that retry would have made, made at once: deliveries are at least once
		// and carry a stable webhook-id for receivers to deduplicate on.
		if !reused || pc.lim.n > 0 || !connGone(err) || ctx.Err() != nil {
			return nil, err
		}
		pc = nil
	}
}

// postFallback sends what h1Transport does not through the fallback Transport, under the
// same deadline.
func (t *h1Transport) postFallback(ctx context.Context, tg *target, header http.Header, body []byte, deadline time.Time) (*http.Response, error) {
	cancel := func() {}
	if !deadline.IsZero() {
		ctx, cancel = context.WithDeadline(ctx, deadline)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tg.u.String(), bytes.NewReader(body))
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header = header
	resp, err := t.fallback.RoundTrip(req)
	if err != nil {
		cancel()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: %w", os.ErrDeadlineExceeded, err)
		}
		return nil, err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel func()
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// plainHost reports whether a URL host can go on the wire as it is: ASCII, no IPv6 zone.
func plainHost(h string) bool {
	for i := 0; i < len(h); i++ {
		if h[i] >= 0x80 || h[i] == '%' {
			return false
		}
	}
	return h != ""
}

func connGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (t *h1Transport) connect(ctx context.Context, tg *target, deadline time.Time) (*h1Conn, error) {
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	pc, err := t.dialAndShake(ctx, tg)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return nil, fmt.Errorf("%w: %w", os.ErrDeadlineExceeded, err)
	}
	return pc, err
}

func (t *h1Transport) dialAndShake(ctx context.Context, tg *target) (*h1Conn, error) {
	addr := tg.key[strings.Index(tg.key, "://")+3:]
	raw, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := raw
	if tg.tls {
		cfg := t.tls.Clone()
		cfg.ServerName = tg.u.Hostname()
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, err
		}
		c = tc
	}
	lim := &limitedReader{r: c}
	return &h1Conn{key: tg.key, raw: raw, c: c, lim: lim, br: bufio.NewReaderSize(lim, 4<<10), bw: bufio.NewWriterSize(c, 4<<10)}, nil
}

// exchange writes the request on pc and reads the head of its final response. The body is
// read by the caller through h1Body, which returns the connection to the pool when it was
// read to its end.
func (t *h1Transport) exchange(ctx context.Context, pc *h1Conn, tg *target, header http.Header, body []byte, deadline time.Time) (*http.Response, error) {
	_ = pc.c.SetDeadline(deadline) // zero: none
	stop := context.AfterFunc(ctx, func() { _ = pc.c.SetDeadline(time.Unix(1, 0)) })
	resp, err := t.writeAndRead(pc, tg, header, body)
	if err != nil {
		stop()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	resp.Body = &h1Body{t: t, pc: pc, body: resp.Body, reuse: !resp.Close, stop: stop}
	return resp, nil
}

// postHead is what ReadResponse is told the request was: it decides how a body is framed.
var postHead = &http.Request{Method: http.MethodPost}

func (t *h1Transport) writeAndRead(pc *h1Conn, tg *target, header http.Header, body []byte) (*http.Response, error) {
	pc.lim.n = 0
	w := pc.bw
	_, _ = w.WriteString("POST ")
	_, _ = w.WriteString(tg.uri)
	_, _ = w.WriteString(" HTTP/1.1\r\nHost: ")
	_, _ = w.WriteString(tg.host)
	var buf [16]string
	names := buf[:0]
	for name := range header {
		names = append(names, name)
	}
	slices.Sort(names) // the same bytes for the same headers, as net/http writes them
	for _, name := range names {
		for _, v := range header[name] {
			_, _ = w.WriteString("\r\n")
			_, _ = w.WriteString(name)
			_, _ = w.WriteString(": ")
			_, _ = w.WriteString(v)
		}
	}
	_, _ = w.WriteString("\r\nContent-Length: ")
	var num [20]byte
	_, _ = w.Write(strconv.AppendInt(num[:0], int64(len(body)), 10))
	_, _ = w.WriteString("\r\n\r\n")
	_, _ = w.Write(body)
	if err := w.Flush(); err != nil {
		// A receiver may answer before it has read the whole body (413, 401) and close:
		// its answer can still be waiting on our side, and says more than the write's
		// error. The connection goes with it.
		if resp, rerr := readFinal(pc); rerr == nil {
			resp.Close = true
			return resp, nil
		}
		return nil, err
	}
	return readFinal(pc)
}

// readFinal reads the head of the final response, past informational ones.
func readFinal(pc *h1Conn) (*http.Response, error) {
	pc.lim.limit = pc.lim.n + maxResponseHeaderBytes
	defer func() { pc.lim.limit = 0 }()
	for range max1xx + 1 {
		resp, err := http.ReadResponse(pc.br, postHead)
		if err != nil {
			return nil, err
		}
		switch {
		case resp.StatusCode < 100 || resp.StatusCode > 999:
			// net/http reads any three digits; below 100 is no HTTP status (found by fuzzing).
			resp.Body.Close()
			return nil, fmt.Errorf("the server answered an invalid status code %03d", resp.StatusCode)
		case resp.StatusCode == http.StatusSwitchingProtocols:
			return nil, errors.New("the server switched protocols (101) in answer to a webhook")
		case resp.StatusCode >= 100 && resp.StatusCode < 200:
			continue // informational (100 Continue, 103 Early Hints): the answer follows
		}
		return resp, nil
	}
	return nil, fmt.Errorf("more than %d informational responses", max1xx)
}

// h1Body is a response body whose connection goes back to the pool once the body has been
// read to its end and closed; a body closed early takes its connection with it.
type h1Body struct {
	t     *h1Transport
	pc    *h1Conn
	body  io.ReadCloser
	eof   bool
	reuse bool
	stop  func() bool
	done  bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *h1Body) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	_ = b.body.Close()
	// A stop that finds the context already done means its deadline reset may be under way:
	// such a connection is not reused.
	if b.stop() && b.eof && b.reuse {
		// Cleared: the attempt's deadline would otherwise fail the liveness peek (and
		// so close the connection) once it passed, long before idleFor.
		_ = b.pc.c.SetDeadline(time.Time{})
		b.t.put(b.pc)
	} else {
		b.pc.close()
	}
	return nil
}

// get takes the most recently used idle connection to key that is still open.
func (t *h1Transport) get(key string) *h1Conn {
	now := time.Now()
	for {
		t.mu.Lock()
		list := t.idle[key]
		if len(list) == 0 {
			t.mu.Unlock()
			return nil
		}
		pc := list[len(list)-1]
		list[len(list)-1] = nil
		t.idle[key] = list[:len(list)-1]
		t.nIdle--
		t.mu.Unlock()
		if idle := now.Sub(pc.idleAt); idle < t.idleFor && pc.br.Buffered() == 0 && (idle < peekAfter || pc.peekOpen()) {
			return pc
		}
		pc.close()
	}
}

// peekAfter is how long a connection must have been idle before get peeks at its socket.
// The peek is a system call per request, about 2.5% of the sending process's CPU in batch
// deliveries on a virtual machine, where system calls are dear, and a connection that answered
// moments ago is almost always still open. When its server did close it meanwhile, the
// request fails on it with nothing read back, and post sends it again on a new connection,
// as it does when a close crosses the request. Unasked bytes the server sent with its last
// answer are in the buffer and checked without a system call; a receiver that times out an
// idle connection with an answer of its own (a 408) does so after seconds, not within this.
const peekAfter = 100 * time.Millisecond

func (t *h1Transport) put(pc *h1Conn) {
	pc.idleAt = time.Now()
	t.mu.Lock()
	if len(t.idle[pc.key]) >= t.maxIdlePerHost || t.nIdle >= t.maxIdle {
		t.mu.Unlock()
		pc.close()
		return
	}
	t.idle[pc.key] = append(t.idle[pc.key], pc)
	t.nIdle++
	if t.sweepAt == nil {
		t.sweepAt = time.AfterFunc(sweepEvery, t.sweep)
	}
	t.mu.Unlock()
}

// sweepEvery is how often idle connections are checked: those idle too long, or closed by
// their server, are closed here rather than left half-open until the next request to it.
const sweepEvery = 5 * time.Second

func (t *h1Transport) sweep() {
	now := time.Now()
	var gone []*h1Conn
	t.mu.Lock()
	for key, list := range t.idle {
		kept := list[:0]
		for _, pc := range list {
			if now.Sub(pc.idleAt) < t.idleFor && pc.alive() {
				kept = append(kept, pc)
			} else {
				gone = append(gone, pc)
			}
		}
		clear(list[len(kept):])
		if len(kept) == 0 {
			delete(t.idle, key)
		} else {
			t.idle[key] = kept
		}
	}
	t.nIdle -= len(gone)
	t.sweepAt = nil
	if t.nIdle > 0 {
		t.sweepAt = time.AfterFunc(sweepEvery, t.sweep)
	}
	t.mu.Unlock()
	for _, pc := range gone {
		pc.close()
	}
}

// idleCount is how many connections wait in the pool.
func (t *h1Transport) idleCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nIdle
}

// CloseIdleConnections closes every idle connection, here and in the fallback.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	var all []*h1Conn
	for _, list := range t.idle {
		all = append(all, list...)
	}
	t.idle = map[string][]*h1Conn{}
	t.nIdle = 0
	if t.sweepAt != nil {
		t.sweepAt.Stop()
		t.sweepAt = nil
	}
	t.mu.Unlock()
	for _, pc := range all {
		pc.close()
	}
	t.fallback.CloseIdleConnections()
}
