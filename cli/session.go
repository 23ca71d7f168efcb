package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hookrelay/hookrelay/inspector"
)

// session streams one bin's captures to the target for as long as listen runs. Each capture
// is forwarded once, in arrival order, including those that arrived while the socket was
// down: every (re)connection opens the socket first, then reads the list back to the last
// capture handled and forwards what was missed, oldest first, before what the socket
// delivers (which may repeat some of it: seen drops those).
type session struct {
	api    *apiClient
	binID  string
	target *url.URL
	fwd    *http.Client
	env    Env

	// baseline is the newest capture when listen started: older ones are not forwarded.
	baseline string
	// last is the newest capture id handled; ids are UUIDv7 and sort by arrival.
	last string
	seen map[string]bool
	// ready is called once, when the socket first opens.
	ready func()

	minBackoff, maxBackoff time.Duration
	// readWait is how long the socket may stay silent; the server pings every 20 s.
	readWait time.Duration
}

func newSession(api *apiClient, binID string, target *url.URL, timeout time.Duration, env Env) *session {
	return &session{api: api, binID: binID, target: target, env: env, seen: map[string]bool{},
		// Redirects are the receiver's answer, shown as its status, not followed.
		fwd: &http.Client{Timeout: timeout, Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, DisableCompression: true},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			}},
		minBackoff: 250 * time.Millisecond, maxBackoff: 10 * time.Second, readWait: 65 * time.Second}
}

// run returns nil when ctx ends, and an error only when the bin is gone.
func (s *session) run(ctx context.Context) error {
	newest, err := s.newestID(ctx)
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return err
	}
	s.baseline, s.last = newest, newest
	delay := s.minBackoff
	for first := true; ; first = false {
		up, err := s.connect(ctx, first)
		if ctx.Err() != nil {
			return nil
		}
		if isStatus(err, http.StatusNotFound) || isStatus(err, http.StatusUnauthorized) {
			return err
		}
		if up {
			delay = s.minBackoff
			fmt.Fprintf(s.env.Stderr, "hookrelay listen: disconnected (%v); reconnecting in %s\n", err, delay)
		} else {
			fmt.Fprintf(s.env.Stderr, "hookrelay listen: could not connect (%v); retrying in %s\n", err, delay)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(delay*2, s.maxBackoff)
	}
}

// connect streams until the connection fails; up says whether the socket was opened.
func (s *session) connect(ctx context.Context, first bool) (up bool, err error) {
	conn, err := s.dial(ctx)
	if err != nil {
		return false, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	msgs, readErr := make(chan inspector.CaptureSummary, 256), make(chan error, 1)
	done := make(chan struct{})
	defer close(done)
	go s.read(conn, msgs, readErr, done)
	if first && s.ready != nil {
		s.ready()
	}

	missed, err := s.missed(ctx)
	if err != nil {
		return true, err
	}
	if !first {
		fmt.Fprintf(s.env.Stderr, "hookrelay listen: reconnected; %d request(s) arrived meanwhile\n", len(missed))
	}
	for _, c := range missed {
		if err := s.handle(ctx, c); err != nil {
			return true, err
		}
	}
	for {
		select {
		case c := <-msgs:
			if err := s.handle(ctx, c); err != nil {
				return true, err
			}
		case err := <-readErr:
			return true, err
		case <-ctx.Done():
			return true, ctx.Err()
		}
	}
}

func (s *session) dial(ctx context.Context) (*websocket.Conn, error) {
	u := *s.api.base
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	u.Path += "/api/v1/inspector/bins/" + url.PathEscape(s.binID) + "/ws"
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment}
	conn, resp, err := d.DialContext(ctx, u.String(), http.Header{"Authorization": {"Bearer " + s.api.token}})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil && resp != nil && resp.StatusCode/100 != 1 {
		return nil, &apiError{method: http.MethodGet, path: u.Path, status: resp.StatusCode, detail: "WebSocket refused"}
	}
	return conn, err
}

// read passes the socket's capture messages on until it fails or done closes.
func (s *session) read(conn *websocket.Conn, msgs chan<- inspector.CaptureSummary, readErr chan<- error, done <-chan struct{}) {
	extend := func() { _ = conn.SetReadDeadline(time.Now().Add(s.readWait)) }
	extend()
	conn.SetPingHandler(func(data string) error {
		extend()
		_ = conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(5*time.Second))
		return nil
	})
	for {
		var m inspector.Message
		if err := conn.ReadJSON(&m); err != nil {
			readErr <- err
			return
		}
		extend()
		if m.Type != "request" {
			continue
		}
		select {
		case msgs <- m.Data:
		case <-done:
			return
		}
	}
}

// newestID is the id of the bin's newest capture, "" when it has none.
func (s *session) newestID(ctx context.Context) (string, error) {
	var page list[inspector.CaptureSummary]
	if err := s.api.do(ctx, http.MethodGet, pagePath(s.requestsPath(), 1, ""), nil, &page); err != nil {
		return "", err
	}
	if len(page.Data) == 0 {
		return "", nil
	}
	return page.Data[0].ID, nil
}

// missed lists, oldest first, the captures newer than the baseline not handled yet. The list
// is newest first; paging stops at the page that reaches back to the last capture handled
// (the rest of that page is still looked at, in case two captures were stored out of order).
func (s *session) missed(ctx context.Context) ([]inspector.CaptureSummary, error) {
	var out []inspector.CaptureSummary
	cursor := ""
	for {
		var page list[inspector.CaptureSummary]
		if err := s.api.do(ctx, http.MethodGet, pagePath(s.requestsPath(), 100, cursor), nil, &page); err != nil {
			return nil, err
		}
		reached := false
		for _, c := range page.Data {
			reached = reached || c.ID <= s.last
			if c.ID > s.baseline && !s.seen[c.ID] {
				out = append(out, c)
			}
		}
		if reached || page.NextCursor == nil {
			if !reached && s.last != "" {
				fmt.Fprintln(s.env.Stderr, "hookrelay listen: the bin no longer holds every request that arrived meanwhile (it keeps the last 500)")
			}
			break
		}
		cursor = *page.NextCursor
	}
	slices.Reverse(out)
	return out, nil
}

func (s *session) requestsPath() string {
	return "/api/v1/inspector/bins/" + url.PathEscape(s.binID) + "/requests"
}

// handle forwards one capture unless it was handled already, and prints its line. Only a
// failure to reach the server is an error (the capture is then retried after reconnecting);
// a receiver that fails is reported on the line.
func (s *session) handle(ctx context.Context, sum inspector.CaptureSummary) error {
	if s.seen[sum.ID] || sum.ID <= s.baseline {
		return nil
	}
	var line string
	if sum.Rejected != "" {
		line = s.line(sum, "-", "status=rejected error="+quote(sum.Rejected))
	} else {
		var c inspector.Capture
		err := s.api.do(ctx, http.MethodGet, s.requestsPath()+"/"+url.PathEscape(sum.ID), nil, &c)
		switch {
		case isStatus(err, http.StatusNotFound):
			line = s.line(sum, "-", "status=error error="+quote("pruned from the bin before it could be read"))
		case err != nil:
			return err
		default:
			line = s.line(sum, eventOf(c.Headers), s.forward(ctx, &c))
		}
	}
	if ctx.Err() != nil {
		return ctx.Err() // cancelled mid-forward: no line for a request that was not answered
	}
	s.seen[sum.ID] = true
	s.last = max(s.last, sum.ID)
	fmt.Fprintln(s.env.Stdout, line)
	return nil
}

// line is one request's output: local time, event, verdicts, then the local outcome. Every
// field is one word or key=value, so the lines can be grepped and split on spaces.
func (s *session) line(sum inspector.CaptureSummary, event, outcome string) string {
	v := sum.Verdicts
	return fmt.Sprintf("%s %s signature=%s standard_signature=%s payload=%s %s id=%s",
		time.Now().Format("2006-01-02T15:04:05.000Z07:00"), event, v.Signature, v.StandardSignature, v.Payload.Status,
		outcome, sum.ID)
}

func eventOf(h map[string][]string) string {
	if e := http.Header(h).Get("X-Webhook-Event"); e != "" && !strings.ContainsAny(e, " \t") {
		return e
	}
	return "-"
}

// quote makes a message one field.
func quote(s string) string {
	raw, _ := json.Marshal(s)
	return string(raw)
}
