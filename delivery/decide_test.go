package delivery_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hookrelay/hookrelay/delivery"
	"github.com/hookrelay/hookrelay/internal/testsrv"
	"github.com/hookrelay/hookrelay/models"
)

func TestDecide(t *testing.T) {
	schedule := []time.Duration{10 * time.Second, time.Minute}
	timeout := &delivery.Response{Err: errors.New("timeout"), TimedOut: true}
	cases := []struct {
		name   string
		resp   *delivery.Response
		n      int
		jitter float64
		want   delivery.Decision
	}{
		{"200 succeeds", &delivery.Response{Status: 200}, 1, 0.5, delivery.Decision{Status: "succeeded"}},
		{"204 succeeds", &delivery.Response{Status: 204}, 2, 0.5, delivery.Decision{Status: "succeeded"}},
		{"299 succeeds", &delivery.Response{Status: 299}, 3, 0.5, delivery.Decision{Status: "succeeded"}},
		{"500 retries on schedule", &delivery.Response{Status: 500}, 1, 0.5, delivery.Decision{Status: "pending", Delay: 10 * time.Second}},
		{"jitter -10%", &delivery.Response{Status: 500}, 1, 0, delivery.Decision{Status: "pending", Delay: 9 * time.Second}},
		{"jitter towards +10%", &delivery.Response{Status: 500}, 2, 0.75, delivery.Decision{Status: "pending", Delay: 63 * time.Second}},
		{"last attempt fails", &delivery.Response{Status: 500}, 3, 0.5, delivery.Decision{Status: "failed"}},
		{"timeout retries", timeout, 1, 0.5, delivery.Decision{Status: "pending", Delay: 10 * time.Second}},
		{"3xx retries", &delivery.Response{Status: 302, Location: "/x"}, 1, 0.5, delivery.Decision{Status: "pending", Delay: 10 * time.Second}},
		{"429 Retry-After wins", &delivery.Response{Status: 429, RetryAfter: 2 * time.Hour}, 1, 0, delivery.Decision{Status: "pending", Delay: 2 * time.Hour}},
		{"503 Retry-After wins", &delivery.Response{Status: 503, RetryAfter: 3 * time.Second}, 2, 0.9, delivery.Decision{Status: "pending", Delay: 3 * time.Second}},
		{"429 without Retry-After uses the schedule", &delivery.Response{Status: 429}, 1, 0.5, delivery.Decision{Status: "pending", Delay: 10 * time.Second}},
		{"Retry-After cannot extend past the last attempt", &delivery.Response{Status: 429, RetryAfter: time.Minute}, 3, 0.5, delivery.Decision{Status: "failed"}},
		{"410 ends at once and disables", &delivery.Response{Status: 410}, 1, 0.5, delivery.Decision{Status: "failed", Disable: "endpoint answered 410 Gone"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := delivery.Decide(c.resp, c.n, schedule, c.jitter); got != c.want {
				t.Errorf("Decide = %+v, want %+v", got, c.want)
			}
		})
	}
	if got := delivery.Decide(&delivery.Response{Status: 500}, 1, nil, 0.5); got.Status != "failed" {
		t.Errorf("with an empty schedule the first failure is final, got %+v", got)
	}
	// Every jitter in [0,1) stays within ±10%.
	for _, j := range []float64{0, 0.1, 0.37, 0.5, 0.99, 0.999999} {
		d := delivery.Decide(&delivery.Response{Status: 500}, 1, schedule, j).Delay
		if d < 9*time.Second || d > 11*time.Second {
			t.Errorf("jitter %v gives %s, outside 10s ±10%%", j, d)
		}
	}
}

func TestParseSchedule(t *testing.T) {
	got, err := delivery.ParseSchedule("10s, 1m,5m")
	if err != nil || len(got) != 3 || got[0] != 10*time.Second || got[1] != time.Minute || got[2] != 5*time.Minute {
		t.Errorf("ParseSchedule = %v, %v", got, err)
	}
	if got, err := delivery.ParseSchedule(""); err != nil || len(got) != 0 {
		t.Errorf("empty schedule = %v, %v; want no retries", got, err)
	}
	for _, bad := range []string{"10", "1m,,5m", "-1s", "soon"} {
		if _, err := delivery.ParseSchedule(bad); err == nil {
			t.Errorf("ParseSchedule(%q) accepted", bad)
		}
	}
}

// The span DefaultRetrySchedule's comment states is the sum of its delays.
func TestDefaultRetryScheduleSpansWhatItsCommentSays(t *testing.T) {
	var total time.Duration
	for _, d := range delivery.DefaultRetrySchedule {
		total += d
	}
	if want := 44*time.Hour + 36*time.Minute + 10*time.Second; total != want {
		t.Errorf("the default schedule spans %s, its comment says %s", total, want)
	}
}

// send makes one attempt with a fresh sender against url.
func send(t *testing.T, cfg delivery.SenderConfig, url string) *delivery.Response {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	cfg.AllowPrivate, cfg.Version = true, "test"
	s := delivery.NewSender(cfg)
	t.Cleanup(s.CloseIdleConnections)
	return s.Send(context.Background(), delivery.Request{Webhook: &models.Webhook{URL: url}, MessageID: "evt_1",
		EventType: "conversation.started", Body: []byte(`{}`), Attempt: 1})
}

func TestRetryAfterIsReadFromSecondsAndDates(t *testing.T) {
	future := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	past := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	cases := []struct {
		status     int
		retryAfter string
		min, max   time.Duration
	}{
		{429, "120", 120 * time.Second, 120 * time.Second},
		{503, "7", 7 * time.Second, 7 * time.Second},
		{503, future, 88 * time.Second, 92 * time.Second},
		{429, "999999", 24 * time.Hour, 24 * time.Hour}, // capped
		{429, past, 0, 0},
		{429, "-5", 0, 0},
		{429, "soon", 0, 0},
		{429, "", 0, 0},
		{500, "120", 0, 0}, // only 429 and 503 carry a meaningful Retry-After
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%d %q", c.status, c.retryAfter), func(t *testing.T) {
			rc := testsrv.NewReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				if c.retryAfter != "" {
					w.Header().Set("Retry-After", c.retryAfter)
				}
				w.WriteHeader(c.status)
			})
			resp := send(t, delivery.SenderConfig{}, rc.URL)
			if resp.Status != c.status || resp.RetryAfter < c.min || resp.RetryAfter > c.max {
				t.Errorf("got status %d, RetryAfter %s; want %s..%s", resp.Status, resp.RetryAfter, c.min, c.max)
			}
		})
	}
}

func TestResponseExcerptIsBoundedAndValidUTF8(t *testing.T) {
	rc := testsrv.NewReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte("\xff\xfe"))
		_, _ = w.Write([]byte(strings.Repeat("x", 100<<10)))
	})
	resp := send(t, delivery.SenderConfig{}, rc.URL)
	if resp.Status != 400 || resp.Err != nil {
		t.Fatalf("status %d, err %v", resp.Status, resp.Err)
	}
	if !utf8.ValidString(resp.Body) || !strings.HasSuffix(resp.Body, "xxxx") {
		t.Errorf("excerpt is not valid UTF-8 text ending in the body's bytes: %q…", resp.Body[:20])
	}
	// The run of two invalid bytes became one U+FFFD (3 bytes): the excerpt covers the first 4 KiB.
	if want := delivery.ResponseExcerptLimit - 2 + 3; len(resp.Body) != want {
		t.Errorf("excerpt is %d bytes, want %d (the first %d bytes of the body)", len(resp.Body), want, delivery.ResponseExcerptLimit)
	}
}

func TestTimeoutCoversTheResponseBodyToo(t *testing.T) {
	rc := testsrv.NewReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		select { // the headers are out; the body never ends
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	})
	resp := send(t, delivery.SenderConfig{Timeout: 300 * time.Millisecond}, rc.URL)
	if resp.OK() || !resp.TimedOut || resp.Err == nil || !strings.Contains(resp.Err.Error(), "timeout") {
		t.Errorf("a body that never ends: ok=%v timedOut=%v err=%v; want a timeout failure", resp.OK(), resp.TimedOut, resp.Err)
	}
}
