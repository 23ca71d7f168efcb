package delivery_test

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testsrv"
	"github.com/hookrelay/hookrelay/internal/wait"
)

// scrapeMetrics reads the server's /metrics as a map from series ("name{labels}") to value.
func scrapeMetrics(t *testing.T, s *testsrv.Server) (map[string]float64, string) {
	t.Helper()
	body := string(s.Do(t, http.MethodGet, "/metrics", nil, http.StatusOK, nil))
	out := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("unparseable metrics line %q", line)
		}
		out[line[:i]] = v
	}
	return out, body
}

// waitMetric scrapes until series reaches want, failing after a generous timeout.
func waitMetric(t *testing.T, s *testsrv.Server, series string, want float64) map[string]float64 {
	t.Helper()
	var m map[string]float64
	if !wait.For(func() bool { m, _ = scrapeMetrics(t, s); return m[series] == want }) {
		t.Fatalf("%s = %v, want %v", series, m[series], want)
	}
	return m
}

func TestMetricsCountPublishedEventsAndSuccessfulDeliveries(t *testing.T) {
	rc := testsrv.NewReceiver(t, nil)
	s, wh := startWithHook(t, testsrv.Options{}, rc.URL+"/hook")

	before, _ := scrapeMetrics(t, s)
	for _, series := range []string{`hookrelay_events_published_total{event="conversation.started"}`,
		`hookrelay_deliveries_total{outcome="succeeded"}`, `hookrelay_delivery_attempt_duration_seconds_count`} {
		if v, ok := before[series]; !ok || v != 0 {
			t.Fatalf("before any event %s = %v (present %v), want 0", series, v, ok)
		}
	}

	publishOne(t, s)
	s.Do(t, http.MethodPost, "/api/v1/events/batch", map[string]any{"events": []map[string]any{
		{"event": "conversation.started", "data": conversation},
		{"event": "conversation.started", "data": conversation},
	}}, http.StatusAccepted, nil)
	rc.WaitFor(t, 3, 15*time.Second)

	// An attempt moves its outcome, response class and duration one after another, and a
	// scrape may fall between them: wait for each (they only grow) before reading the rest.
	waitMetric(t, s, `hookrelay_deliveries_total{outcome="succeeded"}`, 3)
	waitMetric(t, s, `hookrelay_delivery_responses_total{class="2xx"}`, 3)
	m := waitMetric(t, s, `hookrelay_delivery_attempt_duration_seconds_count`, 3)
	want := map[string]float64{
		`hookrelay_events_published_total{event="conversation.started"}`: 3,
		`hookrelay_events_published_total{event="message.received"}`:     0,
		`hookrelay_deliveries_queued_total`:                              3,
		`hookrelay_deliveries_total{outcome="failed"}`:                   0,
		`hookrelay_deliveries_total{outcome="retrying"}`:                 0,
		`hookrelay_delivery_responses_total{class="2xx"}`:                3,
		`hookrelay_delivery_responses_total{class="5xx"}`:                0,
		`hookrelay_delivery_attempt_duration_seconds_count`:              3,
	}
	for series, v := range want {
		if m[series] != v {
			t.Errorf("%s = %v, want %v", series, m[series], v)
		}
	}
	// The in-flight gauge comes back down once the attempts end, and the queue empties once
	// the recorder has written the results.
	waitMetric(t, s, `hookrelay_deliveries_in_flight`, 0)
	waitMetric(t, s, `hookrelay_queue_pending_deliveries`, 0)

	_, body := scrapeMetrics(t, s)
	if strings.Contains(body, wh.ID) {
		t.Errorf("/metrics names the webhook %s: per-webhook series would grow without bound", wh.ID)
	}
}

func TestMetricsShowRetriesFailuresAndTheQueue(t *testing.T) {
	rc := testsrv.NewReceiver(t, testsrv.Status(http.StatusInternalServerError))
	// One attempt, then a retry an hour away: the delivery stays pending for the whole test.
	s, _ := startWithHook(t, testsrv.Options{RetrySchedule: []time.Duration{time.Hour}}, rc.URL+"/hook")

	publishOne(t, s)
	rc.WaitFor(t, 1, 15*time.Second)
	// The attempt's outcome and response class move one after another, and a scrape may
	// fall between them.
	waitMetric(t, s, `hookrelay_deliveries_total{outcome="retrying"}`, 1)
	m := waitMetric(t, s, `hookrelay_delivery_responses_total{class="5xx"}`, 1)
	if v := m[`hookrelay_delivery_responses_total{class="5xx"}`]; v != 1 {
		t.Errorf("5xx responses = %v, want 1", v)
	}
	if v := m[`hookrelay_deliveries_total{outcome="succeeded"}`]; v != 0 {
		t.Errorf("succeeded = %v, want 0", v)
	}
	waitMetric(t, s, `hookrelay_queue_pending_deliveries`, 1)
	// Its next attempt is an hour away, so nothing is overdue.
	waitMetric(t, s, `hookrelay_queue_oldest_pending_age_seconds`, 0)
}

func TestMetricsInFlightFollowsAHangingAttempt(t *testing.T) {
	release := make(chan struct{})
	rc := testsrv.NewReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusNoContent)
	})
	s, _ := startWithHook(t, testsrv.Options{Timeout: 30 * time.Second}, rc.URL+"/hook")
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // runs before the server's cleanup, which waits for the attempt
	publishOne(t, s)
	rc.WaitFor(t, 1, 15*time.Second)
	waitMetric(t, s, `hookrelay_deliveries_in_flight`, 1)
	m, _ := scrapeMetrics(t, s)
	// While the attempt hangs the delivery is pending and overdue (it was due at publish).
	if m[`hookrelay_queue_pending_deliveries`] != 1 {
		t.Errorf("pending = %v while the attempt hangs, want 1", m[`hookrelay_queue_pending_deliveries`])
	}
	unblock()
	waitMetric(t, s, `hookrelay_deliveries_in_flight`, 0)
	waitMetric(t, s, `hookrelay_deliveries_total{outcome="succeeded"}`, 1)
}

// One receiver answering one event after another: the first attempt opens a connection, the
// next ones reuse it, and it waits idle in between.
func TestMetricsCountConnectionsOpenedAndReused(t *testing.T) {
	rc := testsrv.NewReceiver(t, nil)
	s, _ := startWithHook(t, testsrv.Options{}, rc.URL+"/hook")
	for i := 1; i <= 3; i++ {
		publishOne(t, s)
		rc.WaitFor(t, i, 15*time.Second)
		waitMetric(t, s, `hookrelay_deliveries_in_flight`, 0)
	}
	m := waitMetric(t, s, `hookrelay_delivery_connections_reused_total`, 2)
	if m[`hookrelay_delivery_connections_opened_total`] != 1 || m[`hookrelay_delivery_connections_idle`] != 1 {
		t.Errorf("opened %v, idle %v; want 1 connection made and kept idle for 3 attempts in sequence",
			m[`hookrelay_delivery_connections_opened_total`], m[`hookrelay_delivery_connections_idle`])
	}
}
