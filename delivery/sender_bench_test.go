package delivery_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/delivery"
	"github.com/hookrelay/hookrelay/models"
)

func benchRequest(url string) delivery.Request {
	return delivery.Request{
		Webhook:   &models.Webhook{ID: "wh_bench", URL: url, Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", Format: models.FormatJSON, Enabled: true},
		MessageID: "evt_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f", EventType: models.EventMessageReceived,
		Body: bytes.Repeat([]byte("x"), 1024), Attempt: 1,
	}
}

// BenchmarkSenderHeaders builds one attempt's headers: both signatures and the seed's.
func BenchmarkSenderHeaders(b *testing.B) {
	s := delivery.NewSender(delivery.SenderConfig{Timeout: 10 * time.Second, Version: "bench"})
	r := benchRequest("https://example.com/hook")
	at := time.Unix(1736937000, 0).UTC()
	b.ReportAllocs()
	for b.Loop() {
		s.Headers(r, at)
	}
}

// BenchmarkSenderSend makes one signed attempt of a 1 KiB body to a loopback receiver over a
// pooled keep-alive connection: the per-delivery cost of the HTTP side.
func BenchmarkSenderSend(b *testing.B) {
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	defer rc.Close()
	s := delivery.NewSender(delivery.SenderConfig{Timeout: 10 * time.Second, AllowPrivate: true, Version: "bench"})
	defer s.CloseIdleConnections()
	r := benchRequest(rc.URL + "/hook")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if resp := s.Send(ctx, r); !resp.OK() {
			b.Fatalf("attempt failed: %v %d", resp.Err, resp.Status)
		}
	}
}
