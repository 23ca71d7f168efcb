package models

import (
	"bytes"
	"encoding/json"
	"testing"
)

// The copy shortcut for plain strings and integers must write exactly what decoding and
// encoding again writes; otherwise it must decline.
func TestPlainValuesAreCopiedOnlyWhenEncodingWouldReproduceThem(t *testing.T) {
	for _, raw := range []string{`"John Doe"`, `"<b>&</b>"`, `"é 中文 🎉"`, `"tab\there"`, `"quote \" inside"`, `"line` + "\u2028" + `"`,
		`"bad ` + "\xff" + `"`, `""`, `"   "`, ` "padded" `, `null`, `12`} {
		plain, ok := plainJSONString([]byte(raw))
		if !ok {
			continue
		}
		var s string
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			t.Errorf("%s was taken as plain but does not decode: %v", raw, err)
			continue
		}
		var buf bytes.Buffer
		writeJSONString(&buf, s)
		if !bytes.Equal(plain, buf.Bytes()) {
			t.Errorf("%s copied as %s, but encoding writes %s", raw, plain, buf.Bytes())
		}
	}
	for raw, want := range map[string]int64{"123": 123, " 7 ": 7} {
		if n, ok := plainPositiveInt([]byte(raw)); !ok || n != want {
			t.Errorf("plainPositiveInt(%q) = %d, %v; want %d", raw, n, ok, want)
		}
	}
	for _, raw := range []string{"0", "012", "-5", "1.0", "1e3", `"5"`, "99999999999999999999"} {
		if _, ok := plainPositiveInt([]byte(raw)); ok {
			t.Errorf("plainPositiveInt(%q) accepted; the full check must decide", raw)
		}
	}
}
