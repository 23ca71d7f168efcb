package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/api"
	"github.com/hookrelay/hookrelay/internal/testsrv"
	"github.com/hookrelay/hookrelay/internal/wait"
)

// busyServer is a whole server (internal/testsrv) with a bin, and a receiver that hangs
// until the test ends; deliver subscribes the receiver and publishes, and returns once the
// receiver holds the attempt, so that the dispatcher has a delivery in flight.
type busyServer struct {
	*testsrv.Server
	t       *testing.T
	binURL  string
	hangURL string
	reached chan struct{}
	release func() // lets the hanging receiver answer; safe to call twice
}

func startBusyServer(t *testing.T, o testsrv.Options) *busyServer {
	t.Helper()
	release := make(chan struct{})
	reached := make(chan struct{}, 1)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case reached <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	o.AllowHTTP, o.AllowPrivate, o.Timeout = true, true, time.Minute
	srv := testsrv.Start(t, o)
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // before the server's shutdown, which waits for the attempt
	var bin api.Bin
	srv.Do(t, http.MethodPost, "/api/v1/inspector/bins", map[string]any{"name": "flooded"}, http.StatusCreated, &bin)
	return &busyServer{Server: srv, t: t, binURL: bin.URL, hangURL: hang.URL, reached: reached, release: free}
}

func (s *busyServer) publish(i int) {
	s.Publish(s.t, "message.received", map[string]any{"message_id": i, "conversation_id": i, "content": "hi"}, "")
}

func (s *busyServer) deliver() {
	s.t.Helper()
	s.CreateWebhook(s.t, map[string]any{"name": "hangs", "url": s.hangURL, "events": []string{"message.received"}})
	s.publish(1)
	select {
	case <-s.reached:
	case <-time.After(wait.Timeout):
		s.t.Fatal("the hanging receiver never got its delivery")
	}
}

// capture posts one request to the bin and returns its status and body.
func (s *busyServer) capture(i int) (int, string, error) {
	res, err := http.Post(s.binURL, "application/json", strings.NewReader(fmt.Sprintf(`{"n":%d}`, i)))
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body), nil
}

// While a delivery is in flight, captures from other senders wait their turn: the bins
// together take the busy rate (2 a second here), and a request that would wait over a second
// gets a 429 naming why. This server's own deliveries to its own bin are not held back, and
// with nothing in flight a bin takes whatever arrives.
func TestCapturesYieldToDeliveriesInFlightButNotToThemselves(t *testing.T) {
	s := startBusyServer(t, testsrv.Options{InspectorRate: 0, InspectorBusyRate: 2, RefusedHold: -1})
	var settings api.Settings
	s.Do(t, http.MethodGet, "/api/v1/settings", nil, http.StatusOK, &settings)
	if settings.InspectorBusyRate != 2 {
		t.Errorf("settings: inspector_busy_rate %v, want 2", settings.InspectorBusyRate)
	}

	// flood posts n captures at once and counts the answers by status; it returns a 429's body.
	flood := func(n int) (map[int]int, string) {
		var mu sync.Mutex
		statuses, refused := map[int]int{}, ""
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				status, body, err := s.capture(i)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				statuses[status]++
				if status == http.StatusTooManyRequests {
					refused = body
				}
			})
		}
		wg.Wait()
		return statuses, refused
	}

	if got, _ := flood(20); got[http.StatusOK] != 20 {
		t.Fatalf("with nothing in flight: %v, want 20 × 200", got)
	}
	s.deliver()
	got, refused := flood(20)
	if got[http.StatusTooManyRequests] == 0 || got[http.StatusOK] >= 20 {
		t.Errorf("with a delivery in flight: %v, want some 429s", got)
	}
	if !strings.Contains(refused, "webhooks are being delivered") || !strings.Contains(refused, "at most 2 requests per second") {
		t.Errorf("the 429's problem: %s", refused)
	}

	// Its own deliveries to the bin, while the first still hangs: none is held back, so each
	// succeeds at its first attempt (a 429 would be retried, seconds later).
	self := s.CreateWebhook(t, map[string]any{"name": "self", "url": s.binURL, "events": []string{"message.received"}})
	const own = 12
	for i := range own {
		s.publish(100 + i)
	}
	var last api.List[api.Delivery]
	if !wait.For(func() bool {
		s.Do(t, http.MethodGet, "/api/v1/deliveries?webhook_id="+self.ID, nil, http.StatusOK, &last)
		return len(last.Data) == own && !slices.ContainsFunc(last.Data, func(d api.Delivery) bool { return d.Status != "succeeded" })
	}) {
		t.Fatalf("the own deliveries did not all succeed: %+v", last.Data)
	}
	for _, d := range last.Data {
		if d.AttemptCount != 1 {
			t.Errorf("own delivery %s took %d attempts, want 1", d.ID, d.AttemptCount)
		}
	}
}

// A capture refused its turn is held for its Retry-After, as one past the bin's own limit is,
// and a shutdown answers it at once with its 429 rather than after the hold.
func TestACaptureRefusedItsTurnIsHeldAndAnsweredAtShutdown(t *testing.T) {
	// One turn every 10 s: the second capture would wait longer than a second, so it is refused.
	s := startBusyServer(t, testsrv.Options{InspectorRate: 0, InspectorBusyRate: 0.1, RefusedHold: time.Hour})
	s.deliver()
	if status, body, err := s.capture(1); err != nil || status != http.StatusOK {
		t.Fatalf("the turn's one capture: %d %s %v", status, body, err)
	}
	type answer struct {
		status int
		body   string
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		status, body, err := s.capture(2)
		answered <- answer{status, body, err}
	}()
	wait.Until(t, "the refused capture held", func() bool { return s.Inspector.Held() == 1 })
	select {
	case a := <-answered:
		t.Fatalf("answered (%d) while it should be held", a.status)
	default:
	}
	shutdown := make(chan error, 1)
	go func() { shutdown <- s.Shutdown(context.Background()) }()
	select {
	case a := <-answered:
		if a.err != nil || a.status != http.StatusTooManyRequests || !strings.Contains(a.body, "webhooks are being delivered") {
			t.Errorf("the held capture at shutdown: %d %s %v, want the 429 naming deliveries", a.status, a.body, a.err)
		}
	case <-time.After(wait.Timeout):
		t.Fatal("the held capture was not answered at shutdown")
	}
	s.release() // the shutdown drains the hanging attempt
	if err := <-shutdown; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}
