package delivery

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// DefaultRetrySchedule is the delay before attempts 2, 3, …: 44 h 36 min 10 s from the first
// attempt to the last (each delay ±10% jitter), close to what Svix and the Standard Webhooks
// spec recommend.
var DefaultRetrySchedule = []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour}

// ParseSchedule parses "10s,1m,5m".
func ParseSchedule(s string) ([]time.Duration, error) {
	var out []time.Duration
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil || d < 0 {
			return nil, fmt.Errorf("%q is not a duration such as 10s or 5m", strings.TrimSpace(part))
		}
		out = append(out, d)
	}
	return out, nil
}

// Decision is what happens to a delivery after an attempt.
type Decision struct {
	Status  string        // succeeded, failed or pending (retry)
	Delay   time.Duration // before the next attempt, when pending
	Disable string        // reason to disable the webhook, when non-empty
}

// Decide applies the endpoint rules to attempt number n (1-based): any 2xx succeeds; 410 Gone
// ends the delivery and disables the webhook; otherwise retry after the schedule's delay with
// ±10% jitter (jitter in [0,1)), or the Retry-After of a 429/503, until the schedule runs out.
func Decide(resp *Response, n int, schedule []time.Duration, jitter float64) Decision {
	if resp.OK() {
		return Decision{Status: "succeeded"}
	}
	if resp.Err == nil && resp.Status == http.StatusGone {
		return Decision{Status: "failed", Disable: "endpoint answered 410 Gone"}
	}
	if n > len(schedule) {
		return Decision{Status: "failed"}
	}
	if resp.RetryAfter > 0 {
		return Decision{Status: "pending", Delay: resp.RetryAfter}
	}
	base := schedule[n-1]
	delay := base + time.Duration((jitter*0.2-0.1)*float64(base))
	return Decision{Status: "pending", Delay: delay}
}
