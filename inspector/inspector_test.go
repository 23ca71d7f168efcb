package inspector_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/hookrelay/hookrelay/api"
	"github.com/hookrelay/hookrelay/inspector"
	"github.com/hookrelay/hookrelay/internal/wait"
	"github.com/hookrelay/hookrelay/signature"
)

// The flagship path, with no flags at all: a webhook pointing at a bin is accepted, its test
// action is delivered there, and the capture arrives on the socket verified.
func TestWebhookTestActionArrivesLiveWithValidSignatureAndOKPayload(t *testing.T) {
	e := newEnv(t, envOptions{})
	bin := e.createBin(map[string]any{"name": "live"})
	if want := e.publicURL + "/inspect/" + bin.ID; bin.URL != want {
		t.Fatalf("bin url %q, want %q", bin.URL, want)
	}
	var wh api.Webhook
	e.must(http.StatusCreated, "POST", "/api/v1/webhooks", map[string]any{"name": "to the inspector", "url": bin.URL,
		"events": []string{"conversation.started", "message.received"}, "generate_secret": true}, &wh)
	e.must(http.StatusOK, "PATCH", "/api/v1/inspector/bins/"+bin.ID, map[string]any{"webhook_id": wh.ID}, &bin)
	if bin.WebhookID == nil || *bin.WebhookID != wh.ID {
		t.Fatalf("bin webhook_id %v, want %s", bin.WebhookID, wh.ID)
	}
	conn := e.dial(bin.ID)
	e.waitClients(bin.ID, 1)

	var attempt api.Attempt
	e.must(http.StatusOK, "POST", "/api/v1/webhooks/"+wh.ID+"/test", map[string]any{"event": "message.received"}, &attempt)
	if attempt.Outcome != "succeeded" || attempt.ResponseStatus == nil || *attempt.ResponseStatus != 200 || attempt.ResponseBody != `{"ok":true}` {
		t.Fatalf("test attempt: outcome %q status %v body %q error %v", attempt.Outcome, attempt.ResponseStatus, attempt.ResponseBody, attempt.Error)
	}
	c := e.whole(bin.ID, next(t, conn).ID)
	assertVerified(t, c.Verdicts)
	if got := c.Headers["X-Webhook-Test"]; !slices.Equal(got, []string{"true"}) {
		t.Errorf("X-Webhook-Test %v, want [true]", got)
	}
	if got := c.Headers["X-Webhook-Event"]; !slices.Equal(got, []string{"message.received"}) {
		t.Errorf("X-Webhook-Event %v", got)
	}
	if c.Method != "POST" || c.Path != "/inspect/"+bin.ID || c.BinID != bin.ID {
		t.Errorf("capture method %q path %q bin %q", c.Method, c.Path, c.BinID)
	}

	// After a rotation the linked webhook's new secret verifies at once: the rotation empties the
	// cache the capture reads it through.
	e.must(http.StatusOK, "POST", "/api/v1/webhooks/"+wh.ID+"/secret/rotate?activate=now", nil, nil)
	e.must(http.StatusOK, "POST", "/api/v1/webhooks/"+wh.ID+"/test", map[string]any{"event": "conversation.started"}, &attempt)
	assertVerified(t, next(t, conn).Verdicts)

	// The stored history says the same as the socket.
	list := e.captures(bin.ID)
	if len(list) != 2 || list[1].ID != c.ID {
		t.Fatalf("history has %d captures (want 2, oldest %s last)", len(list), c.ID)
	}
	assertVerified(t, list[0].Verdicts)
}

// A real publish goes through the outbox and the dispatcher to the bin, without any flag.
func TestPublishedEventIsDeliveredToBinOutOfTheBox(t *testing.T) {
	e := newEnv(t, envOptions{dispatch: true})
	bin := e.createBin(map[string]any{"secret": "plain-secret"})
	var wh api.Webhook
	e.must(http.StatusCreated, "POST", "/api/v1/webhooks", map[string]any{"name": "inspector", "url": bin.URL,
		"events": []string{"conversation.started"}, "secret": "plain-secret"}, &wh)
	conn := e.dial(bin.ID)
	e.waitClients(bin.ID, 1)

	var ev struct {
		ID string `json:"id"`
	}
	e.must(http.StatusAccepted, "POST", "/api/v1/events", map[string]any{"event": "conversation.started",
		"data": map[string]any{"conversation_id": 123, "visitor_name": "John Doe"}}, &ev)
	c := e.whole(bin.ID, next(t, conn).ID)
	assertVerified(t, c.Verdicts)
	if got := c.Headers["X-Webhook-Id"]; !slices.Equal(got, []string{ev.ID}) {
		t.Errorf("X-Webhook-Id %v, want %s", got, ev.ID)
	}
	if _, ok := c.Headers["X-Webhook-Test"]; ok {
		t.Errorf("a real delivery carries X-Webhook-Test")
	}
	// net/http keeps Host out of a request's header map; the capture has it all the same.
	if u, _ := url.Parse(bin.URL); !slices.Equal(c.Headers["Host"], []string{u.Host}) {
		t.Errorf("Host %q, want [%s]", c.Headers["Host"], u.Host)
	}
}

func assertVerified(t *testing.T, v inspector.Verdicts) {
	t.Helper()
	if v.Signature != "valid" || v.StandardSignature != "valid" {
		t.Errorf("signature %q, standard %q; want both valid", v.Signature, v.StandardSignature)
	}
	if v.Payload.Status != "ok" || len(v.Payload.Problems) != 0 {
		t.Errorf("payload %q %v, want ok", v.Payload.Status, v.Payload.Problems)
	}
	if v.TimestampSkewSeconds == nil || *v.TimestampSkewSeconds < -5 || *v.TimestampSkewSeconds > 60 {
		t.Errorf("timestamp skew %v, want a few seconds at most", v.TimestampSkewSeconds)
	}
}

func TestSignatureVerdicts(t *testing.T) {
	e := newEnv(t, envOptions{})
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	withSecret := e.createBin(map[string]any{"secret": secret})
	noSecret := e.createBin(nil)
	body := sampleBody(t, "conversation.started")
	now := time.Now()
	ts := fmt.Sprint(now.Unix())

	signed := func(hexKey, stdKey string) http.Header {
		return http.Header{
			"Content-Type":        {"application/json"},
			"X-Webhook-Event":     {"conversation.started"},
			"X-Webhook-Signature": {signature.HexHMAC(hexKey, body)},
			"Webhook-Id":          {"evt_1"},
			"Webhook-Timestamp":   {ts},
			"Webhook-Signature":   {signature.Standard(stdKey, "evt_1", now, body)},
		}
	}
	cases := []struct {
		name          string
		bin           api.Bin
		header        http.Header
		hex, std      string
		payloadStatus string
	}{
		{"genuine", withSecret, signed(secret, secret), "valid", "valid", "ok"},
		{"forged with another secret", withSecret, signed("attacker", "whsec_YXR0YWNrZXJhdHRhY2tlcmF0dGFja2Vy"), "invalid", "invalid", "ok"},
		{"no signature headers", withSecret, http.Header{"X-Webhook-Event": {"conversation.started"}}, "missing", "missing", "ok"},
		{"bin without a secret", noSecret, signed(secret, secret), "no_secret", "no_secret", "ok"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := e.dial(tc.bin.ID)
			e.waitClients(tc.bin.ID, 1)
			if status, _ := e.send("POST", tc.bin.URL, tc.header, body); status != 200 {
				t.Fatalf("receiver answered %d", status)
			}
			c := next(t, conn)
			if c.Verdicts.Signature != tc.hex || c.Verdicts.StandardSignature != tc.std || c.Verdicts.Payload.Status != tc.payloadStatus {
				t.Errorf("verdicts %+v, want hex %s standard %s payload %s", c.Verdicts, tc.hex, tc.std, tc.payloadStatus)
			}
			conn.Close()
			e.waitClients(tc.bin.ID, 0)
		})
	}

	// A body altered after signing no longer verifies, byte for byte.
	h := signed(secret, secret)
	tampered := bytes.Replace(body, []byte("John Doe"), []byte("John Dof"), 1)
	e.send("POST", withSecret.URL, h, tampered)
	if got := e.captures(withSecret.ID)[0].Verdicts; got.Signature != "invalid" || got.StandardSignature != "invalid" {
		t.Errorf("tampered body verdicts %+v, want invalid", got)
	}
}

func TestBodyMissingRequiredFieldsReportsTheMissingFields(t *testing.T) {
	e := newEnv(t, envOptions{})
	bin := e.createBin(nil)
	conn := e.dial(bin.ID)
	e.waitClients(bin.ID, 1)
	body := []byte(`{"event":"message.received","timestamp":"2025-01-15T10:31:00+00:00","data":{"is_from_admin":false,"admin_name":null,"conversation_id":123,"visitor_name":"John Doe","visitor_email":null,"visitor_phone":null,"visitor_ip":null,"current_url":null,"status":"open","created_at":"2025-01-15T10:31:00+00:00"}}`)
	e.send("POST", bin.URL, http.Header{"X-Webhook-Event": {"message.received"}}, body)
	c := next(t, conn)
	p := c.Verdicts.Payload
	if p.Status != "problems" {
		t.Fatalf("payload status %q, want problems", p.Status)
	}
	for _, want := range []string{"data.message_id: missing", "data.content: missing"} {
		if !slices.Contains(p.Problems, want) {
			t.Errorf("problems %q lack %q", p.Problems, want)
		}
	}
	if len(p.Problems) != 2 {
		t.Errorf("problems %q, want exactly the two missing fields", p.Problems)
	}

	// Without a known X-Webhook-Event there is nothing to check against.
	e.send("POST", bin.URL, http.Header{"Content-Type": {"application/json"}}, []byte(`{"hello":"world"}`))
	if got := next(t, conn).Verdicts.Payload.Status; got != "unknown_event" {
		t.Errorf("payload status %q for an unknown event, want unknown_event", got)
	}
}

func TestNonUTF8BodyRoundTripsAsBase64Exactly(t *testing.T) {
	e := newEnv(t, envOptions{})
	bin := e.createBin(nil)
	conn := e.dial(bin.ID)
	e.waitClients(bin.ID, 1)
	binary := []byte{0xff, 0xfe, 0x00, 0x01, 0x80, 'h', 'i', 0xc3, 0x28, '\r', '\n', 0x00}
	e.send("PUT", bin.URL+"/deep/path?x=1&x=2&y", http.Header{"Content-Type": {"application/octet-stream"}}, binary)
	summary := next(t, conn)
	if got, err := base64.StdEncoding.DecodeString(summary.BodyPreview); err != nil || !bytes.Equal(got, binary) || summary.Truncated {
		t.Errorf("live summary preview %q (truncated %v), want the whole short body", summary.BodyPreview, summary.Truncated)
	}
	live := e.whole(bin.ID, summary.ID)
	stored := e.captures(bin.ID)[0]
	for name, c := range map[string]inspector.Capture{"socket": live, "history": stored} {
		if c.BodyEncoding != "base64" {
			t.Fatalf("%s: body_encoding %q, want base64", name, c.BodyEncoding)
		}
		got, err := base64.StdEncoding.DecodeString(c.Body)
		if err != nil || !bytes.Equal(got, binary) {
			t.Errorf("%s: body %x, want %x (%v)", name, got, binary, err)
		}
		if c.Size != int64(len(binary)) || c.Method != "PUT" || c.Path != "/inspect/"+bin.ID+"/deep/path" || c.Query != "x=1&x=2&y" {
			t.Errorf("%s: size %d method %s path %s query %s", name, c.Size, c.Method, c.Path, c.Query)
		}
	}

	// Text is kept as sent too: CRLF, non-ASCII and odd spacing are not normalised.
	text := []byte("{ \"a\" :\t\"café\" }\r\n")
	e.send("POST", bin.URL, nil, text)
	c := next(t, conn)
	if c.BodyEncoding != "utf8" || c.BodyPreview != string(text) || c.Truncated {
		t.Errorf("text body %q (%s), want %q", c.BodyPreview, c.BodyEncoding, text)
	}
}

func TestReceiverLimits(t *testing.T) {
	e := newEnv(t, envOptions{})
	bin := e.createBin(nil)

	t.Run("unknown bin is 404 and records nothing", func(t *testing.T) {
		status, body := e.send("POST", e.publicURL+"/inspect/0000nope", nil, []byte("x"))
		if status != 404 || !strings.Contains(string(body), "urn:hookrelay:problem:not-found") {
			t.Fatalf("unknown bin: %d %s", status, body)
		}
	})
	t.Run("exactly 1 MiB is accepted", func(t *testing.T) {
		status, _ := e.send("POST", bin.URL, nil, bytes.Repeat([]byte("a"), inspector.MaxBodyBytes))
		if status != 200 {
			t.Fatalf("1 MiB body: %d", status)
		}
		if c := e.captures(bin.ID)[0]; c.Size != inspector.MaxBodyBytes || len(c.Body) != inspector.MaxBodyBytes || c.Rejected != "" {
			t.Errorf("1 MiB capture: size %d body %d rejected %q", c.Size, len(c.Body), c.Rejected)
		}
	})
	t.Run("over 1 MiB is 413 and recorded as rejected", func(t *testing.T) {
		status, body := e.send("POST", bin.URL, nil, bytes.Repeat([]byte("a"), inspector.MaxBodyBytes+1))
		if status != 413 || !strings.Contains(string(body), "too-large") {
			t.Fatalf("oversized body: %d %s", status, body)
		}
		c := e.captures(bin.ID)[0]
		if c.Rejected == "" || c.Body != "" || c.Size != inspector.MaxBodyBytes+1 {
			t.Errorf("rejected capture: rejected %q body %d bytes size %d", c.Rejected, len(c.Body), c.Size)
		}
	})
}

// A request past the limit waits out its Retry-After before the 429, so a sender retrying at
// once cannot keep the server refusing as fast as it can answer; the hold is bounded in
// number and ends when the client hangs up.
func TestRefusedRequestsAreHeldBoundedAndReleasedOnHangUp(t *testing.T) {
	t.Run("a refused request is answered after the hold", func(t *testing.T) {
		e := newEnv(t, envOptions{rate: 1, refusedHold: 300 * time.Millisecond}) // burst 2
		bin := e.createBin(nil)
		for range 2 {
			if status, _ := e.send("POST", bin.URL, nil, []byte("x")); status != 200 {
				t.Fatalf("within the burst: %d", status)
			}
		}
		start := time.Now()
		status, body := e.send("POST", bin.URL, nil, []byte("x"))
		if status != 429 || !strings.Contains(string(body), "rate-limited") {
			t.Fatalf("past the burst: %d %s", status, body)
		}
		if waited := time.Since(start); waited < 300*time.Millisecond {
			t.Errorf("answered after %v, before the 300ms hold", waited)
		}
	})
	t.Run("past MaxHeld the answer goes at once; a hang-up and a shutdown end the hold", func(t *testing.T) {
		e := newEnv(t, envOptions{rate: 1, refusedHold: time.Hour, maxHeld: 2})
		bin := e.createBin(nil)
		for range 2 {
			if status, _ := e.send("POST", bin.URL, nil, []byte("x")); status != 200 {
				t.Fatalf("within the burst: %d", status)
			}
		}
		type answer struct {
			status int
			err    error
		}
		held := make([]context.CancelFunc, 2)
		answers := make(chan answer, 2)
		for i := range held {
			ctx, cancel := context.WithCancel(context.Background())
			held[i] = cancel
			defer cancel()
			go func() {
				req, _ := http.NewRequestWithContext(ctx, "POST", bin.URL, strings.NewReader("x"))
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
					answers <- answer{resp.StatusCode, nil}
					return
				}
				answers <- answer{0, err}
			}()
		}
		wait.Until(t, "two requests held", func() bool { return e.insp.Held() == 2 })
		if status, _ := e.send("POST", bin.URL, nil, []byte("x")); status != 429 {
			t.Fatalf("a third refused request: %d, want 429", status)
		}
		if n := e.insp.Held(); n != 2 {
			t.Fatalf("%d held after the third was answered, want still 2", n)
		}
		select {
		case a := <-answers:
			t.Fatalf("a held request was answered (%d, %v) before its hold ended", a.status, a.err)
		default:
		}
		held[0]()
		if a := <-answers; a.err == nil {
			t.Fatalf("the client that hung up got an answer: %d", a.status)
		}
		wait.Until(t, "the hung-up request's slot freed", func() bool { return e.insp.Held() == 1 })
		// Shutting down answers the request still held rather than waiting an hour for it.
		e.stop()
		if a := <-answers; a.err != nil || a.status != 429 {
			t.Fatalf("the request held at shutdown: %d, %v; want a 429", a.status, a.err)
		}
	})
}

func TestRateLimitPerBinAnswers429AndRecordsOnlyAccepted(t *testing.T) {
	e := newEnv(t, envOptions{rate: 5}) // burst 10
	limited := e.createBin(nil)
	other := e.createBin(nil)
	accepted, refused := 0, 0
	for i := range 60 {
		status, body := e.send("POST", limited.URL, nil, []byte("x"))
		switch status {
		case 200:
			accepted++
		case 429:
			refused++
			if !strings.Contains(string(body), "rate-limited") {
				t.Fatalf("429 body %s", body)
			}
		default:
			t.Fatalf("request %d: status %d", i, status)
		}
		if i < 10 && status != 200 {
			t.Fatalf("request %d refused within the burst of 10", i)
		}
	}
	if refused == 0 {
		t.Fatalf("60 requests in a row at 5/s were all accepted")
	}
	if n := len(e.captures(limited.ID)); n != accepted {
		t.Errorf("%d captures stored, want the %d accepted", n, accepted)
	}
	// The limit is per bin.
	if status, _ := e.send("POST", other.URL, nil, []byte("x")); status != 200 {
		t.Errorf("another bin answered %d", status)
	}
}

func TestBinKeepsTheNewest500Captures(t *testing.T) {
	e := newEnv(t, envOptions{})
	bin := e.createBin(nil)
	const sent = 505
	for i := range sent {
		if status, _ := e.send("POST", fmt.Sprintf("%s?n=%d", bin.URL, i), nil, nil); status != 200 {
			t.Fatalf("request %d: %d", i, status)
		}
	}
	var all []inspector.Capture
	path := "/api/v1/inspector/bins/" + bin.ID + "/requests?limit=200"
	for {
		var page api.List[inspector.Capture]
		e.must(http.StatusOK, "GET", path, nil, &page)
		all = append(all, page.Data...)
		if page.NextCursor == nil {
			break
		}
		path = "/api/v1/inspector/bins/" + bin.ID + "/requests?limit=200&cursor=" + *page.NextCursor
	}
	if len(all) != inspector.KeepPerBin {
		t.Fatalf("%d captures kept, want %d", len(all), inspector.KeepPerBin)
	}
	if all[0].Query != fmt.Sprintf("n=%d", sent-1) || all[len(all)-1].Query != fmt.Sprintf("n=%d", sent-inspector.KeepPerBin) {
		t.Errorf("kept %s … %s, want the newest first down to n=%d", all[0].Query, all[len(all)-1].Query, sent-inspector.KeepPerBin)
	}
}

func TestBinAndCapturesSurviveRestart(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "hookrelay.db")
	first := newEnv(t, envOptions{dbPath: dbPath})
	bin := first.createBin(map[string]any{"name": "durable", "secret": "s3cret-value",
		"response": map[string]any{"status": 202, "body": "accepted", "content_type": "text/plain"}})
	body := sampleBody(t, "conversation.started")
	first.send("POST", bin.URL, http.Header{"X-Webhook-Event": {"conversation.started"},
		"X-Webhook-Signature": {signature.HexHMAC("s3cret-value", body)}}, body)
	before := first.captures(bin.ID)
	first.stop()

	second := newEnv(t, envOptions{dbPath: dbPath})
	var got api.Bin
	second.must(http.StatusOK, "GET", "/api/v1/inspector/bins/"+bin.ID, nil, &got)
	if got.Name != "durable" || !got.HasSecret || got.Response.Status != 202 || got.Response.Body != "accepted" {
		t.Errorf("bin after restart: %+v", got)
	}
	after := second.captures(bin.ID)
	if len(after) != 1 || after[0].ID != before[0].ID || after[0].Body != string(body) || after[0].Verdicts.Signature != "valid" {
		t.Fatalf("captures after restart: %+v, want %+v", after, before)
	}
	// The new process receives into the same bin and answers as configured.
	status, resp := second.send("GET", second.publicURL+"/inspect/"+bin.ID, nil, nil)
	if status != 202 || string(resp) != "accepted" {
		t.Errorf("receiver after restart: %d %q", status, resp)
	}
}

// A client that never reads cannot hold up capture: it is dropped while a client that reads
// keeps getting every capture.
func TestClientThatNeverReadsIsDroppedWhileHealthyClientKeepsReceiving(t *testing.T) {
	// A write deadline far beyond the test's timeouts: the slow client must be dropped
	// because its queue is full, not because a blocked write finally timed out. The queue is
	// bounded in bytes (256 KiB) long before its count (1,000 messages).
	e := newEnv(t, envOptions{hub: inspector.HubConfig{QueueSize: 1000, QueueBytes: 256 << 10, WriteWait: 10 * time.Minute}})
	bin := e.createBin(nil)
	// The slow client never reads, and its small receive buffer fills after a few messages.
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, NetDial: func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(64 << 10)
		}
		return c, err
	}}
	slow, resp, err := d.Dial("ws"+strings.TrimPrefix(e.publicURL, "http")+"/api/v1/inspector/bins/"+bin.ID+"/ws",
		http.Header{"Authorization": {"Bearer " + adminToken}})
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, statusOf(resp))
	}
	defer slow.Close()
	healthy := e.dial(bin.ID)
	e.waitClients(bin.ID, 2)

	// Bodies of characters JSON escapes make the largest summaries (about 6 KiB each); how many
	// fill the socket buffers depends on the kernel, so send until the slow client is dropped.
	const most = 3000
	body := bytes.Repeat([]byte("<"), 4<<10)
	var got atomic.Int64
	readerDone := make(chan error, 1)
	go func() {
		for {
			_ = healthy.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, _, err := healthy.ReadMessage(); err != nil {
				readerDone <- err
				return
			}
			got.Add(1)
		}
	}()
	sent := 0
	for sent < most && e.hub.Clients(bin.ID) == 2 {
		// The healthy client is kept close behind, so that only the slow one can fill its
		// queue, however late a busy machine schedules the healthy reader.
		for deadline := time.Now().Add(30 * time.Second); got.Load() < int64(sent-8); {
			if time.Now().After(deadline) {
				t.Fatalf("the healthy client has %d of %d captures after 30 s", got.Load(), sent)
			}
			time.Sleep(200 * time.Microsecond)
		}
		if status, _ := e.send("POST", bin.URL, nil, body); status != 200 {
			t.Fatalf("capture %d answered %d", sent, status)
		}
		sent++
	}
	if n := e.hub.Clients(bin.ID); n != 1 {
		t.Fatalf("after %d captures %d clients are subscribed, want the healthy one alone", sent, n)
	}
	// Every capture still reaches the healthy client, also those after the drop.
	for range 3 {
		e.send("POST", bin.URL, nil, body)
		sent++
	}
	wait.Until(t, "the healthy client has every capture", func() bool {
		select {
		case err := <-readerDone:
			t.Fatalf("healthy client stopped after %d of %d messages: %v", got.Load(), sent, err)
		default:
		}
		return got.Load() == int64(sent)
	})

	// The slow client finds its connection closed before it could have seen every capture.
	_ = slow.SetReadDeadline(time.Now().Add(30 * time.Second))
	seen := 0
	for {
		if _, _, err := slow.ReadMessage(); err != nil {
			break
		}
		seen++
	}
	if seen >= sent {
		t.Errorf("the slow client received all %d messages; it should have been dropped", sent)
	}
}

// A client that does not answer pings is dropped after PongWait; one that reads stays.
func TestSilentClientIsDroppedAfterPongWait(t *testing.T) {
	e := newEnv(t, envOptions{hub: inspector.HubConfig{PingInterval: 100 * time.Millisecond, PongWait: 2 * time.Second}})
	bin := e.createBin(nil)
	e.dial(bin.ID) // silent: never reads, so never answers a ping
	alive := e.dial(bin.ID)
	aliveDone := make(chan struct{})
	go func() {
		defer close(aliveDone)
		for {
			// Reading is what makes gorilla answer pings.
			if _, _, err := alive.ReadMessage(); err != nil {
				return
			}
		}
	}()
	e.waitClients(bin.ID, 2)
	e.waitClients(bin.ID, 1)
	// Had the reading client been dropped instead, its reader would have ended.
	select {
	case <-aliveDone:
		t.Fatalf("the client that answers pings was dropped")
	default:
	}
}

func TestSocketAuthenticationAndOrigin(t *testing.T) {
	e := newEnv(t, envOptions{})
	bin := e.createBin(nil)

	if _, resp, err := e.dialWith(bin.ID, nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Errorf("no credentials: err %v, status %v; want 401", err, statusOf(resp))
	}
	if _, resp, err := e.dialWith("nope", http.Header{"Authorization": {"Bearer " + adminToken}}); err == nil || resp == nil || resp.StatusCode != 404 {
		t.Errorf("unknown bin: err %v, status %v; want 404", err, statusOf(resp))
	}

	// The browser way: the session cookie, from this server's own origin.
	resp := e.do("POST", "/api/v1/session", map[string]any{"token": adminToken}, nil)
	var cookie string
	for _, c := range resp.Cookies() {
		if c.Name == api.SessionCookie {
			cookie = c.Name + "=" + c.Value
		}
	}
	if cookie == "" {
		t.Fatalf("login set no session cookie (status %d)", resp.StatusCode)
	}
	conn, resp, err := e.dialWith(bin.ID, http.Header{"Cookie": {cookie}, "Origin": {e.publicURL}})
	if err != nil {
		t.Fatalf("same-origin browser socket refused: %v (status %v)", err, statusOf(resp))
	}
	defer conn.Close()
	e.waitClients(bin.ID, 1)
	e.send("POST", bin.URL, nil, []byte("via cookie"))
	if c := next(t, conn); c.BodyPreview != "via cookie" {
		t.Errorf("body %q", c.BodyPreview)
	}

	// Another site's page, even with the cookie, is refused.
	if _, resp, err := e.dialWith(bin.ID, http.Header{"Cookie": {cookie}, "Origin": {"https://evil.example"}}); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Errorf("cross-origin socket: err %v, status %v; want 403", err, statusOf(resp))
	}

	// A plain GET (no handshake) is a problem response, like every other API error.
	assertProblem(t, e.do("GET", "/api/v1/inspector/bins/"+bin.ID+"/ws", nil, nil), 400)
}

func assertProblem(t *testing.T, resp *http.Response, status int) {
	t.Helper()
	if resp.StatusCode != status || resp.Header.Get("Content-Type") != "application/problem+json" {
		raw, _ := io.ReadAll(resp.Body)
		t.Errorf("status %d (%s), want a %d problem: %s", resp.StatusCode, resp.Header.Get("Content-Type"), status, raw)
	}
}

func statusOf(resp *http.Response) any {
	if resp == nil {
		return nil
	}
	return resp.StatusCode
}

// Goroutines started for sockets, receivers and delayed responses all end when their clients
// go away.
func TestNoGoroutineLeaksWhenClientsGoAway(t *testing.T) {
	// gorm's prepared-statement cache starts a goroutine per store that by design never ends
	// (gorm/internal/lru: "done channel is never closed"); it is not ours to stop.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(), goleak.IgnoreTopFunction("gorm.io/gorm/internal/lru.NewLRU[...].func1"))
	e := newEnv(t, envOptions{})
	bin := e.createBin(map[string]any{"response": map[string]any{"delay_ms": 30000}})

	var conns []*websocket.Conn
	for range 6 {
		conns = append(conns, e.dial(bin.ID))
	}
	e.waitClients(bin.ID, 6)
	for i, c := range conns[:5] {
		if i%2 == 0 {
			_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(5*time.Second))
		}
		c.Close() // odd ones vanish without a close frame
	}
	e.waitClients(bin.ID, 1)

	// A request that hangs up during the bin's 30 s delay ends its handler at once.
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", bin.URL, strings.NewReader("bye"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := e.client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	wait.Until(t, "the delayed request is captured", func() bool { return len(e.captures(bin.ID)) == 1 })
	cancel()
	<-done

	// The last client is told the server is going away when the hub closes.
	e.hub.Close()
	_ = conns[5].SetReadDeadline(time.Now().Add(20 * time.Second))
	var err error
	for err == nil {
		_, _, err = conns[5].ReadMessage() // the delayed request's capture comes first
	}
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("on shutdown the client got %v, want a going-away close", err)
	}
	conns[5].Close()
	e.stop()
}

// The bin's response delay ends when the client hangs up: the handler returns (and its
// connection closes) at once instead of holding on for the rest of the delay.
func TestResponseDelayEndsWhenTheClientHangsUp(t *testing.T) {
	closed := make(chan struct{}, 100)
	e := newEnv(t, envOptions{connState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed <- struct{}{}
		}
	}})
	bin := e.createBin(nil)
	// Well past the 30 s this test waits below (the API would refuse it; set in the store).
	b, err := e.store.GetBin(context.Background(), bin.ID)
	if err != nil {
		t.Fatal(err)
	}
	b.ResponseDelayMS = int(2 * time.Minute / time.Millisecond)
	if err := e.store.UpdateBin(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	for len(closed) > 0 {
		<-closed // the API calls above
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", bin.URL, strings.NewReader("waiting"))
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			t.Errorf("the delayed request was answered: %d", resp.StatusCode)
		}
	}()
	wait.Until(t, "the delayed request is captured", func() bool { return len(e.captures(bin.ID)) == 1 })
	for len(closed) > 0 {
		<-closed
	}
	cancel()
	<-done
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatalf("the handler kept the connection for the whole delay after the client left")
	}
}

func TestForwardSendsCapturedRequestOnce(t *testing.T) {
	type got struct {
		method, path string
		header       http.Header
		body         []byte
	}
	received := make(chan got, 10)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		received <- got{r.Method, r.URL.RequestURI(), r.Header.Clone(), b}
		w.Header().Set("X-Target", "yes")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(bytes.Repeat([]byte("r"), 10000))
	}))
	t.Cleanup(target.Close)

	body := []byte{0xff, 0x00, '{', '}'}
	forward := func(e *env) (inspector.ForwardResult, string) {
		t.Helper()
		bin := e.createBin(nil)
		e.send("PATCH", bin.URL+"/sub", http.Header{"X-Custom": {"a", "b"}, "Connection": {"X-Drop"}, "X-Drop": {"1"},
			"Content-Type": {"application/octet-stream"}}, body)
		c := e.captures(bin.ID)[0]
		var res inspector.ForwardResult
		e.must(http.StatusOK, "POST", "/api/v1/inspector/bins/"+bin.ID+"/requests/"+c.ID+"/forward",
			map[string]any{"url": target.URL + "/hook?q=1"}, &res)
		return res, bin.ID
	}

	t.Run("allowed with --allow-private-targets", func(t *testing.T) {
		e := newEnv(t, envOptions{allowPrivate: true})
		res, _ := forward(e)
		if res.Error != nil || res.Status == nil || *res.Status != 201 {
			t.Fatalf("forward result: status %v error %v", res.Status, res.Error)
		}
		if len(res.Body) != 4096 || res.Headers["X-Target"][0] != "yes" {
			t.Errorf("excerpt %d bytes (want 4096), headers %v", len(res.Body), res.Headers)
		}
		g := <-received
		if g.method != "PATCH" || g.path != "/hook?q=1" || !bytes.Equal(g.body, body) {
			t.Errorf("target got %s %s %x", g.method, g.path, g.body)
		}
		if !slices.Equal(g.header["X-Custom"], []string{"a", "b"}) || g.header.Get("Content-Type") != "application/octet-stream" {
			t.Errorf("headers not forwarded as captured: %v", g.header)
		}
		if g.header.Get("X-Drop") != "" {
			t.Errorf("a header named in Connection was forwarded")
		}
		if g.header.Get("Accept-Encoding") != "" {
			t.Errorf("the forward added Accept-Encoding %q that the capture did not have", g.header.Get("Accept-Encoding"))
		}
		select {
		case extra := <-received:
			t.Errorf("forwarded more than once: %+v", extra)
		default:
		}
	})
	t.Run("refused by the SSRF guard by default", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		res, _ := forward(e)
		if res.Status != nil || res.Error == nil || !strings.Contains(*res.Error, "blocked by SSRF guard") {
			t.Fatalf("forward to loopback without the flag: status %v error %v", res.Status, res.Error)
		}
		select {
		case g := <-received:
			t.Errorf("the guard let a request through: %+v", g)
		default:
		}
	})
	t.Run("to this server's own bin needs no flag", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		src := e.createBin(nil)
		dst := e.createBin(nil)
		e.send("POST", src.URL, http.Header{"X-Custom": {"1"}}, body)
		c := e.captures(src.ID)[0]
		var res inspector.ForwardResult
		e.must(http.StatusOK, "POST", "/api/v1/inspector/bins/"+src.ID+"/requests/"+c.ID+"/forward", map[string]any{"url": dst.URL}, &res)
		if res.Status == nil || *res.Status != 200 {
			t.Fatalf("forward to own bin: status %v error %v", res.Status, res.Error)
		}
		copied := e.captures(dst.ID)
		if len(copied) != 1 || copied[0].Body != c.Body || copied[0].Headers["X-Custom"][0] != "1" {
			t.Errorf("copy in the other bin: %+v", copied)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		bin := e.createBin(nil)
		e.send("POST", bin.URL, nil, nil)
		c := e.captures(bin.ID)[0]
		path := "/api/v1/inspector/bins/" + bin.ID + "/requests/" + c.ID + "/forward"
		assertFieldProblem(t, e.do("POST", path, map[string]any{"url": "ftp://x"}, nil), 422, "url")
		assertFieldProblem(t, e.do("POST", path, map[string]any{}, nil), 422, "url")
		if resp := e.do("POST", "/api/v1/inspector/bins/"+bin.ID+"/requests/req_nope/forward", map[string]any{"url": target.URL}, nil); resp.StatusCode != 404 {
			t.Errorf("unknown capture: %d", resp.StatusCode)
		}
	})
}

func assertFieldProblem(t *testing.T, resp *http.Response, status int, field string) {
	t.Helper()
	var p api.Problem
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &p)
	if resp.StatusCode != status || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("status %d (%s), want %d problem: %s", resp.StatusCode, resp.Header.Get("Content-Type"), status, raw)
		return
	}
	for _, fe := range p.Errors {
		if fe.Field == field {
			return
		}
	}
	t.Errorf("problem does not name %q: %s", field, raw)
}

func TestBinValidationNamesTheField(t *testing.T) {
	e := newEnv(t, envOptions{})
	var wh api.Webhook
	e.must(http.StatusCreated, "POST", "/api/v1/webhooks", map[string]any{"name": "w", "url": e.publicURL + "/inspect/x",
		"events": []string{"message.received"}}, &wh)
	cases := []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"status too low", map[string]any{"response": map[string]any{"status": 99}}, "response.status"},
		{"status too high", map[string]any{"response": map[string]any{"status": 600}}, "response.status"},
		{"status not a number", map[string]any{"response": map[string]any{"status": "200"}}, "response.status"},
		{"delay too long", map[string]any{"response": map[string]any{"delay_ms": 30001}}, "response.delay_ms"},
		{"negative delay", map[string]any{"response": map[string]any{"delay_ms": -1}}, "response.delay_ms"},
		{"body too large", map[string]any{"response": map[string]any{"body": strings.Repeat("b", 64<<10+1)}}, "response.body"},
		{"bad content type", map[string]any{"response": map[string]any{"content_type": "not a type"}}, "response.content_type"},
		{"unknown response field", map[string]any{"response": map[string]any{"code": 200}}, "response.code"},
		{"response not an object", map[string]any{"response": 200}, "response"},
		{"unknown field", map[string]any{"colour": "red"}, "colour"},
		{"name too long", map[string]any{"name": strings.Repeat("n", 101)}, "name"},
		{"empty secret", map[string]any{"secret": ""}, "secret"},
		{"unknown webhook", map[string]any{"webhook_id": "wh_nope"}, "webhook_id"},
		{"secret and webhook", map[string]any{"secret": "s", "webhook_id": wh.ID}, "webhook_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assertFieldProblem(t, e.do("POST", "/api/v1/inspector/bins", tc.body, nil), 422, tc.field)
		})
	}

	// Edges that are fine, and PATCH changing only what it names.
	bin := e.createBin(map[string]any{"response": map[string]any{"status": 599, "delay_ms": 30000, "body": strings.Repeat("b", 64<<10)}})
	if bin.Response.Status != 599 || bin.Response.DelayMS != 30000 || bin.Response.ContentType != "application/json" {
		t.Errorf("created bin response %+v", bin.Response)
	}
	e.must(http.StatusOK, "PATCH", "/api/v1/inspector/bins/"+bin.ID, map[string]any{"response": map[string]any{"delay_ms": 0}}, &bin)
	if bin.Response.Status != 599 || bin.Response.DelayMS != 0 {
		t.Errorf("patched response %+v", bin.Response)
	}
	e.must(http.StatusOK, "PATCH", "/api/v1/inspector/bins/"+bin.ID, map[string]any{"secret": "s3cret"}, &bin)
	if !bin.HasSecret || bin.WebhookID != nil {
		t.Errorf("after setting a secret: has_secret %v webhook_id %v", bin.HasSecret, bin.WebhookID)
	}
	e.must(http.StatusOK, "PATCH", "/api/v1/inspector/bins/"+bin.ID, map[string]any{"webhook_id": wh.ID}, &bin)
	if bin.HasSecret || bin.WebhookID == nil || *bin.WebhookID != wh.ID {
		t.Errorf("linking a webhook replaces the secret: has_secret %v webhook_id %v", bin.HasSecret, bin.WebhookID)
	}
	if resp := e.do("PATCH", "/api/v1/inspector/bins/nope", map[string]any{"name": "x"}, nil); resp.StatusCode != 404 {
		t.Errorf("PATCH unknown bin: %d", resp.StatusCode)
	}
}

func TestBinAnswersWithItsConfiguredResponse(t *testing.T) {
	e := newEnv(t, envOptions{})
	def := e.createBin(nil)
	status, body := e.send("POST", def.URL, nil, []byte("x"))
	if status != 200 || string(body) != `{"ok":true}` {
		t.Errorf("default response %d %q", status, body)
	}
	custom := e.createBin(map[string]any{"response": map[string]any{"status": 418, "body": "<teapot/>",
		"content_type": "application/xml", "delay_ms": 20}})
	req, _ := http.NewRequest("DELETE", custom.URL+"/x", nil)
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 418 || string(b) != "<teapot/>" || resp.Header.Get("Content-Type") != "application/xml" {
		t.Errorf("custom response %d %q %q", resp.StatusCode, b, resp.Header.Get("Content-Type"))
	}
	// The body is served from the UI's origin: it must not be able to run script there.
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("bin response not sandboxed: CSP %q, nosniff %q", csp, resp.Header.Get("X-Content-Type-Options"))
	}
	if status, _ := e.send("OPTIONS", custom.URL, nil, nil); status != 418 {
		t.Errorf("OPTIONS answered %d", status)
	}
}

func TestDeletingABinDeletesItsCapturesAndClosesItsSockets(t *testing.T) {
	e := newEnv(t, envOptions{})
	bin := e.createBin(nil)
	keep := e.createBin(nil)
	conn := e.dial(bin.ID)
	e.waitClients(bin.ID, 1)
	e.send("POST", bin.URL, nil, []byte("one"))
	e.send("POST", keep.URL, nil, []byte("kept"))
	next(t, conn)

	e.must(http.StatusNoContent, "DELETE", "/api/v1/inspector/bins/"+bin.ID, nil, nil)
	e.waitClients(bin.ID, 0)
	if n, err := e.store.CountCaptures(context.Background(), bin.ID, 0); err != nil || n != 0 {
		t.Errorf("captures left after delete: %d (%v)", n, err)
	}
	if status, _ := e.send("POST", bin.URL, nil, []byte("x")); status != 404 {
		t.Errorf("receiver of a deleted bin answered %d", status)
	}
	e.must(http.StatusNotFound, "GET", "/api/v1/inspector/bins/"+bin.ID+"/requests", nil, nil)
	if got := e.captures(keep.ID); len(got) != 1 {
		t.Errorf("another bin lost its captures: %d", len(got))
	}
}

func TestBinListAndCapturePagesAreNewestFirst(t *testing.T) {
	e := newEnv(t, envOptions{})
	var ids []string
	for i := range 3 {
		ids = append(ids, e.createBin(map[string]any{"name": fmt.Sprint(i)}).ID)
	}
	var page api.List[api.Bin]
	e.must(http.StatusOK, "GET", "/api/v1/inspector/bins?limit=2", nil, &page)
	if len(page.Data) != 2 || page.Data[0].ID != ids[2] || page.NextCursor == nil {
		t.Fatalf("first page %+v", page)
	}
	e.must(http.StatusOK, "GET", "/api/v1/inspector/bins?limit=2&cursor="+*page.NextCursor, nil, &page)
	if len(page.Data) != 1 || page.Data[0].ID != ids[0] || page.NextCursor != nil {
		t.Fatalf("second page %+v", page)
	}
	if len(ids[0]) < 32 {
		t.Errorf("bin id %q is too short to carry 128 random bits", ids[0])
	}

	bin := ids[0]
	url := e.publicURL + "/inspect/" + bin
	for i := range 3 {
		e.send("POST", fmt.Sprintf("%s?n=%d", url, i), nil, nil)
	}
	var caps api.List[inspector.Capture]
	e.must(http.StatusOK, "GET", "/api/v1/inspector/bins/"+bin+"/requests?limit=2", nil, &caps)
	if len(caps.Data) != 2 || caps.Data[0].Query != "n=2" || caps.NextCursor == nil {
		t.Fatalf("capture page %+v", caps)
	}
	var one inspector.Capture
	e.must(http.StatusOK, "GET", "/api/v1/inspector/bins/"+bin+"/requests/"+caps.Data[1].ID, nil, &one)
	if one.Query != "n=1" {
		t.Errorf("single capture %+v", one)
	}
}

// An admin logged in to the UI who opens a bin URL in the same browser must not hand the bin
// their session: the cookie is scoped to the API, and a session cookie sent anyway (by an
// older browser state or a hand-made request) is cut from the capture.
func TestAdminSessionNeverReachesACapture(t *testing.T) {
	e := newEnv(t, envOptions{})
	bin := e.createBin(nil)

	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	browser := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	login, err := browser.Post(e.publicURL+"/api/v1/session", "application/json",
		strings.NewReader(`{"token":"`+adminToken+`"}`))
	if err != nil || login.StatusCode != http.StatusNoContent {
		t.Fatalf("login: %v %v", err, statusOf(login))
	}
	login.Body.Close()
	apiURL, _ := url.Parse(e.publicURL + "/api/v1/session")
	if len(jar.Cookies(apiURL)) == 0 {
		t.Fatal("the browser holds no session cookie for the API")
	}
	resp, err := browser.Get(bin.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	req, _ := http.NewRequest(http.MethodPost, bin.URL, strings.NewReader(`{}`))
	req.Header.Set("Cookie", api.SessionCookie+"=stolen-session; theme=dark")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ = http.NewRequest(http.MethodPost, bin.URL, strings.NewReader(`{}`))
	req.Header.Set("Cookie", api.SessionCookie+"=stolen-session")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	caps := e.captures(bin.ID)
	if len(caps) != 3 {
		t.Fatalf("%d captures, want 3", len(caps))
	}
	byMethod := map[string][]inspector.Capture{}
	for _, c := range caps {
		byMethod[c.Method] = append(byMethod[c.Method], c)
		for _, v := range c.Headers["Cookie"] {
			if strings.Contains(v, api.SessionCookie) {
				t.Errorf("%s capture stored the session cookie: %q", c.Method, v)
			}
		}
	}
	if got := byMethod["GET"][0].Headers["Cookie"]; got != nil {
		t.Errorf("the browser sent cookies to the bin: %q", got)
	}
	var kept []string
	for _, c := range byMethod["POST"] {
		kept = append(kept, c.Headers["Cookie"]...)
	}
	if len(kept) != 1 || kept[0] != "theme=dark" {
		t.Errorf("other cookies kept: %q, want exactly [theme=dark]", kept)
	}
}

// closedFor waits for the server to close conn and returns the close code.
func closedFor(t *testing.T, conn *websocket.Conn) int {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(wait.Timeout))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		t.Fatalf("socket ended without a close frame: %v", err)
	}
}

// A live socket lasts no longer than what opened it: logging out, or revoking the API key it
// was opened with (directly or through a session), closes it at once on this process.
func TestSocketsCloseWhenTheirCredentialEnds(t *testing.T) {
	e := newEnv(t, envOptions{})
	bin := e.createBin(nil)
	var key struct{ ID, Token string }
	e.must(http.StatusCreated, "POST", "/api/v1/api-keys", map[string]any{"name": "socket"}, &key)

	login := func(token string) string {
		resp := e.do("POST", "/api/v1/session", map[string]any{"token": token}, nil)
		for _, c := range resp.Cookies() {
			if c.Name == api.SessionCookie && c.Value != "" {
				return c.Name + "=" + c.Value
			}
		}
		t.Fatalf("login set no session cookie (status %d)", resp.StatusCode)
		return ""
	}
	open := func(h http.Header) *websocket.Conn {
		conn, resp, err := e.dialWith(bin.ID, h)
		if err != nil {
			t.Fatalf("dial: %v (status %v)", err, statusOf(resp))
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	adminCookie := login(adminToken)
	keyCookie := login(key.Token)
	adminSession := open(http.Header{"Cookie": {adminCookie}, "Origin": {e.publicURL}})
	keySession := open(http.Header{"Cookie": {keyCookie}, "Origin": {e.publicURL}})
	keyBearer := open(http.Header{"Authorization": {"Bearer " + key.Token}})
	adminBearer := open(http.Header{"Authorization": {"Bearer " + adminToken}})
	e.waitClients(bin.ID, 4)

	// Logging out the admin session closes its socket and no other.
	req, _ := http.NewRequest(http.MethodDelete, e.publicURL+"/api/v1/session", nil)
	req.Header.Set("Cookie", adminCookie)
	req.Header.Set("X-Requested-With", "fetch")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %v %v", err, statusOf(resp))
	}
	if code := closedFor(t, adminSession); code != websocket.ClosePolicyViolation {
		t.Errorf("logged-out socket closed with %d, want %d", code, websocket.ClosePolicyViolation)
	}
	e.waitClients(bin.ID, 3)

	// Revoking the key closes the sockets opened with it, by bearer and by session.
	e.must(http.StatusNoContent, "DELETE", "/api/v1/api-keys/"+key.ID, nil, nil)
	for name, conn := range map[string]*websocket.Conn{"bearer": keyBearer, "session": keySession} {
		if code := closedFor(t, conn); code != websocket.ClosePolicyViolation {
			t.Errorf("%s socket of the revoked key closed with %d", name, code)
		}
	}
	e.waitClients(bin.ID, 1)

	// The admin's bearer socket still streams.
	e.send("POST", bin.URL, nil, []byte(`{}`))
	if c := next(t, adminBearer); c.Method != "POST" {
		t.Errorf("the remaining socket got %+v", c)
	}
}

// A credential ended elsewhere (another replica revoked the key) is noticed at the next ping.
func TestSocketsRecheckTheirCredentialAtEveryPing(t *testing.T) {
	e := newEnv(t, envOptions{hub: inspector.HubConfig{PingInterval: 50 * time.Millisecond}})
	bin := e.createBin(nil)
	var key struct{ ID, Token string }
	e.must(http.StatusCreated, "POST", "/api/v1/api-keys", map[string]any{"name": "elsewhere"}, &key)
	conn, resp, err := e.dialWith(bin.ID, http.Header{"Authorization": {"Bearer " + key.Token}})
	if err != nil {
		t.Fatalf("dial: %v (status %v)", err, statusOf(resp))
	}
	defer conn.Close()
	e.waitClients(bin.ID, 1)
	// Straight in the database, as another replica would: this process's API is not told.
	if err := e.store.DeleteAPIKey(t.Context(), key.ID); err != nil {
		t.Fatal(err)
	}
	if code := closedFor(t, conn); code != websocket.ClosePolicyViolation {
		t.Errorf("socket of a key revoked elsewhere closed with %d", code)
	}
}
