package inspector

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
)

// The headers' JSON is read back with encoding/json (the capture API, forwarding, curl), so
// what encodeHeaders writes must decode to what json.Marshal's output decodes to, whatever a
// sender put in its header lines.
func FuzzEncodeHeadersDecodesAsJSONMarshal(f *testing.F) {
	f.Add("Content-Type", "application/json", "X-Odd", "<b>&amp;\u2028\u2029\x00\x7f\"\\")
	f.Add("X-Bad-Utf8", "\xff\xfe\xc3", "Ünïcode-Key", "värde")
	f.Add("", "", "X-Empty", "")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		h := http.Header{k1: {v1, v2}, k2: {v2}, "X-None": {}, "X-Nil": nil}
		var got, want map[string][]string
		if err := json.Unmarshal([]byte(encodeHeaders(h)), &got); err != nil {
			t.Fatalf("encodeHeaders(%q) = %s: %v", h, encodeHeaders(h), err)
		}
		raw, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("encodeHeaders(%q) decodes to %q; json.Marshal's to %q", h, got, want)
		}
	})
}
