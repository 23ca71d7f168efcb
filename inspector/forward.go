package inspector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/delivery"
	"github.com/hookrelay/hookrelay/models"
)

// ForwardResult is what forwarding a capture produced.
type ForwardResult struct {
	Status     *int                `json:"status" example:"200"` // null when there was no response
	Headers    map[string][]string `json:"headers" extensions:"x-example-of=response-headers"`
	Body       string              `json:"body" example:"{\"ok\":true}"` // first 4 KiB of the response body
	DurationMS int64               `json:"duration_ms" example:"42"`
	Error      *string             `json:"error"` // transport error, SSRF refusal or timeout; null when a response came
} // @name ForwardResult

// hopByHop are headers that describe one connection, not the request, plus those the client
// recomputes (Host, Content-Length).
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Host": true, "Content-Length": true,
	// Sent as captured, it would make the excerpt compressed bytes; Go asks for gzip itself
	// and decompresses transparently.
	"Accept-Encoding": true,
}

// ForwardHeader is what a captured request is sent again with: its headers except the
// hop-by-hop ones (and those Connection names), values copied. A request captured without
// User-Agent gets an empty one, so that Go's client sends none rather than its own.
func ForwardHeader(captured http.Header) http.Header {
	out := http.Header{}
	drop := map[string]bool{}
	for _, v := range captured.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			drop[textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(name))] = true
		}
	}
	for name, values := range captured {
		key := textproto.CanonicalMIMEHeaderKey(name)
		if hopByHop[key] || drop[key] {
			continue
		}
		out[name] = append([]string(nil), values...)
	}
	if out.Get("User-Agent") == "" {
		out["User-Agent"] = []string{""}
	}
	return out
}

type forwarder struct {
	publicURL string
	guarded   *http.Client
	own       *http.Client
	timeout   time.Duration
}

func newForwarder(publicURL string, allowPrivate bool, timeout time.Duration) forwarder {
	return forwarder{publicURL: publicURL, timeout: timeout,
		guarded: delivery.NewGuardedClient(allowPrivate, timeout),
		own:     delivery.NewGuardedClient(true, timeout)}
}

// CheckForwardURL says what is wrong with a forward target, or "" when it is usable. Whether
// its address may be reached is decided at connect time, by the same guard as deliveries.
func CheckForwardURL(raw string) string {
	if raw == "" {
		return "is required"
	}
	if len(raw) > 2000 {
		return "must be at most 2000 characters"
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Hostname() == "" {
		return "must be an absolute URL such as http://localhost:3000/webhook"
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "must use http:// or https://"
	}
	return ""
}

// Forward sends the captured request once to target: same method, same body bytes, same
// headers except the hop-by-hop ones. The SSRF guard applies as for deliveries (this
// server's own /inspect/ URLs are always allowed); redirects are not followed.
func (in *Inspector) Forward(ctx context.Context, c *models.Capture, target string) ForwardResult {
	return in.forward.do(ctx, c, target)
}

func (f forwarder) do(ctx context.Context, c *models.Capture, target string) ForwardResult {
	res := ForwardResult{Headers: map[string][]string{}}
	start := time.Now()
	fail := func(err error) ForwardResult {
		msg := errorText(err, f.timeout)
		res.Error = &msg
		res.DurationMS = time.Since(start).Milliseconds()
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, c.Method, target, bytes.NewReader(c.Body))
	if err != nil {
		return fail(err)
	}
	var captured http.Header
	_ = json.Unmarshal([]byte(c.Headers), &captured)
	req.Header = ForwardHeader(captured)
	client := f.guarded
	if delivery.OwnInspectorURL(f.publicURL, target) {
		client = f.own
	}
	resp, err := client.Do(req)
	if err != nil {
		return fail(err)
	}
	defer resp.Body.Close()
	status := resp.StatusCode
	res.Status = &status
	res.Headers = resp.Header
	excerpt, err := io.ReadAll(io.LimitReader(resp.Body, delivery.ResponseExcerptLimit))
	res.Body = string(bytes.ToValidUTF8(excerpt, []byte("\uFFFD")))
	if err != nil {
		return fail(err)
	}
	res.DurationMS = time.Since(start).Milliseconds()
	return res
}

// errorText is the short error shown for a failed forward.
func errorText(err error, timeout time.Duration) string {
	if b, ok := delivery.IsBlocked(err); ok {
		return b.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return "timeout: no complete response within " + timeout.String()
	}
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err.Error()
	}
	return err.Error()
}
