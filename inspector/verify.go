package inspector

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/signature"
)

// Secrets are what a capture is verified with.
type Secrets struct {
	HexHMAC  string   // verifies X-Webhook-Signature; empty when none
	Standard []string // verify webhook-signature: all keys active now (rotation keeps the old one 24 h)
}

// SecretsFor returns the secrets of a bin: its own, or else those of its linked webhook as
// they are now. wh may be nil (no link, or the webhook was deleted).
func SecretsFor(b *models.Bin, wh *models.Webhook, now time.Time) Secrets {
	if b.Secret != "" {
		return Secrets{HexHMAC: b.Secret, Standard: []string{b.Secret}}
	}
	if wh != nil {
		if hex, standard := wh.SecretsAt(now); hex != "" {
			return Secrets{HexHMAC: hex, Standard: standard}
		}
	}
	return Secrets{}
}

// Verify checks a received request as a careful receiver would: X-Webhook-Signature, the
// Standard Webhooks signature and timestamp, and the body against the event catalogue (the
// same one the publisher validates with, so the two cannot disagree).
func Verify(sec Secrets, h http.Header, body []byte, receivedAt time.Time) Verdicts {
	v := Verdicts{Signature: hexHMACVerdict(sec, h, body), StandardSignature: standardVerdict(sec, h, body)}
	v.TimestampSkewSeconds = skew(h, receivedAt)
	v.Payload = payloadVerdict(h, body)
	return v
}

func hexHMACVerdict(sec Secrets, h http.Header, body []byte) string {
	sig := h.Get("X-Webhook-Signature")
	switch {
	case sec.HexHMAC == "":
		return SigNoSecret
	case sig == "":
		return SigMissing
	case signature.VerifyHexHMAC(sec.HexHMAC, body, sig):
		return SigValid
	}
	return SigInvalid
}

func standardVerdict(sec Secrets, h http.Header, body []byte) string {
	sig, id, ts := h.Get("Webhook-Signature"), h.Get("Webhook-Id"), h.Get("Webhook-Timestamp")
	switch {
	case len(sec.Standard) == 0:
		return SigNoSecret
	case sig == "":
		return SigMissing
	case id == "" || ts == "":
		return SigInvalid // a signature without the id or timestamp it covers cannot verify
	}
	for _, s := range sec.Standard {
		if signature.VerifyStandard(s, id, ts, body, sig) {
			return SigValid
		}
	}
	return SigInvalid
}

// skew is arrival minus the request's own timestamp, in seconds: webhook-timestamp (unix
// seconds) or else X-Webhook-Timestamp. Receivers reject more than 5 minutes.
func skew(h http.Header, receivedAt time.Time) *int64 {
	var sent time.Time
	if v := h.Get("Webhook-Timestamp"); v != "" {
		unix, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil
		}
		sent = time.Unix(unix, 0)
	} else if v := h.Get("X-Webhook-Timestamp"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return nil
		}
		sent = t
	} else {
		return nil
	}
	s := int64(receivedAt.Sub(sent).Round(time.Second) / time.Second)
	return &s
}

// payloadVerdict checks the body against the event type X-Webhook-Event names, through
// models.CheckDelivered.
func payloadVerdict(h http.Header, body []byte) PayloadVerdict {
	named := h.Get("X-Webhook-Event")
	bodyType, known, problems := models.CheckDelivered(body)
	if problems == nil {
		problems = []string{}
	}
	if named == "" {
		if !known {
			return PayloadVerdict{Status: PayloadUnknownEvent, Problems: append([]string{"X-Webhook-Event: missing"}, problems...)}
		}
		problems = append([]string{"X-Webhook-Event: missing"}, problems...)
		return PayloadVerdict{Status: PayloadProblems, Problems: problems}
	}
	if _, ok := models.LookupEventType(named); !ok {
		return PayloadVerdict{Status: PayloadUnknownEvent,
			Problems: []string{fmt.Sprintf("X-Webhook-Event: unknown event type %q", named)}}
	}
	if bodyType != "" && bodyType != named {
		problems = append(problems, fmt.Sprintf("event: the body says %q but X-Webhook-Event says %q", bodyType, named))
	}
	if len(problems) == 0 {
		return PayloadVerdict{Status: PayloadOK, Problems: problems}
	}
	return PayloadVerdict{Status: PayloadProblems, Problems: problems}
}
