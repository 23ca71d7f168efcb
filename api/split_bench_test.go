package api

import "testing"

// A usual message.received body, as a chat back end publishes it.
var splitBenchBody = []byte(`{"event":"message.received","timestamp":"2025-01-15T10:30:00+00:00","data":{"conversation_id":123,` +
	`"message_id":456,"content":"Hello there, I have a question about my order #12345 and whether it ships this week or next; ` +
	`thanks a lot for your help!","sender":"visitor"}}`)

func BenchmarkSplitBody(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := splitBody(splitBenchBody); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSplitBodyJSON is BenchmarkSplitBody with encoding/json alone, as before the
// scanner.
func BenchmarkSplitBodyJSON(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := splitBodyJSON(splitBenchBody); err != nil {
			b.Fatal(err)
		}
	}
}
