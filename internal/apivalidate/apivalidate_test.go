package apivalidate_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/apivalidate"
)

// recorder collects what the validator reports instead of failing the test, so the tests can
// assert that a drift is reported.
type recorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}

// exchange sends one request through a validating client to a server that answers with
// status, content type and body, and returns what the validator reported.
func exchange(t *testing.T, method, path, auth, reqBody string, status int, contentType, resBody string) []string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ := io.ReadAll(r.Body)
		if string(got) != reqBody {
			t.Errorf("server got body %q, want %q: the validator must pass the body on untouched", got, reqBody)
		}
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, resBody)
	}))
	t.Cleanup(srv.Close)
	rec := &recorder{}
	client := &http.Client{Timeout: 30 * time.Second, Transport: apivalidate.Transport(rec, nil)}
	var body io.Reader
	if reqBody != "" {
		body = strings.NewReader(reqBody)
	}
	req, err := http.NewRequest(method, srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if reqBody != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	got, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	if string(got) != resBody {
		t.Errorf("client got body %q, want %q: the validator must pass the response on untouched", got, resBody)
	}
	return rec.msgs
}

const problem404 = `{"type":"urn:hookrelay:problem:not-found","title":"Not found","status":404,"detail":"Not found"}`

func TestValidatorAcceptsExchangesThatMatchTheDocument(t *testing.T) {
	cases := []struct {
		name, method, path, auth, reqBody string
		status                            int
		contentType, resBody              string
	}{
		{"health probe", "GET", "/healthz", "", "", 200, "application/json", `{"status":"ok"}`},
		{"problem for a missing webhook", "GET", "/api/v1/webhooks/wh_x", "Bearer t", "", 404, "application/problem+json", problem404},
		{"invalid request refused with 422", "POST", "/api/v1/session", "", `{"token":5}`, 422, "application/problem+json",
			`{"type":"urn:hookrelay:problem:validation","title":"Validation failed","status":422,"detail":"token: must be a string","errors":[{"field":"token","message":"must be a string"}]}`},
		{"missing credentials refused with 401", "GET", "/api/v1/webhooks", "", "", 401, "application/problem+json",
			`{"type":"urn:hookrelay:problem:unauthorized","title":"Authentication required","status":401,"detail":"log in"}`},
		{"unknown route answered 404", "GET", "/api/v1/no-such-thing", "Bearer t", "", 404, "application/problem+json", problem404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if msgs := exchange(t, c.method, c.path, c.auth, c.reqBody, c.status, c.contentType, c.resBody); len(msgs) != 0 {
				t.Errorf("valid exchange reported: %q", msgs)
			}
		})
	}
}

func TestValidatorReportsDrift(t *testing.T) {
	cases := []struct {
		name, method, path, auth, reqBody string
		status                            int
		contentType, resBody              string
		want                              string
	}{
		{"undocumented status", "GET", "/healthz", "", "", 418, "application/json", `{}`, "status"},
		{"body of the wrong shape", "GET", "/healthz", "", "", 200, "application/json", `{"status":5}`, "does not match"},
		{"problem sent as plain JSON", "GET", "/api/v1/webhooks/wh_x", "Bearer t", "", 404, "application/json", problem404, "does not match"},
		{"invalid request accepted", "POST", "/api/v1/session", "", `{"token":5}`, 204, "", "", "disagree"},
		{"request without credentials accepted", "GET", "/api/v1/webhooks", "", "", 200, "application/json", `{"data":[],"next_cursor":null}`, "disagree"},
		{"undocumented route served", "GET", "/api/v1/no-such-thing", "Bearer t", "", 200, "application/json", `{}`, "not in the OpenAPI document"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msgs := exchange(t, c.method, c.path, c.auth, c.reqBody, c.status, c.contentType, c.resBody)
			if len(msgs) == 0 {
				t.Fatalf("drift not reported")
			}
			if !strings.Contains(strings.Join(msgs, "\n"), c.want) {
				t.Errorf("report %q does not mention %q", msgs, c.want)
			}
		})
	}
}

func TestValidatorMatchesTheInspectorsRestOfPath(t *testing.T) {
	msgs := exchange(t, "POST", "/inspect/bin123/a/b/c?x=1", "", `{"any":"thing"}`, 200, "application/json", `{"ok":true}`)
	if len(msgs) != 0 {
		t.Errorf("a capture under a sub-path was reported: %q", msgs)
	}
}
