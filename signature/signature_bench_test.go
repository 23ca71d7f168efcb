package signature

import (
	"bytes"
	"testing"
	"time"
)

// A delivered body of about 1 KiB, the size the bench sends.
var benchBody = bytes.Repeat([]byte("x"), 1024)

const benchSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func BenchmarkHexHMAC(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		HexHMAC(benchSecret, benchBody)
	}
}

func BenchmarkStandard(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	ts := time.Unix(1736937000, 0)
	for b.Loop() {
		Standard(benchSecret, "evt_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f", ts, benchBody)
	}
}

// BenchmarkStandardWithKey decodes the key once and keys a new MAC per message.
func BenchmarkStandardWithKey(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	key := StandardKey(benchSecret)
	for b.Loop() {
		StandardWithKey(key, "evt_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f", 1736937000, benchBody)
	}
}

// BenchmarkStandardFor is the sender's path: the keyed MAC is kept per secret.
func BenchmarkStandardFor(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		StandardFor(benchSecret, "evt_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f", 1736937000, benchBody)
	}
}
