package cli

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/inspector"
	"github.com/hookrelay/hookrelay/internal/wait"
)

// rawHTTP writes a capture as the HTTP/1.1 request it was, with CRLF or bare LF line ends
// and with or without Content-Length.
func rawHTTP(c inspector.Capture, body []byte, eol string, withLength bool) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1%sHost: localhost%s", c.Method, c.Path, eol, eol)
	for name, vals := range c.Headers {
		if name == "Content-Length" || name == "Host" {
			continue
		}
		for _, v := range vals {
			fmt.Fprintf(&b, "%s: %s%s", name, v, eol)
		}
	}
	if withLength {
		fmt.Fprintf(&b, "Content-Length: %d%s", len(body), eol)
	}
	b.WriteString(eol)
	b.Write(body)
	return b.Bytes()
}

func TestVerifyChecksSavedRequests(t *testing.T) {
	s := startServer(t)
	b, wh := newLinkedBin(t, s, "verify")
	s.Publish(t, "message.received", map[string]any{"conversation_id": 3, "message_id": 4, "content": "ça va ✓"}, "")
	wait.Until(t, "the delivery is captured", func() bool { return captureCount(t, s, b.ID) == 1 })
	caps := binCaptures(t, s, b.ID)
	// The capture's JSON exactly as the API returns it.
	asJSON := s.Do(t, http.MethodGet, "/api/v1/inspector/bins/"+b.ID+"/requests/"+caps[0].ID, nil, http.StatusOK, nil)
	body, _ := captureBody(&caps[0])

	tampered := caps[0]
	tampered.Body = strings.Replace(tampered.Body, "ça va", "ca va", 1)
	unsigned := caps[0]
	unsigned.Headers = map[string][]string{"X-Webhook-Event": {"message.received"}}

	dir := t.TempDir()
	file := func(name string, content []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, content, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	capture := file("capture.json", asJSON)
	cases := []struct {
		name   string
		args   []string
		stdin  string
		code   int
		stdout []string
		stderr string
	}{
		{"capture JSON", []string{"--secret", wh.Secret, capture}, "", 0,
			[]string{"signature=valid", "standard_signature=valid", "timestamp_skew_seconds=", "payload=ok", "result=pass"}, ""},
		{"secret after the file, stdin", []string{"-", "--secret", wh.Secret}, string(asJSON), 0, []string{"result=pass"}, ""},
		{"raw HTTP, CRLF, Content-Length", []string{"--secret", wh.Secret, file("crlf.http", rawHTTP(caps[0], body, "\r\n", true))}, "", 0,
			[]string{"signature=valid", "standard_signature=valid", "payload=ok", "result=pass"}, ""},
		{"raw HTTP, LF, no Content-Length", []string{"--secret", wh.Secret, file("lf.http", rawHTTP(caps[0], body, "\n", false))}, "", 0,
			[]string{"signature=valid", "standard_signature=valid", "result=pass"}, ""},
		{"tampered body", []string{"--secret", wh.Secret, file("tampered.json", []byte(mustJSON(t, tampered)))}, "", 1,
			[]string{"signature=invalid", "standard_signature=invalid", "result=fail"}, ""},
		{"tampered raw body", []string{"--secret", wh.Secret, file("tampered.http", rawHTTP(caps[0], append(body, ' '), "\r\n", true))}, "", 1,
			[]string{"signature=invalid", "result=fail"}, ""},
		{"wrong secret", []string{"--secret", "whsec_" + strings.Repeat("A", 32), capture}, "", 1,
			[]string{"signature=invalid", "standard_signature=invalid", "result=fail"}, ""},
		{"unsigned", []string{"--secret", wh.Secret, file("unsigned.json", []byte(mustJSON(t, unsigned)))}, "", 1,
			[]string{"signature=missing", "standard_signature=missing", "result=fail"}, ""},
		{"no secret", []string{capture}, "", 2, nil, "give --secret and one FILE"},
		{"no such file", []string{"--secret", "s", filepath.Join(dir, "nope")}, "", 2, nil, "no such file"},
		{"not a request", []string{"--secret", "s", file("junk.txt", []byte("hello\x00world"))}, "", 2, nil, "neither a capture's JSON nor an HTTP/1.1 request"},
		{"JSON, not a capture", []string{"--secret", "s", file("other.json", []byte(`{"event":"x"}`))}, "", 2, nil, "not a capture"},
		{"short body", []string{"--secret", "s", file("short.http", []byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"))}, "", 2, nil, "shorter than its headers say"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(nil, c.stdin)
			code := verify(t.Context(), e.Env, c.args)
			if code != c.code || !strings.Contains(e.errOut.String(), c.stderr) {
				t.Fatalf("exit %d (want %d); stdout:\n%s\nstderr:\n%s", code, c.code, e.out, e.errOut)
			}
			for _, want := range c.stdout {
				if !strings.Contains("\n"+e.out.String(), "\n"+want) { // a line starting with want
					t.Errorf("stdout lacks %q:\n%s", want, e.out)
				}
			}
		})
	}
}
