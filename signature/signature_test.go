package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHexHMACKnownAnswer(t *testing.T) {
	got := HexHMAC("your-webhook-secret", []byte(`{"a":1}`))
	// printf '{"a":1}' | openssl dgst -sha256 -hmac your-webhook-secret
	if want := "0eec7e0a2a492fdec3c2d1ff2ef88af7ffc53ee3581381f0f9c96a11d14d3393"; got != want {
		t.Fatalf("HexHMAC = %s, want %s", got, want)
	}
	if !VerifyHexHMAC("your-webhook-secret", []byte(`{"a":1}`), got) {
		t.Fatal("own signature does not verify")
	}
	if VerifyHexHMAC("other", []byte(`{"a":1}`), got) || VerifyHexHMAC("your-webhook-secret", []byte(`{"a":2}`), got) {
		t.Fatal("wrong secret or body verified")
	}
}

func TestStandardKeyDecodesWhsec(t *testing.T) {
	if k := StandardKey("whsec_AAECAw=="); string(k) != "\x00\x01\x02\x03" {
		t.Errorf("whsec key = %x", k)
	}
	if k := StandardKey("plain-secret"); string(k) != "plain-secret" {
		t.Errorf("plain key = %q", k)
	}
}

func TestVerifyStandardAcceptsAnyListedSignature(t *testing.T) {
	ts := time.Unix(1736937000, 0)
	body := []byte(`{"x":1}`)
	good := Standard("whsec_AAECAw==", "evt_1", ts, body)
	// printf 'evt_1.1736937000.{"x":1}' | openssl dgst -sha256 -mac HMAC -macopt hexkey:00010203 -binary | base64
	if want := "v1,zaFwYXlLiylM3sJIu1UNQ36pQaNtwcV4fwISWHyhxbg="; good != want {
		t.Fatalf("Standard = %s, want %s", good, want)
	}
	other := Standard("whsec_BBBBBB==", "evt_1", ts, body)
	unix := strconv.FormatInt(ts.Unix(), 10)
	if !VerifyStandard("whsec_AAECAw==", "evt_1", unix, body, other+" "+good) {
		t.Error("rotation list not accepted")
	}
	if VerifyStandard("whsec_AAECAw==", "evt_2", unix, body, good) {
		t.Error("other message id accepted")
	}
}

// The kept keyed MACs sign exactly as a MAC built for the message does: per secret, kind
// and message, from many goroutines at once, and after the cache starts over.
func TestKeptMACsSignAsFreshOnes(t *testing.T) {
	fresh := func(key []byte, msg ...[]byte) []byte {
		m := hmac.New(sha256.New, key)
		for _, p := range msg {
			m.Write(p)
		}
		return m.Sum(nil)
	}
	secrets := []string{"s3cret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!", strings.Repeat("k", 100)}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				// Past maxKeyed distinct secrets, so the cache starts over while in use.
				secret := secrets[i%len(secrets)]
				if i%3 == 0 {
					secret = fmt.Sprintf("secret-%d-%d", g, i)
				}
				body := []byte(fmt.Sprintf(`{"n":%d,"g":%d}`, i, g))
				msgID := fmt.Sprintf("evt_%d", i)
				unix := int64(1736937000 + i)
				if got, want := HexHMAC(secret, body), hex.EncodeToString(fresh([]byte(secret), body)); got != want {
					t.Errorf("HexHMAC(%q) = %s, want %s", secret, got, want)
					return
				}
				want := "v1," + base64.StdEncoding.EncodeToString(fresh(StandardKey(secret),
					[]byte(msgID+"."+strconv.FormatInt(unix, 10)+"."), body))
				if got := StandardFor(secret, msgID, unix, body); got != want {
					t.Errorf("StandardFor(%q) = %s, want %s", secret, got, want)
					return
				}
				if got := StandardWithKey(StandardKey(secret), msgID, unix, body); got != want {
					t.Errorf("StandardWithKey(%q) = %s, want %s", secret, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := keyedCount.Load(); n > maxKeyed {
		t.Errorf("%d secrets' MACs kept, want at most %d", n, maxKeyed)
	}
}
