package signature

import (
	"strconv"
	"testing"
	"time"
)

func TestSeedKnownAnswer(t *testing.T) {
	got := Seed("your-webhook-secret", []byte(`{"a":1}`))
	// printf '{"a":1}' | openssl dgst -sha256 -hmac your-webhook-secret
	if want := "0eec7e0a2a492fdec3c2d1ff2ef88af7ffc53ee3581381f0f9c96a11d14d3393"; got != want {
		t.Fatalf("Seed = %s, want %s", got, want)
	}
	if !VerifySeed("your-webhook-secret", []byte(`{"a":1}`), got) {
		t.Fatal("own signature does not verify")
	}
	if VerifySeed("other", []byte(`{"a":1}`), got) || VerifySeed("your-webhook-secret", []byte(`{"a":2}`), got) {
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
