package models

import (
	"strings"
	"testing"
	"time"
)

// BenchmarkBuildBody validates and builds a message.received body of about 1 KiB, as every
// publish does.
func BenchmarkBuildBody(b *testing.B) {
	et, _ := LookupEventType(EventMessageReceived)
	data := []byte(`{"conversation_id":123,"message_id":456,"content":"` + strings.Repeat("Hello, I need help with my order. ", 16) +
		`","visitor_name":"John Doe","visitor_email":"john@example.com","visitor_phone":"+1234567890",` +
		`"visitor_ip":"192.168.1.100","current_url":"https://example.com/products","status":"open","created_at":"2025-01-15T10:31:00Z"}`)
	at := time.Date(2025, 1, 15, 10, 31, 0, 0, time.UTC)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := et.BuildBody(data, at); err != nil {
			b.Fatal(err)
		}
	}
}
