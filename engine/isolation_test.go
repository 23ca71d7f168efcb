package engine_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testsrv"
)

func TestSlowWebhookDoesNotHoldUpOthers(t *testing.T) {
	const events, perWebhook = 30, 2
	release := make(chan struct{})
	slow := testsrv.NewReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		select { // a stuck endpoint: it answers only when the test lets it
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	})
	fast := testsrv.NewReceiver(t, nil)
	s := testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true, Timeout: 30 * time.Second,
		Workers: 8, PerWebhook: perWebhook})
	defer close(release) // before the server's cleanup, which waits for in-flight attempts
	for name, rc := range map[string]*testsrv.Receiver{"slow": slow, "fast": fast} {
		s.CreateWebhook(t, map[string]any{"name": name, "url": rc.URL, "events": []string{"conversation.started"}})
	}
	for range events {
		s.Publish(t, "conversation.started", conversation, "")
	}

	// Every event reaches the healthy endpoint while the stuck one holds its requests.
	fast.WaitFor(t, events, 20*time.Second)
	if got := len(slow.Captures()); got > perWebhook {
		t.Errorf("the stuck endpoint has %d requests in flight, more than its limit of %d", got, perWebhook)
	}
}
