package inspector

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/signature"
)

// Verify reads whatever a stranger sends to a bin URL: it must never panic, and a body signed
// with the bin's secret must verify whatever the body is.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(`{"event":"conversation.started","timestamp":"2025-01-15T10:30:00+00:00","data":{"conversation_id":123}}`),
		"conversation.started", "2025-01-15T10:30:00+00:00", "v1,abc", "1736937000", "msg_1")
	f.Add([]byte{0xff, 0x00}, "", "", "", "", "")
	f.Add([]byte(`{"event":"message.received","data":{"content":null}}`), "message.received", "yesterday", "v1 v2,,", "-1", "")
	f.Fuzz(func(t *testing.T, body []byte, event, ts, stdSig, stdTS, msgID string) {
		const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		h := http.Header{}
		h.Set("X-Webhook-Event", event)
		h.Set("X-Webhook-Timestamp", ts)
		h.Set("X-Webhook-Signature", signature.HexHMAC(secret, body))
		h.Set("webhook-id", msgID)
		h.Set("webhook-timestamp", stdTS)
		h.Set("webhook-signature", stdSig)
		v := Verify(Secrets{HexHMAC: secret, Standard: []string{secret}}, h, body, time.Now())
		if v.Signature != SigValid {
			t.Errorf("a body signed with the secret verifies %q", v.Signature)
		}
		if _, err := strconv.ParseInt(stdTS, 10, 64); err == nil && v.StandardSignature == SigValid && stdSig != "" {
			want := signature.StandardFor(secret, msgID, mustInt(stdTS), body)
			if stdSig != want && !containsEntry(stdSig, want) {
				t.Errorf("webhook-signature %q verified without the right entry", stdSig)
			}
		}
		_ = rejectedVerdicts(Secrets{HexHMAC: secret}, h)
	})
}

func mustInt(s string) int64 { n, _ := strconv.ParseInt(s, 10, 64); return n }

func containsEntry(header, entry string) bool {
	for i := 0; i+len(entry) <= len(header); i++ {
		if header[i:i+len(entry)] == entry {
			return true
		}
	}
	return false
}
