package cli

import (
	"bytes"
	"context"
	"net/http"
	"net/textproto"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/api"
	"github.com/hookrelay/hookrelay/inspector"
	"github.com/hookrelay/hookrelay/internal/testsrv"
	"github.com/hookrelay/hookrelay/internal/wait"
	"github.com/hookrelay/hookrelay/signature"
)

var events = []string{"conversation.started", "message.received"}

// newLinkedBin makes a bin and a webhook with a generated secret pointing at it.
func newLinkedBin(t *testing.T, s *testsrv.Server, name string) (api.Bin, api.Webhook) {
	t.Helper()
	var b api.Bin
	s.Do(t, http.MethodPost, "/api/v1/inspector/bins", map[string]any{"name": name}, http.StatusCreated, &b)
	wh := s.CreateWebhook(t, map[string]any{"name": "local dev", "url": b.URL, "events": events, "generate_secret": true})
	return b, wh
}

// assertForwarded checks that the receiver got exactly the bin's captures (from the
// from-th on), in order, each with the captured method, body bytes, headers and query.
func assertForwarded(t *testing.T, got []received, caps []inspector.Capture, query string) {
	t.Helper()
	if len(got) != len(caps) {
		t.Fatalf("receiver got %d requests, the bin holds %d to forward", len(got), len(caps))
	}
	for i, c := range caps {
		body, err := captureBody(&c)
		if err != nil {
			t.Fatal(err)
		}
		g := got[i]
		if !bytes.Equal(g.Body, body) || g.Method != c.Method {
			t.Fatalf("request %d: got %s %q, captured %s %q", i, g.Method, g.Body, c.Method, body)
		}
		if want := strings.Trim(query+"&"+c.Query, "&"); g.Query != want {
			t.Errorf("request %d: query %q, want %q", i, g.Query, want)
		}
		for name := range g.Header {
			if _, ok := c.Headers[name]; !ok {
				t.Errorf("request %d: header %s was added: %q", i, name, g.Header[name])
			}
		}
		for name, vals := range c.Headers {
			switch textproto.CanonicalMIMEHeaderKey(name) {
			case "Host", "Content-Length", "Connection":
				continue
			}
			if g := g.Header.Values(name); strings.Join(g, "\n") != strings.Join(vals, "\n") {
				t.Errorf("request %d: header %s = %q, captured %q", i, name, g, vals)
			}
		}
	}
}

func TestListenForwardsEachCaptureUnchanged(t *testing.T) {
	s := startServer(t)
	b, wh := newLinkedBin(t, s, defaultBinName)
	// Arrived before listen started: not forwarded.
	if st, _, err := s.Request(context.Background(), http.MethodPost, "/inspect/"+b.ID, "old", nil); err != nil || st != 200 {
		t.Fatalf("seed capture: %d %v", st, err)
	}
	rc := newReceiver(t, wh.Secret)
	e := serverEnv(s.BaseURL)
	r := startListen(t, e, "--forward-to", rc.URL+"/hooks?from=listen", "--webhook", wh.ID)
	for _, want := range []string{"bin " + b.ID + " (" + defaultBinName + ")", "send webhooks to: " + b.URL,
		"forwarding to:    " + rc.URL + "/hooks?from=listen", "the secret of webhook " + wh.ID} {
		if !strings.Contains(e.errOut.String(), want) {
			t.Fatalf("start-up output lacks %q:\n%s", want, e.errOut)
		}
	}

	s.Publish(t, "conversation.started", map[string]any{"conversation_id": 7, "visitor_name": "Zoë"}, "")
	rc.waitFor(t, 1)
	s.Publish(t, "message.received", map[string]any{"conversation_id": 7, "message_id": 9, "content": "héllo ✓ <b>&"}, "")
	rc.waitFor(t, 2)
	// Unsigned, binary, with a sub-path, a query and a header of its own.
	raw := []byte{0xff, 0x00, 0x80, '\n'}
	st, _, err := s.Request(context.Background(), http.MethodPut, "/inspect/"+b.ID+"/sub?x=1&y=%20", raw,
		http.Header{"X-Custom": {"a", "b"}, "Content-Type": {"application/octet-stream"}})
	if err != nil || st != 200 {
		t.Fatalf("raw capture: %d %v", st, err)
	}
	got := rc.waitFor(t, 3)
	wait.Until(t, "three output lines", func() bool { return len(e.out.lines()) == 3 })
	r.stop(t)

	caps := binCaptures(t, s, b.ID)[1:]
	assertForwarded(t, rc.requests(), caps, "from=listen")
	if !got[0].Verified || !got[1].Verified || got[2].Verified {
		t.Errorf("receiver's own signature check: %v %v %v, want true true false", got[0].Verified, got[1].Verified, got[2].Verified)
	}
	t.Logf("listen's output:\n%s%s", e.errOut, e.out)
	lines := e.out.lines()
	wantLines := []string{
		"conversation.started signature=valid standard_signature=valid payload=ok status=200 duration=",
		"message.received signature=valid standard_signature=valid payload=ok status=200 duration=",
		" - signature=missing standard_signature=missing payload=unknown_event status=401 duration=",
	}
	for i, want := range wantLines {
		if !strings.Contains(lines[i], want) || !strings.HasSuffix(lines[i], " id="+caps[i].ID) {
			t.Errorf("line %d = %q, want it to contain %q and end with id=%s", i, lines[i], want, caps[i].ID)
		}
	}
}

func TestListenCreatesBinSetsSecretAndReusesIt(t *testing.T) {
	s := startServer(t)
	const secret = "my-local-secret"
	rc := newReceiver(t, secret)
	e := serverEnv(s.BaseURL)
	r := startListen(t, e, "--forward-to", rc.URL, "--name", "laptop", "--secret", secret)
	r.stop(t)
	bins := binsNamed(t, s, "laptop")
	if len(bins) != 1 || !bins[0].HasSecret || !strings.Contains(e.errOut.String(), "the bin's own secret") {
		t.Fatalf("bins named laptop: %+v; stderr:\n%s", bins, e.errOut)
	}

	e = serverEnv(s.BaseURL)
	r = startListen(t, e, "--forward-to", rc.URL, "--name", "laptop")
	if again := binsNamed(t, s, "laptop"); len(again) != 1 || !strings.Contains(e.errOut.String(), "bin "+bins[0].ID) {
		t.Fatalf("second run: bins %+v; stderr:\n%s", again, e.errOut)
	}
	// The bin verifies with the secret listen set the first time.
	body := []byte(`{"hello":"world"}`)
	h := http.Header{"X-Webhook-Signature": {signature.HexHMAC(secret, body)}}
	if st, _, err := s.Request(context.Background(), http.MethodPost, "/inspect/"+bins[0].ID, body, h); err != nil || st != 200 {
		t.Fatalf("signed capture: %d %v", st, err)
	}
	wait.Until(t, "one output line", func() bool { return len(e.out.lines()) == 1 })
	if line := e.out.lines()[0]; !strings.Contains(line, " - signature=valid standard_signature=missing ") {
		t.Errorf("line %q", line)
	}
	r.stop(t)
}

func binsNamed(t *testing.T, s *testsrv.Server, name string) []api.Bin {
	t.Helper()
	var page api.List[api.Bin]
	s.Do(t, http.MethodGet, "/api/v1/inspector/bins?limit=200", nil, http.StatusOK, &page)
	var out []api.Bin
	for _, b := range page.Data {
		if b.Name == name {
			out = append(out, b)
		}
	}
	return out
}

func TestListenRefusesBadInvocations(t *testing.T) {
	s := startServer(t)
	cases := []struct {
		name string
		env  cmdEnv
		args []string
		code int
		says string
	}{
		{"help", serverEnv(s.BaseURL), []string{"--help"}, 0, "-forward-to"},
		{"no target", serverEnv(s.BaseURL), nil, 2, "--forward-to is required"},
		{"target not http", serverEnv(s.BaseURL), []string{"--forward-to", "ftp://x"}, 2, "--forward-to must be an http://"},
		{"webhook and secret", serverEnv(s.BaseURL), []string{"--forward-to", "http://127.0.0.1:1", "--webhook", "wh_x", "--secret", "s"}, 2, "either --webhook or --secret"},
		{"no token", newEnv(map[string]string{"HOOKRELAY_URL": s.BaseURL}, ""), []string{"--forward-to", "http://127.0.0.1:1"}, 2, "--token or HOOKRELAY_TOKEN"},
		{"wrong token", serverEnv(s.BaseURL), []string{"--forward-to", "http://127.0.0.1:1", "--token", "nope"}, 1, ": 401 "},
		{"unknown bin", serverEnv(s.BaseURL), []string{"--forward-to", "http://127.0.0.1:1", "--bin", "nope"}, 1, `no bin has the id "nope"`},
		{"unknown webhook", serverEnv(s.BaseURL), []string{"--forward-to", "http://127.0.0.1:1", "--webhook", "wh_nope"}, 1, "no webhook has this id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if code := listen(context.Background(), c.env.Env, c.args); code != c.code || !strings.Contains(c.env.errOut.String(), c.says) {
				t.Fatalf("exit %d (want %d); stderr:\n%s\nwant it to say %q", code, c.code, c.env.errOut, c.says)
			}
		})
	}
}

// A request the bin refused (body over 1 MiB) has no body to forward: it gets its line only.
func TestListenListsRejectedRequestsWithoutForwardingThem(t *testing.T) {
	s := startServer(t)
	b, wh := newLinkedBin(t, s, "rejected")
	rc := newReceiver(t, wh.Secret)
	e := serverEnv(s.BaseURL)
	r := startListen(t, e, "--forward-to", rc.URL, "--bin", b.ID)
	big := bytes.Repeat([]byte("x"), inspector.MaxBodyBytes+1)
	if st, _, _ := s.Request(context.Background(), http.MethodPost, "/inspect/"+b.ID, big, nil); st != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", st)
	}
	s.Publish(t, "conversation.started", map[string]any{"conversation_id": 1}, "")
	rc.waitFor(t, 1)
	wait.Until(t, "two output lines", func() bool { return len(e.out.lines()) == 2 })
	r.stop(t)
	if got := rc.requests(); len(got) != 1 || got[0].Header.Get("X-Webhook-Event") != "conversation.started" {
		t.Fatalf("receiver got %d requests; want only the published event", len(got))
	}
	if line := e.out.lines()[0]; !strings.Contains(line, " - signature=no_secret standard_signature=no_secret payload=problems status=rejected error=\"body larger than") {
		t.Errorf("line for the rejected request: %q", line)
	}
}
