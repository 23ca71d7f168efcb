package models_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/models"
)

func encodingJSON(s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// The body's strings must come out byte for byte as encoding/json writes them.
func TestAppendJSONStringWritesWhatEncodingJSONWrites(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " and \ backslash`, "<b>&amp;</b>", "tab\tnew\nline\rret\bback\fform",
		"\x00\x01\x1f\x7f", "é ü 中文 🎉", "line\u2028para\u2029end", "bad \xff\xfe utf8 \xc3", "John Doe"} {
		if got, want := models.AppendJSONString(nil, s), encodingJSON(s); !bytes.Equal(got, want) {
			t.Errorf("AppendJSONString(%q) = %s, encoding/json writes %s", s, got, want)
		}
		if got, want := models.AppendJSONString(nil, []byte(s)), encodingJSON(s); !bytes.Equal(got, want) {
			t.Errorf("AppendJSONString([]byte(%q)) = %s, encoding/json writes %s", s, got, want)
		}
	}
}

// Into a buffer with room, a string or bytes is written without allocating: it runs for every
// string of every body, and for every watched capture's preview.
func TestAppendJSONStringAllocatesNothing(t *testing.T) {
	b := []byte("héllo wörld \u2028 \xff 中文 \"quoted\" <tag>")
	s := string(b)
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { _ = models.AppendJSONString(buf[:0], b) }); n != 0 {
		t.Errorf("bytes: %v allocations per call, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = models.AppendJSONString(buf[:0], s) }); n != 0 {
		t.Errorf("string: %v allocations per call, want 0", n)
	}
}

func FuzzAppendJSONString(f *testing.F) {
	f.Add("hello \"world\" \u2028 \xff")
	f.Add("0123456\"89abcdef\x1f0123456789\\abcdefgh\x7f\xc3\xa9 words of eight bytes\n")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := models.AppendJSONString(nil, s), encodingJSON(s); !bytes.Equal(got, want) {
			t.Errorf("AppendJSONString(%q) = %s, encoding/json writes %s", s, got, want)
		}
		// Bytes are written as the string they hold.
		if got, want := models.AppendJSONString(nil, []byte(s)), encodingJSON(s); !bytes.Equal(got, want) {
			t.Errorf("AppendJSONString([]byte(%q)) = %s, encoding/json writes %s", s, got, want)
		}
	})
}

// BenchmarkAppendJSONString writes a delivered payload of about 1 KiB (a watched capture's
// preview) and a header value (every stored header), the two kinds of string it writes most.
func BenchmarkAppendJSONString(b *testing.B) {
	payload := []byte(`{"event":"message.received","timestamp":"2026-12-06T14:30:00.123Z","data":{"message_id":7,"content":"` +
		strings.Repeat("hello ", 105) + `","is_from_admin":false,"admin_name":null,"conversation_id":42,` +
		`"visitor_name":"John Doe","visitor_email":"john@example.com","visitor_phone":"+1234567890",` +
		`"visitor_ip":"192.168.1.100","current_url":"https://example.com/products","status":"open","created_at":"2026-12-06T14:30:00.123Z"}}`)
	buf := make([]byte, 0, 4096)
	b.Run("payload", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			buf = models.AppendJSONString(buf[:0], payload)
		}
	})
	b.Run("header", func(b *testing.B) {
		for b.Loop() {
			buf = models.AppendJSONString(buf[:0], "application/json; charset=utf-8")
		}
	})
}
