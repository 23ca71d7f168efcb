// Package signature signs and verifies webhook bodies. The sender (delivery) and the
// built-in receiver (inspector) both use it, so what we send and what we check cannot drift.
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// HexHMAC computes X-Webhook-Signature (README, "What a receiver gets"): lowercase hex
// HMAC-SHA256 of the exact body bytes, keyed with the secret's UTF-8 bytes (what PHP's
// hash_hmac and Node's createHmac do with a string key).
func HexHMAC(secret string, body []byte) string {
	m, pool := keyedMAC("hexhmac", secret)
	defer pool.Put(m)
	m.Write(body)
	var sum [sha256.Size]byte
	return hex.EncodeToString(m.Sum(sum[:0]))
}

// VerifyHexHMAC reports whether sig is the X-Webhook-Signature (HexHMAC) of body, in constant time.
func VerifyHexHMAC(secret string, body []byte, sig string) bool {
	want := HexHMAC(secret, body)
	return hmac.Equal([]byte(want), []byte(strings.ToLower(strings.TrimSpace(sig))))
}

// StandardKey returns the Standard Webhooks signing key for a secret: the base64-decoded
// part after "whsec_", or, for any other secret, its raw bytes (the official libraries'
// "raw" format), so a plain (non-whsec_) secret also signs webhook-signature.
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
	return standardWith(hmac.New(sha256.New, key), msgID, unix, body)
}

// StandardFor is Standard for a secret that signs many messages: its decoded key and keyed
// state are kept (see keyedMAC) instead of being rebuilt for every message.
func StandardFor(secret, msgID string, unix int64, body []byte) string {
	m, pool := keyedMAC("standard", secret)
	defer pool.Put(m)
	return standardWith(m, msgID, unix, body)
}

func standardWith(m hash.Hash, msgID string, unix int64, body []byte) string {
	var head [64]byte
	b := append(head[:0], msgID...)
	b = append(b, '.')
	b = strconv.AppendInt(b, unix, 10)
	b = append(b, '.')
	m.Write(b)
	m.Write(body)
	var sum [sha256.Size]byte
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(sum[:0]))
}

// keyedMAC lends an HMAC-SHA256 already keyed with secret (for X-Webhook-Signature or as a Standard
// Webhooks secret), reset to sign a new message; it goes back to pool when done. A sender signs every
// attempt twice with the same few secrets: building the MAC each time cost two hash blocks
// of key setup and about 900 bytes of allocations per signature, where a kept one resets
// from its saved keyed state. The cache holds the MACs of at most maxKeyed secrets at a
// time and starts over past that, so secrets that are no longer used do not pile up.
func keyedMAC(kind, secret string) (hash.Hash, *sync.Pool) {
	k := keyedKey{kind, secret}
	v, ok := keyed.Load(k)
	if !ok {
		if keyedCount.Add(1) > maxKeyed {
			keyed.Clear()
			keyedCount.Store(1)
		}
		key := []byte(secret)
		if kind == "standard" {
			key = StandardKey(secret)
		}
		v, _ = keyed.LoadOrStore(k, &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }})
	}
	pool := v.(*sync.Pool)
	m := pool.Get().(hash.Hash)
	m.Reset()
	return m, pool
}

type keyedKey struct{ kind, secret string }

const maxKeyed = 1024

var (
	keyed      sync.Map // keyedKey → *sync.Pool of hash.Hash
	keyedCount atomic.Int64
)

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
