package models

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// benchData is a published message.received data object; with n repeats of its sentence the
// delivered body is 935 + 34*(n-16) bytes.
func benchData(n int) []byte {
	return []byte(`{"conversation_id":123,"message_id":456,"content":"` + strings.Repeat("Hello, I need help with my order. ", n) +
		`","visitor_name":"John Doe","visitor_email":"john@example.com","visitor_phone":"+1234567890",` +
		`"visitor_ip":"192.168.1.100","current_url":"https://example.com/products","status":"open","created_at":"2025-01-15T10:31:00Z"}`)
}

// BenchmarkBuildBody validates and builds a message.received body of about 1 KiB, as every
// publish does.
func BenchmarkBuildBody(b *testing.B) { benchmarkBuildBody(b, EventType.BuildBody) }

// BenchmarkBuildBodyReference is BenchmarkBuildBody with encoding/json, as before jsonscan.go.
func BenchmarkBuildBodyReference(b *testing.B) { benchmarkBuildBody(b, buildBodyRef) }

func benchmarkBuildBody(b *testing.B, build func(EventType, json.RawMessage, time.Time) ([]byte, error)) {
	et, _ := LookupEventType(EventMessageReceived)
	at := time.Date(2025, 1, 15, 10, 31, 0, 0, time.UTC)
	data := benchData(16)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := build(et, data, at); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckDelivered checks a 1 KiB message.received body exactly as Hookrelay delivers
// it, as the inspector does for every capture.
func BenchmarkCheckDelivered(b *testing.B) { benchmarkCheckDelivered(b, CheckDelivered) }

// BenchmarkCheckDeliveredReference is BenchmarkCheckDelivered with encoding/json, as before
// jsonscan.go.
func BenchmarkCheckDeliveredReference(b *testing.B) { benchmarkCheckDelivered(b, checkDeliveredRef) }

func benchmarkCheckDelivered(b *testing.B, check func([]byte) (string, bool, []string)) {
	et, _ := LookupEventType(EventMessageReceived)
	body, err := et.BuildBody(benchData(19), time.Date(2025, 1, 15, 10, 31, 0, 0, time.UTC))
	if err != nil {
		b.Fatal(err)
	}
	if n := len(body); n < 1000 || n > 1100 {
		b.Fatalf("body is %d bytes; want about 1 KiB", n)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, known, problems := check(body); !known || problems != nil {
			b.Fatal(known, problems)
		}
	}
}
