package delivery_test

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/api"
	"github.com/hookrelay/hookrelay/delivery"
	"github.com/hookrelay/hookrelay/internal/testsrv"
	"github.com/hookrelay/hookrelay/models"
)

// createHookInStore adds a webhook straight to the store, bypassing the API's create-time URL
// rules, so the connect-time guard is what stands between the sender and the target.
func createHookInStore(t *testing.T, s *testsrv.Server, name, url string) *models.Webhook {
	t.Helper()
	w := &models.Webhook{Name: name, URL: url, Events: "conversation.started", Enabled: true}
	if err := s.Store.CreateWebhook(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	return w
}

// deliveriesByHook publishes one event and waits until every delivery of it has finished.
func deliveriesByHook(t *testing.T, s *testsrv.Server, want int) map[string]api.Delivery {
	t.Helper()
	p := s.Publish(t, "conversation.started", conversation, "")
	if p.Deliveries != want {
		t.Fatalf("event fanned out to %d deliveries, want %d", p.Deliveries, want)
	}
	out := map[string]api.Delivery{}
	for _, d := range s.Event(t, p.ID).Deliveries {
		out[d.WebhookID] = s.WaitDelivery(t, d.ID, 15*time.Second, testsrv.Finished)
	}
	return out
}

func TestGuardRefusesInternalTargetsAtConnectTime(t *testing.T) {
	rc := testsrv.NewReceiver(t, nil)
	port := rc.Listener.Addr().(interface{ AddrPort() netip.AddrPort }).AddrPort().Port()
	p := ":" + strconv.Itoa(int(port))
	s := testsrv.Start(t, testsrv.Options{AllowHTTP: true, RetrySchedule: []time.Duration{}})

	// None of these is ever connected to: the guard refuses in the dialer's Control hook,
	// after resolution and before the connect system call.
	targets := map[string]string{
		"loopback":            "http://127.0.0.1" + p + "/hook",
		"loopback IPv6":       "http://[::1]" + p + "/hook",
		"IPv4-mapped IPv6":    "http://[::ffff:127.0.0.1]" + p + "/hook",
		"unspecified":         "http://0.0.0.0" + p + "/hook",
		"private":             "http://10.255.255.1/hook",
		"link-local metadata": "http://169.254.169.254/latest/meta-data/",
		"name for loopback":   "http://localhost" + p + "/hook",
	}
	hooks := map[string]string{}
	for name, url := range targets {
		hooks[createHookInStore(t, s, name, url).ID] = name
	}
	for hookID, d := range deliveriesByHook(t, s, len(targets)) {
		name := hooks[hookID]
		if d.Status != "failed" || len(d.Attempts) != 1 {
			t.Errorf("%s: delivery %s with %d attempts, want failed after 1", name, d.Status, len(d.Attempts))
			continue
		}
		a := d.Attempts[0]
		if a.Error == nil || !strings.Contains(*a.Error, "blocked by SSRF guard") || a.ResponseStatus != nil {
			t.Errorf("%s (%s): attempt error %v, status %v; want blocked by SSRF guard", name, targets[name], a.Error, a.ResponseStatus)
			continue
		}
		// What a name resolves to inside the network is not the API user's to learn.
		for _, leak := range []string{"127.0.0.1", "::1", "10.255.255.1", "169.254", "loopback", "private address", "link-local"} {
			if strings.Contains(*a.Error, leak) {
				t.Errorf("%s: attempt error %q tells the API user %q", name, *a.Error, leak)
			}
		}
	}
	if got := len(rc.Captures()); got != 0 {
		t.Errorf("the loopback receiver got %d requests through the guard", got)
	}
}

func TestAllowPrivateTargetsLetsLoopbackThrough(t *testing.T) {
	rc := testsrv.NewReceiver(t, nil)
	port := rc.Listener.Addr().(interface{ AddrPort() netip.AddrPort }).AddrPort().Port()
	s := testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true, RetrySchedule: []time.Duration{}})
	createHookInStore(t, s, "loopback", "http://127.0.0.1:"+strconv.Itoa(int(port))+"/a")
	createHookInStore(t, s, "name for loopback", "http://localhost:"+strconv.Itoa(int(port))+"/b")
	for _, d := range deliveriesByHook(t, s, 2) {
		if d.Status != "succeeded" {
			t.Errorf("delivery to webhook %s = %s (%v), want succeeded with --allow-private-targets", d.WebhookID, d.Status, attemptErrors(d))
		}
	}
	if got := len(rc.Captures()); got != 2 {
		t.Errorf("receiver got %d requests, want 2", got)
	}
}

func TestOwnInspectorURLNeedsNeitherFlag(t *testing.T) {
	// The public URL is http://127.0.0.1:<port>: plain http and loopback, both refused for
	// any other target, yet the sender and the built-in receiver work together.
	s := testsrv.Start(t, testsrv.Options{RetrySchedule: []time.Duration{}})
	var bin struct {
		ID  string `json:"id"`
		URL string `json:"url"`
	}
	s.Do(t, http.MethodPost, "/api/v1/inspector/bins", map[string]any{}, http.StatusCreated, &bin)
	if !strings.HasPrefix(bin.URL, s.PublicURL+"/inspect/") {
		t.Fatalf("bin URL %q is not under %s/inspect/", bin.URL, s.PublicURL)
	}
	own := s.CreateWebhook(t, map[string]any{"name": "own inspector", "url": bin.URL, "events": []string{"conversation.started"}})
	s.Do(t, http.MethodPost, "/api/v1/webhooks", map[string]any{"name": "own API", "url": s.PublicURL + "/api/v1/events",
		"events": []string{"conversation.started"}}, http.StatusUnprocessableEntity, nil)
	// The exception is for /inspect/ only: the same host elsewhere stays blocked at connect time.
	ownAPI := createHookInStore(t, s, "own API", s.PublicURL+"/api/v1/events")

	ds := deliveriesByHook(t, s, 2)
	if d := ds[own.ID]; d.Status != "succeeded" {
		t.Errorf("delivery to the own inspector = %s (%v), want succeeded", d.Status, attemptErrors(d))
	}
	var captures struct {
		Data []json.RawMessage `json:"data"`
	}
	s.Do(t, http.MethodGet, "/api/v1/inspector/bins/"+bin.ID+"/requests", nil, http.StatusOK, &captures)
	if len(captures.Data) != 1 {
		t.Errorf("the bin captured %d requests, want 1", len(captures.Data))
	}
	if d := ds[ownAPI.ID]; d.Status != "failed" || !strings.Contains(attemptErrors(d)[0], "blocked by SSRF guard") {
		t.Errorf("delivery to the own API = %s (%v), want blocked by the SSRF guard", d.Status, attemptErrors(d))
	}
}

func TestOwnInspectorURL(t *testing.T) {
	const pub = "http://localhost:8080"
	cases := []struct {
		public, target string
		want           bool
	}{
		{pub, "http://localhost:8080/inspect/abc", true},
		{pub, "http://localhost:8080/inspect/abc/deeper/path?x=1", true},
		{pub, "http://LOCALHOST:8080/inspect/abc", true},
		{pub + "/", "http://localhost:8080/inspect/abc", true},
		{"http://localhost", "http://localhost:80/inspect/abc", true},
		{"https://hooks.example.com", "https://hooks.example.com:443/inspect/abc", true},
		{"https://example.com/hookrelay", "https://example.com/hookrelay/inspect/abc", true},
		{"https://example.com/hook%20relay", "https://example.com/hook%20relay/inspect/abc", true},

		{pub, "http://localhost:8080/inspect/", false},
		{pub, "http://localhost:8080/inspect", false},
		{pub, "http://localhost:8080/inspector/abc", false},
		{pub, "http://localhost:8080/inspectx/abc", false},
		{pub, "http://localhost:8080/api/v1/webhooks", false},
		{pub, "http://localhost:8080/inspect/../api/v1/webhooks", false},
		{pub, "http://localhost:8080/inspect/abc/../../api/v1/webhooks", false},
		{pub, "http://localhost:8080/inspect/%2e%2e/api/v1/webhooks", false},
		{pub, "http://localhost:8080/inspect/abc/%2E%2E/%2e%2e/api", false},
		{pub, "http://localhost:8080/inspect%2f..%2fapi", false},
		{pub, "http://localhost:8080/api/inspect/abc", false},
		{pub, "http://localhost:8081/inspect/abc", false},
		{pub, "https://localhost:8080/inspect/abc", false},
		{pub, "http://127.0.0.1:8080/inspect/abc", false},
		{pub, "http://localhost.evil.example:8080/inspect/abc", false},
		{pub, "http://user:pass@localhost:8080/inspect/abc", false},
		{pub, "http://evil.example/inspect/abc#http://localhost:8080/inspect/abc", false},
		{"https://example.com/hookrelay", "https://example.com/inspect/abc", false},
		{"", "http://localhost:8080/inspect/abc", false},
		{pub, "::not a url", false},
	}
	for _, c := range cases {
		t.Run(c.target, func(t *testing.T) {
			if got := delivery.OwnInspectorURL(c.public, c.target); got != c.want {
				t.Errorf("OwnInspectorURL(%q, %q) = %v, want %v", c.public, c.target, got, c.want)
			}
		})
	}
}

func TestBlockReason(t *testing.T) {
	cases := map[string]string{
		"127.0.0.1":        "loopback",
		"127.1.2.3":        "loopback",
		"::1":              "loopback",
		"::ffff:127.0.0.1": "loopback",
		"10.0.0.1":         "private",
		"172.16.5.4":       "private",
		"192.168.1.100":    "private",
		"fd00::1":          "private",
		"169.254.169.254":  "link-local",
		"fe80::1":          "link-local",
		"224.0.0.1":        "multicast",
		"ff02::1":          "multicast",
		"0.0.0.0":          "unspecified",
		"::":               "unspecified",
		"100.64.0.1":       "carrier-grade NAT",
		"255.255.255.255":  "broadcast",
		"64:ff9b::7f00:1":  "NAT64",
		"64:ff9b:1::a00:1": "local-use NAT64",
		"2002:a00:1::1":    "6to4",
		"fec0::1":          "site-local",
		"::a00:1":          "IPv4-compatible",
		"::7f00:1":         "IPv4-compatible",
		"93.184.216.34":    "",
		"2606:4700::1111":  "",
		"1.1.1.1":          "",
	}
	for ip, want := range cases {
		if got := delivery.BlockReason(netip.MustParseAddr(ip)); got != want {
			t.Errorf("BlockReason(%s) = %q, want %q", ip, got, want)
		}
	}
}
