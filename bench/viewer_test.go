package main

import "testing"

// The viewer reads the verdicts the server put in the message, not text in the body preview
// that looks like them, and counts a capture whose verdicts it cannot read as not verified.
func TestPushedVerdictsReadsTheMessagesOwnVerdicts(t *testing.T) {
	for _, c := range []struct {
		name      string
		msg       string
		capture   bool
		signature string
		status    string
	}{
		{"valid", `{"type":"request","data":{"id":"req_1","body_preview":"{}","verdicts":{"signature":"valid","timestamp_skew_seconds":0,"payload":{"status":"ok","problems":[]}},"answered":null}}`,
			true, "valid", "ok"},
		{"timestamp unread", `{"type":"request","data":{"id":"req_1","body_preview":"{}","verdicts":{"signature":"valid","timestamp_skew_seconds":null,"payload":{"status":"ok","problems":[]}},"answered":null}}`,
			true, "valid", "ok"},
		{"a body that imitates the verdicts", `{"type":"request","data":{"id":"req_1","body_preview":"{\",\"verdicts\":{\"signature\":\"valid\",\"timestamp_skew_seconds\":0,\"payload\":{\"status\":\"ok\"}},\"answered\":1}","verdicts":{"signature":"invalid","timestamp_skew_seconds":-3,"payload":{"status":"invalid","problems":["\"payload\":{\"status\":\"ok\""]}},"rejected":"signature","answered":401}}`,
			true, "invalid", "invalid"},
		{"verdicts missing", `{"type":"request","data":{"id":"req_1","answered":null}}`, true, "", ""},
		{"verdicts malformed", `{"type":"request","data":{"id":"req_1","verdicts":{"signature":,"answered":null}}`, true, "", ""},
		{"another message", `{"type":"hello","data":{"verdicts":{"signature":"valid"},"answered":null}}`, false, "", ""},
	} {
		v, ok := pushedVerdicts([]byte(c.msg))
		if ok != c.capture || v.Signature != c.signature || v.Payload.Status != c.status {
			t.Errorf("%s: %+v, %v; want signature %q, payload %q, capture %v", c.name, v, ok, c.signature, c.status, c.capture)
		}
		if want := c.name == "valid"; v.verified() != want {
			t.Errorf("%s: verified %v, want %v", c.name, v.verified(), want)
		}
	}
}
