package delivery

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
)

func TestHeaderJSONReadsBackAsOneValuePerName(t *testing.T) {
	h := http.Header{"Content-Type": {"application/json"}, "Set-Cookie": {"a=1", "b=<2>&"}, "X-Quote": {`say "hi"\`},
		"Webhook-Signature": {"v1,abc= v1,def="}}
	var got map[string]string
	if err := json.Unmarshal([]byte(headerJSON(h)), &got); err != nil {
		t.Fatalf("headerJSON wrote invalid JSON %s: %v", headerJSON(h), err)
	}
	want := map[string]string{"Content-Type": "application/json", "Set-Cookie": "a=1, b=<2>&", "X-Quote": `say "hi"\`,
		"Webhook-Signature": "v1,abc= v1,def="}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("headerJSON read back as %v, want %v", got, want)
	}
	if headerJSON(nil) != "{}" {
		t.Errorf("headerJSON(nil) = %s, want {}", headerJSON(nil))
	}
}

func BenchmarkHeaderJSON(b *testing.B) {
	h := http.Header{"Content-Type": {"application/json"}, "User-Agent": {"Hookrelay/dev"},
		"X-Webhook-Event": {"message.received"}, "X-Webhook-Timestamp": {"2025-01-15T10:30:00+00:00"},
		"X-Webhook-Id": {"evt_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f"}, "X-Webhook-Attempt": {"1"},
		"webhook-id": {"evt_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f"}, "webhook-timestamp": {"1736937000"},
		"X-Webhook-Signature": {"b8c8d2c31c3bb7a6f7e7d0d1f1b4e3f4a9c0b1d2e3f4a5b6c7d8e9f0a1b2c3d4"},
		"webhook-signature":   {"v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="}}
	b.ReportAllocs()
	for b.Loop() {
		headerJSON(h)
	}
}
