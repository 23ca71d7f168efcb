// Package signature signs and verifies webhook bodies. The sender (delivery) and the
// built-in receiver (inspector) both use it, so what we send and what we check cannot drift.
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// Seed computes the seed contract's X-Webhook-Signature: lowercase hex HMAC-SHA256 of the
// exact body bytes, keyed with the secret's UTF-8 bytes (what PHP's hash_hmac and Node's
// createHmac do with a string key).
func Seed(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// VerifySeed reports whether sig is the seed signature of body, in constant time.
func VerifySeed(secret string, body []byte, sig string) bool {
	want := Seed(secret, body)
	return hmac.Equal([]byte(want), []byte(strings.ToLower(strings.TrimSpace(sig))))
}

// StandardKey returns the Standard Webhooks signing key for a secret: the base64-decoded
// part after "whsec_", or, for any other secret, its raw bytes (the official libraries'
// "raw" format), so a plain seed-style secret also signs webhook-signature.
func StandardKey(secret string) []byte {
	if rest, ok := strings.CutPrefix(secret, "whsec_"); ok {
		if k, err := base64.StdEncoding.DecodeString(rest); err == nil && len(k) > 0 {
			return k
		}
	}
	return []byte(secret)
}

// Standard returns one Standard Webhooks signature entry, "v1,<base64>", over
// "<id>.<unix timestamp>.<body>".
func Standard(secret, msgID string, ts time.Time, body []byte) string {
	return StandardWithKey(StandardKey(secret), msgID, ts.Unix(), body)
}

// StandardWithKey is Standard with an already decoded key.
func StandardWithKey(key []byte, msgID string, unix int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msgID))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(nil, unix, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// VerifyStandard checks a webhook-signature header value (space-separated entries) against
// the secret. Any matching v1 entry is enough, as during a secret rotation.
func VerifyStandard(secret, msgID, timestamp string, body []byte, header string) bool {
	unix, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return false
	}
	want := []byte(StandardWithKey(StandardKey(secret), msgID, unix, body))
	ok := false
	for _, entry := range strings.Fields(header) {
		// Compare every entry so the time taken does not reveal which one matched.
		if hmac.Equal(want, []byte(entry)) {
			ok = true
		}
	}
	return ok
}
