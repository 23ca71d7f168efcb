package delivery

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
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
	"unicode/utf8"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/signature"
)

// ResponseExcerptLimit is how much of a response body the attempt log keeps.
const ResponseExcerptLimit = 4 << 10

// Request is one HTTP attempt to make.
type Request struct {
	Webhook   *models.Webhook
	MessageID string // X-Webhook-Id / webhook-id: the event id, stable across retries
	EventType string
	Body      []byte // exact bytes; signed as they are
	Attempt   int
	Test      bool
	// TraceParent, when set, goes out as the W3C traceparent header: the attempt's send span,
	// for webhooks that ask for trace context.
	TraceParent string
}

// Response is what an attempt produced.
type Response struct {
	StartedAt      time.Time
	Duration       time.Duration
	RequestHeaders http.Header
	Status         int // 0 when no response
	Headers        http.Header
	Body           string // first ResponseExcerptLimit bytes
	Err            error
	TimedOut       bool
	RetryAfter     time.Duration // from Retry-After on 429/503, 0 when absent
	Location       string
}

// OK reports whether the attempt succeeded (any 2xx).
func (r *Response) OK() bool { return r.Err == nil && r.Status >= 200 && r.Status < 300 }

// ErrorText is what the attempt log shows as the error.
func (r *Response) ErrorText() string {
	switch {
	case r.Err != nil:
		return r.Err.Error()
	case r.Status >= 300 && r.Status < 400:
		return fmt.Sprintf("redirect %d to %q not followed", r.Status, r.Location)
	case !r.OK():
		return fmt.Sprintf("HTTP %d", r.Status)
	}
	return ""
}

// Sender makes signed HTTP attempts. It keeps two transports: a guarded one for customer
// URLs and an unguarded one used only for this server's own /inspect/ URLs. It calls them
// directly rather than through an http.Client: redirects are never followed and there are no
// cookies, so the client would only add a copy of the headers per request.
type Sender struct {
	guarded   *h1Transport
	own       *h1Transport
	ownConns  *ownConns // the own transport's open connections
	targets   sync.Map  // webhook URL → *target
	nTargets  atomic.Int64
	publicURL string
	timeout   time.Duration
	userAgent string
	now       func() time.Time
}

// SenderConfig configures a Sender.
type SenderConfig struct {
	Timeout      time.Duration
	AllowPrivate bool
	PublicURL    string
	Version      string
	MaxConns     int // idle keep-alive connections kept per host: size it to the worker count
	Now          func() time.Time
	RootCAs      *x509.CertPool // nil: the system's
}

// NewSender builds a Sender with pooled keep-alive transports.
func NewSender(cfg SenderConfig) *Sender {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 64
	}
	mk := func(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *h1Transport {
		return newH1Transport(dial, cfg.RootCAs, cfg.MaxConns, &http.Transport{
			Proxy:                 nil, // a proxy would dial for us and bypass the guard
			DialContext:           dial,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          cfg.MaxConns * 4,
			MaxIdleConnsPerHost:   cfg.MaxConns,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   cfg.Timeout,
			ExpectContinueTimeout: time.Second,
			DisableCompression:    true,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: cfg.RootCAs},
		})
	}
	ownConns := newOwnConns()
	return &Sender{
		guarded:   mk(dialer(cfg.AllowPrivate)),
		own:       mk(ownConns.dial(dialer(true))),
		ownConns:  ownConns,
		publicURL: cfg.PublicURL,
		timeout:   cfg.Timeout,
		userAgent: "Hookrelay/" + cfg.Version,
		now:       cfg.Now,
	}
}

// OwnDelivery reports whether a request that reached this server from remoteAddr came over
// a connection this sender opened to its own inspector: one of its own deliveries. Only a
// direct connection is recognised; through a proxy, the remote address is the proxy's.
func (s *Sender) OwnDelivery(remoteAddr string) bool { return s.ownConns.has(remoteAddr) }

// Timeout bounds one attempt, from connecting to the last byte of the response excerpt: the
// engine sizes its claim lease from it.
func (s *Sender) Timeout() time.Duration { return s.timeout }

// CloseIdleConnections closes the pooled keep-alive connections, so a stopped server (or
// a test) leaves no connection goroutines behind.
func (s *Sender) CloseIdleConnections() {
	s.guarded.CloseIdleConnections()
	s.own.CloseIdleConnections()
}

// ConnStats says how well keep-alive works: a receiver that closes its connections shows as
// many opened for few reused.
type ConnStats struct {
	Opened uint64 // connections made since start
	Reused uint64 // attempts sent on a kept-alive connection
	Idle   int    // kept-alive connections waiting now
}

// ConnStats sums both transports' connection counts (requests the fallback Transport sends
// are not counted).
func (s *Sender) ConnStats() ConnStats {
	return ConnStats{
		Opened: s.guarded.opened.Load() + s.own.opened.Load(),
		Reused: s.guarded.reused.Load() + s.own.reused.Load(),
		Idle:   s.guarded.idleCount() + s.own.idleCount(),
	}
}

// Headers builds the request headers of an attempt at time at. Exported so tests and the
// inspector documentation can show the exact set.
func (s *Sender) Headers(r Request, at time.Time) http.Header {
	// Keys are written already canonical (or lowercase, for Standard Webhooks, as its spec
	// shows them), and the values share one backing array: this runs for every attempt.
	vals := make([]string, 0, 11)
	h := make(http.Header, 12)
	set := func(k, v string) {
		vals = append(vals, v)
		h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	set("Content-Type", "application/json")
	set("User-Agent", s.userAgent)
	set("X-Webhook-Event", r.EventType)
	set("X-Webhook-Timestamp", models.FormatTimestamp(at))
	set("X-Webhook-Id", r.MessageID)
	set("X-Webhook-Attempt", strconv.Itoa(r.Attempt))
	if r.Test {
		set("X-Webhook-Test", "true")
	}
	if r.TraceParent != "" {
		set("traceparent", r.TraceParent)
	}
	unix := at.Unix()
	set("webhook-id", r.MessageID)
	set("webhook-timestamp", strconv.FormatInt(unix, 10))
	// During a rotation X-Webhook-Signature (one signature) keeps the current secret until the
	// new one takes effect, while webhook-signature carries both.
	if hex, secrets := r.Webhook.SecretsAt(at); hex != "" {
		set("X-Webhook-Signature", signature.HexHMAC(hex, r.Body))
		sig := ""
		for i, sec := range secrets {
			if i > 0 {
				sig += " "
			}
			sig += signature.StandardFor(sec, r.MessageID, unix, r.Body)
		}
		set("webhook-signature", sig)
	}
	return h
}

// Send makes one attempt. It never follows redirects and bounds the whole exchange, from
// connect to the last byte of the excerpt, by the timeout.
func (s *Sender) Send(ctx context.Context, r Request) *Response {
	at := s.now().UTC()
	// X-Webhook-Timestamp has whole seconds; the Standard Webhooks one is unix seconds. Use
	// the same second for both so they always agree.
	at = at.Truncate(time.Second)
	resp := &Response{StartedAt: s.now().UTC()}
	headers := s.Headers(r, at)
	resp.RequestHeaders = headers
	start := time.Now()
	defer func() { resp.Duration = time.Since(start) }()

	tg, err := s.target(r.Webhook.URL)
	if err != nil {
		resp.Err = fmt.Errorf("invalid URL: %w", err)
		return resp
	}
	header := headers
	if u := tg.u.User; u != nil {
		// A receiver behind Basic auth: its credentials are part of the URL the admin gave.
		// Sent on a copy, so the attempt log (resp.RequestHeaders) never holds them.
		pw, _ := u.Password()
		header = headers.Clone()
		header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pw)))
	}
	tr := s.guarded
	if tg.own {
		tr = s.own
	}
	hr, err := tr.post(ctx, tg, header, r.Body, start.Add(s.timeout))
	if err != nil {
		resp.Err, resp.TimedOut = classify(err, ctx, s.timeout)
		return resp
	}
	defer hr.Body.Close()
	resp.Status = hr.StatusCode
	resp.Headers = hr.Header
	resp.Location = hr.Header.Get("Location")
	buf := excerptBufs.Get().(*bytes.Buffer)
	buf.Reset()
	_, err = buf.ReadFrom(io.LimitReader(hr.Body, ResponseExcerptLimit))
	if excerpt := buf.Bytes(); len(excerpt) > 0 {
		if !utf8.Valid(excerpt) {
			excerpt = bytes.ToValidUTF8(excerpt, []byte("\uFFFD"))
		}
		resp.Body = string(excerpt)
	}
	excerptBufs.Put(buf)
	if err != nil {
		resp.Err, resp.TimedOut = classify(err, ctx, s.timeout)
		return resp
	}
	// Drain a bounded remainder so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(hr.Body, 256<<10))
	if hr.StatusCode == http.StatusTooManyRequests || hr.StatusCode == http.StatusServiceUnavailable {
		resp.RetryAfter = parseRetryAfter(hr.Header.Get("Retry-After"), at)
	}
	return resp
}

// target parses a webhook URL, once: every attempt to a webhook would otherwise parse its
// URL twice (for the request and for the own-inspector check). At most maxTargets URLs are
// kept; past that the cache starts over, so URLs of deleted webhooks do not pile up.
func (s *Sender) target(raw string) (*target, error) {
	if v, ok := s.targets.Load(raw); ok {
		return v.(*target), nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	tg := newTarget(u)
	tg.own = OwnInspectorURL(s.publicURL, raw)
	if s.nTargets.Add(1) > maxTargets {
		s.targets.Clear()
		s.nTargets.Store(1)
	}
	s.targets.Store(raw, tg)
	return tg, nil
}

const maxTargets = 4096

// excerptBufs hold response excerpts while they are read: most answers have an empty or
// short body, which then costs no allocation.
var excerptBufs = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, ResponseExcerptLimit+bytes.MinRead)) }}

// classify turns transport errors into the short texts the attempt log shows.
func classify(err error, ctx context.Context, timeout time.Duration) (error, bool) {
	if b, ok := IsBlocked(err); ok {
		return b, false
	}
	// Cancellation first: it cuts an exchange by moving the connection's deadline, so a read
	// it ends fails like a timeout.
	if errors.Is(err, context.Canceled) || errors.Is(ctx.Err(), context.Canceled) {
		return errors.New("cancelled: the server is shutting down"), false
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("timeout: no complete response within %s", timeout), true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return fmt.Errorf("DNS lookup failed for %s: %s", dnsErr.Name, dnsErr.Err), false
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return errors.New("connection refused"), false
	}
	if errors.Is(err, syscall.ECONNRESET) {
		return errors.New("connection reset by peer"), false
	}
	var tlsErr *tls.CertificateVerificationError
	if errors.As(err, &tlsErr) {
		return fmt.Errorf("TLS: %s", tlsErr.Err), false
	}
	var recErr tls.RecordHeaderError
	if errors.As(err, &recErr) {
		return errors.New("TLS: the server did not answer with TLS"), false
	}
	var urlErr interface{ Unwrap() error }
	if errors.As(err, &urlErr) {
		if inner := urlErr.Unwrap(); inner != nil {
			return inner, false
		}
	}
	return err, false
}

// parseRetryAfter reads delta-seconds or an HTTP date; the result is capped at 24 h.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > 24*3600 {
			secs = 24 * 3600
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d < 0 {
		return 0
	}
	return min(d, 24*time.Hour)
}

// headerJSON flattens headers for the attempt log, one value per name: a JSON object with the
// names sorted, as json.Marshal of a map would write it, built without the map and the
// reflection, in a reused buffer (it runs twice per attempt).
func headerJSON(h http.Header) string {
	if len(h) == 0 {
		return "{}"
	}
	var arr [24]string
	names := arr[:0]
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	bp := headerBufs.Get().(*[]byte)
	b := append((*bp)[:0], '{')
	for i, k := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = models.AppendJSONString(b, k)
		b = append(b, ':')
		if vs := h[k]; len(vs) == 1 {
			b = models.AppendJSONString(b, vs[0])
		} else {
			b = models.AppendJSONString(b, strings.Join(vs, ", "))
		}
	}
	b = append(b, '}')
	out := string(b)
	if cap(b) <= 64<<10 {
		*bp = b
		headerBufs.Put(bp)
	}
	return out
}

var headerBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}
