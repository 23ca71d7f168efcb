// Package inspector is Hookrelay's built-in receiver: requests to /inspect/<bin id> are
// captured byte for byte, verified (signatures, timestamp, payload) and pushed live to the
// bin's WebSocket subscribers. The HTTP glue and the problem responses live in api; this
// package holds what a capture is and how it is made, stored, verified and streamed.
package inspector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/hookrelay/hookrelay/models"
)

// CaptureStore is what receiving a capture needs: the bin, its linked webhook's secret, and
// somewhere to keep the capture.
type CaptureStore interface {
	GetBin(ctx context.Context, id string) (*models.Bin, error)
	// WebhooksToSend reads webhooks as the dispatcher signs with them: from a short-lived
	// cache that a change made through this store empties at once.
	WebhooksToSend(ctx context.Context, ids []string) (map[string]*models.Webhook, error)
	InsertCapture(ctx context.Context, c *models.Capture, keep int) error
}

// Limits of the receiver.
const (
	MaxBodyBytes     = 1 << 20 // larger bodies are answered 413 and recorded as rejected
	KeepPerBin       = 500     // captures kept per bin; the oldest go first
	MaxResponseBody  = 64 << 10
	MaxResponseDelay = 30 * time.Second
)

// Errors Receive returns; the API maps them to problems.
var (
	ErrTooLarge    = errors.New("body too large")
	ErrRateLimited = errors.New("rate limit exceeded")
	// ErrYielded refuses a capture that waited its longest for deliveries in flight.
	ErrYielded  = errors.New("yielding to deliveries")
	ErrReadBody = errors.New("could not read the body")
)

// Config wires an Inspector.
type Config struct {
	Store     CaptureStore
	Hub       *Hub      // WebSocket clients of this process
	Publisher Publisher // where captures are announced; defaults to Local{Hub}
	PublicURL string    // base of the bin URLs, e.g. https://hooks.example.com
	// Rate is captures per second accepted per bin (burst twice that); 0 is unlimited.
	Rate float64
	// Yield says whether a request from remoteAddr must yield to deliveries now: attempts
	// are in flight and the request is not one of them. While it does, the bins together
	// take at most BusyRate captures a second (0: captures never yield). See yieldToDeliveries.
	Yield    func(remoteAddr string) bool
	BusyRate float64
	// RefusedHold is how long a request refused for the rate waits before its 429 (1 s, the
	// Retry-After it carries; negative answers at once), and MaxHeld how many such requests
	// wait at once (512); past that they are answered at once.
	RefusedHold    time.Duration
	MaxHeld        int
	AllowPrivate   bool          // forward may target loopback/private addresses
	ForwardTimeout time.Duration // bounds one forward, connect to last byte (10 s)
	Logger         *slog.Logger
	Now            func() time.Time
	// OwnCookies are the cookies this server sets (the admin session). A browser sends them
	// to a bin URL on the same host; they are cut from the capture, so an admin's session is
	// never stored, shown, copied as curl or forwarded.
	OwnCookies []string
}

// Inspector receives, stores, verifies and announces captures.
type Inspector struct {
	cfg       Config
	store     CaptureStore
	pub       Publisher
	limiters  *limiters
	busy      *rate.Limiter // nil: captures never yield
	forward   forwarder
	held      chan struct{} // a slot per refused request being held
	closing   chan struct{} // closed by ReleaseHeld
	closeOnce sync.Once
}

// New builds an Inspector.
func New(cfg Config) *Inspector {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Hub == nil {
		cfg.Hub = NewHub(HubConfig{PublicURL: cfg.PublicURL, Logger: cfg.Logger})
	}
	if cfg.Publisher == nil {
		cfg.Publisher = Local{Hub: cfg.Hub}
	}
	if cfg.ForwardTimeout <= 0 {
		cfg.ForwardTimeout = 10 * time.Second
	}
	if cfg.RefusedHold == 0 {
		cfg.RefusedHold = time.Second
	}
	if cfg.MaxHeld <= 0 {
		cfg.MaxHeld = 512
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	in := &Inspector{cfg: cfg, store: cfg.Store, pub: cfg.Publisher, limiters: newLimiters(cfg.Rate),
		forward: newForwarder(cfg.PublicURL, cfg.AllowPrivate, cfg.ForwardTimeout),
		held:    make(chan struct{}, cfg.MaxHeld), closing: make(chan struct{})}
	if cfg.Yield != nil && cfg.BusyRate > 0 {
		in.busy = rate.NewLimiter(rate.Limit(cfg.BusyRate), max(1, int(cfg.BusyRate/10)))
	}
	return in
}

// DefaultBusyRate is BusyRate's default: four bins at the default per-bin limit (50/s).
// Measured (docs/performance.md), a bin flooded without any limit took a quarter of the
// deliveries' rate; held to this rate, it left them within the spread of their quiet rate,
// and half of it did no better.
const DefaultBusyRate = 200

// yieldTurn is how often captures waiting for deliveries go on: together, each turn.
const yieldTurn = 100 * time.Millisecond

// maxYieldWait is the longest a capture waits for its turn while deliveries are in flight;
// one that would wait longer is refused for the rate (held, then 429 with Retry-After).
const maxYieldWait = time.Second

// yieldToDeliveries makes a capture wait its turn while deliveries are in flight, and
// reports whether it may go on. Captures and deliveries share the machine's cores (and, on
// SQLite, its one writer); a bin taking requests as fast as senders send them, with no
// per-bin limit, would otherwise take a quarter of the deliveries' rate. Deliveries come
// first: the bins together take BusyRate captures a second meanwhile, each waiting up to
// maxYieldWait, so a sender slows down rather than losing requests. This server's own
// deliveries to its own bins never wait: they are the deliveries.
func (in *Inspector) yieldToDeliveries(r *http.Request) bool {
	if in.busy == nil || !in.cfg.Yield(r.RemoteAddr) {
		return true
	}
	res := in.busy.Reserve()
	d := res.Delay()
	switch {
	case d == 0:
		return true
	case d > maxYieldWait:
		res.Cancel()
		return false
	}
	// Wake at the next turn's boundary: the captures whose turns fall within one turn go
	// on together and share a transaction (group commit) instead of one each, which would
	// take the writer from deliveries BusyRate times a second.
	now := time.Now()
	wake := now.Add(d).Truncate(yieldTurn).Add(yieldTurn)
	t := time.NewTimer(wake.Sub(now))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
	case <-in.closing:
	}
	res.Cancel()
	return false
}

// HoldRefused keeps a request refused for the rate waiting before it is answered, as a
// rate limiter that delays excess requests does. A sender that retries a 429 at once, on as
// many connections as it likes, would otherwise have the server refuse it as fast as the
// machine can answer: CPU taken from deliveries while nothing is stored. Held, each of its
// connections costs a parked goroutine for the Retry-After it is told anyway. At most
// MaxHeld requests wait at once, so holding cannot pile up connections; past that, when the
// client hangs up and when the server shuts down, the answer goes at once.
//
// The body is read first (up to holdBodyBytes; a longer one is not held): net/http notices a
// client hanging up only once the request's body has been read.
func (in *Inspector) HoldRefused(r *http.Request) {
	if in.cfg.RefusedHold <= 0 || r.ContentLength > holdBodyBytes {
		return
	}
	if n, _ := io.Copy(io.Discard, io.LimitReader(r.Body, holdBodyBytes+1)); n > holdBodyBytes {
		return
	}
	select {
	case in.held <- struct{}{}:
	default:
		return
	}
	defer func() { <-in.held }()
	t := time.NewTimer(in.cfg.RefusedHold)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	case <-in.closing:
	}
}

// holdBodyBytes is the longest body of a refused request that is read so it can be held.
const holdBodyBytes = 64 << 10

// ReleaseHeld answers every held request at once, and those refused later too: the server
// is shutting down and waits for them.
func (in *Inspector) ReleaseHeld() { in.closeOnce.Do(func() { close(in.closing) }) }

// Held is how many refused requests are being held now.
func (in *Inspector) Held() int { return len(in.held) }

// Hub returns the WebSocket hub of this process.
func (in *Inspector) Hub() *Hub { return in.cfg.Hub }

// Rate is the per-bin limit in captures per second; 0 is unlimited.
func (in *Inspector) Rate() float64 { return in.cfg.Rate }

// BusyRate is how many captures a second the bins together take while deliveries are in
// flight; 0: captures never yield.
func (in *Inspector) BusyRate() float64 {
	if in.busy == nil {
		return 0
	}
	return in.cfg.BusyRate
}

// BinURL is the public receiver URL of a bin.
func (in *Inspector) BinURL(id string) string { return in.cfg.PublicURL + "/inspect/" + id }

// Forget drops per-bin state kept in memory (the bin was deleted) and disconnects its clients.
func (in *Inspector) Forget(binID string) {
	in.limiters.forget(binID)
	in.cfg.Hub.CloseTopic(binID)
}

// Receive captures r into the bin. It returns the bin, whose configured response the caller
// sends with Respond. A body over MaxBodyBytes is still recorded, without its body, and the
// error is ErrTooLarge. Unknown bins are models.ErrNotFound and nothing is recorded; neither
// is anything past the rate limit (ErrRateLimited).
func (in *Inspector) Receive(r *http.Request, binID string) (*models.Bin, error) {
	ctx := r.Context()
	b, err := in.store.GetBin(ctx, binID)
	if err != nil {
		return nil, err
	}
	if !in.limiters.allow(binID) {
		return b, ErrRateLimited
	}
	if !in.yieldToDeliveries(r) {
		return b, ErrYielded
	}
	body, tooLarge, err := readBody(r.Body, r.ContentLength)
	if err != nil {
		return b, fmt.Errorf("%w: %w", ErrReadBody, err)
	}
	receivedAt := in.cfg.Now().UTC()
	headers := r.Header.Clone()
	dropCookies(headers, in.cfg.OwnCookies)
	if r.Host != "" {
		headers["Host"] = []string{r.Host} // net/http moves Host out of the header map
	}
	c := &models.Capture{BinID: b.ID, Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
		Headers: encodeHeaders(headers), Body: body, Size: int64(len(body)), RemoteAddr: r.RemoteAddr, ReceivedAt: receivedAt,
		Answered: AnswerStatus(b)}

	var v Verdicts
	if tooLarge {
		c.Body = []byte{}
		c.Size = max(r.ContentLength, MaxBodyBytes+1)
		c.Rejected = fmt.Sprintf("body larger than %d bytes: answered 413", MaxBodyBytes)
		c.Answered = http.StatusRequestEntityTooLarge
		v = rejectedVerdicts(in.secrets(ctx, b, receivedAt), r.Header)
	} else {
		v = Verify(in.secrets(ctx, b, receivedAt), r.Header, body, receivedAt)
	}
	c.Verdicts = string(appendVerdicts(make([]byte, 0, 160), &v))
	// The client may hang up right after sending; the capture is still worth keeping.
	if err := in.store.InsertCapture(context.WithoutCancel(ctx), c, KeepPerBin); err != nil {
		return b, err
	}
	in.pub.Publish(b.ID, c.ID, func() []byte { return message(c, &v) })
	if tooLarge {
		return b, ErrTooLarge
	}
	return b, nil
}

// secrets are the verification secrets at now. A linked webhook's are the ones its deliveries
// are signed with: read through the dispatcher's cache, where a rotation made through this
// store applies at once and another replica's within the cache's quarter of a second, as it
// does for the signing. (Read from the database, they cost a query per capture.)
func (in *Inspector) secrets(ctx context.Context, b *models.Bin, now time.Time) Secrets {
	var wh *models.Webhook
	if b.Secret == "" && b.WebhookID != "" {
		ws, err := in.store.WebhooksToSend(ctx, []string{b.WebhookID})
		if err != nil {
			in.cfg.Logger.Warn("inspector: read linked webhook", "bin", b.ID, "webhook", b.WebhookID, "err", err)
		}
		wh = ws[b.WebhookID]
	}
	return SecretsFor(b, wh, now)
}

// rejectedVerdicts describes a capture whose body was not kept: nothing could be verified.
func rejectedVerdicts(sec Secrets, h http.Header) Verdicts {
	sig := func(has bool, header string) string {
		switch {
		case !has:
			return SigNoSecret
		case h.Get(header) == "":
			return SigMissing
		}
		return SigInvalid
	}
	return Verdicts{
		Signature:         sig(sec.HexHMAC != "", "X-Webhook-Signature"),
		StandardSignature: sig(len(sec.Standard) > 0, "Webhook-Signature"),
		Payload: PayloadVerdict{Status: PayloadProblems,
			Problems: []string{fmt.Sprintf("body: larger than %d bytes, not kept, so neither it nor its signatures could be checked", MaxBodyBytes)}},
	}
}

// encodeHeaders is the headers as a JSON object of string arrays, keys sorted: what
// json.Marshal writes, less its HTML escaping, without its reflection on every capture.
func encodeHeaders(h http.Header) string {
	keys := make([]string, 0, len(h))
	size := 2
	for k, vs := range h {
		keys = append(keys, k)
		size += len(k) + 6
		for _, v := range vs {
			size += len(v) + 3
		}
	}
	slices.Sort(keys)
	b := make([]byte, 0, size+size/8)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = models.AppendJSONString(b, k)
		b = append(b, ':')
		if h[k] == nil {
			b = append(b, "null"...)
			continue
		}
		b = append(b, '[')
		for j, v := range h[k] {
			if j > 0 {
				b = append(b, ',')
			}
			b = models.AppendJSONString(b, v)
		}
		b = append(b, ']')
	}
	return string(append(b, '}'))
}

// readBody reads up to MaxBodyBytes and reports whether there was more.
// A declared length within the limit sizes the buffer at once: io.ReadAll would grow it by
// doubling, allocating and copying about twice the body.
func readBody(body io.Reader, length int64) ([]byte, bool, error) {
	if body == nil {
		return []byte{}, false, nil
	}
	buf := bytes.NewBuffer(make([]byte, 0, min(max(length, 0), MaxBodyBytes)+bytes.MinRead))
	_, err := buf.ReadFrom(io.LimitReader(body, MaxBodyBytes+1))
	b := buf.Bytes()
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	if len(b) > MaxBodyBytes {
		return nil, true, nil
	}
	return b, false, nil
}

// AnswerStatus is the status the bin answers a request it keeps with: its configured one,
// 200 by default.
func AnswerStatus(b *models.Bin) int {
	if b.ResponseStatus == 0 {
		return http.StatusOK
	}
	return b.ResponseStatus
}

// Respond answers with the bin's configured response after its delay. A client that hangs up
// during the delay ends the wait.
func Respond(ctx context.Context, w http.ResponseWriter, b *models.Bin) {
	if b.ResponseDelayMS > 0 {
		t := time.NewTimer(time.Duration(b.ResponseDelayMS) * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
	if b.ResponseContentType != "" {
		w.Header().Set("Content-Type", b.ResponseContentType)
	}
	w.Header().Set("Cache-Control", "no-store")
	// The configured body is served from the admin UI's origin: a sandboxed, script-free
	// document, never sniffed, so a bin answering text/html cannot run code against the API.
	w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	status := AnswerStatus(b)
	if status == http.StatusNoContent || status == http.StatusNotModified {
		w.WriteHeader(status) // these may not carry a body
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b.ResponseBody)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, b.ResponseBody)
}

// limiters holds one token bucket per bin.
type limiters struct {
	mu    sync.Mutex
	rate  rate.Limit
	burst int
	m     map[string]*rate.Limiter
}

func newLimiters(perSecond float64) *limiters {
	if perSecond <= 0 {
		return nil
	}
	return &limiters{rate: rate.Limit(perSecond), burst: max(1, int(2*perSecond)), m: map[string]*rate.Limiter{}}
}

func (l *limiters) allow(binID string) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	lim := l.m[binID]
	if lim == nil {
		lim = rate.NewLimiter(l.rate, l.burst)
		l.m[binID] = lim
	}
	l.mu.Unlock()
	return lim.Allow()
}

func (l *limiters) forget(binID string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	delete(l.m, binID)
	l.mu.Unlock()
}

// dropCookies removes the named cookies from h's Cookie headers, keeping the others as sent,
// and the header itself when nothing is left.
func dropCookies(h http.Header, names []string) {
	if len(names) == 0 || len(h["Cookie"]) == 0 {
		return
	}
	var kept []string
	for _, line := range h["Cookie"] {
		var parts []string
		for _, p := range strings.Split(line, ";") {
			name, _, _ := strings.Cut(strings.TrimSpace(p), "=")
			if !slices.Contains(names, name) {
				parts = append(parts, strings.TrimSpace(p))
			}
		}
		if len(parts) > 0 {
			kept = append(kept, strings.Join(parts, "; "))
		}
	}
	if len(kept) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = kept
}
