package api_test

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/api"
)

// from returns a client whose connections come from the given loopback address, so one test
// can play several client addresses over real sockets (all of 127.0.0.0/8 is loopback).
func from(t *testing.T, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// signIn sends a login (token at /api/v1/session) or, with bearer, an authenticated read,
// and returns the status and Retry-After.
func signIn(t *testing.T, e *env, c *http.Client, token string, bearer bool, header ...string) (int, string) {
	t.Helper()
	var r *http.Request
	if bearer {
		r, _ = http.NewRequest(http.MethodGet, e.srv.BaseURL+"/api/v1/webhooks", nil)
		r.Header.Set("Authorization", "Bearer "+token)
	} else {
		r, _ = http.NewRequest(http.MethodPost, e.srv.BaseURL+"/api/v1/session", strings.NewReader(`{"token":"`+token+`"}`))
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	res, err := c.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode, res.Header.Get("Retry-After")
}

// Refill is one try per 100 minutes: nothing comes back while the test runs, however slow
// the machine.
const slowRefill = 0.01

func TestFailedSignInsFromOneAddressAreLimitedWithoutLockingOthersOut(t *testing.T) {
	e := newEnv(t, withoutDispatcher(), withSignInLimits(api.SignInLimits{AddressBurst: 5, PerAddressPerMinute: slowRefill,
		SharedBurst: 1000, SharedPerMinute: slowRefill}))
	attacker, admin := from(t, "127.0.0.2"), from(t, "127.0.0.3")

	for i := range 5 {
		if st, _ := signIn(t, e, attacker, "guess-"+strconv.Itoa(i), i%2 == 0); st != http.StatusUnauthorized {
			t.Fatalf("guess %d: status %d, want 401", i, st)
		}
	}
	// Out of tries: refused before any check, so the right token gets the same answer, and a
	// forwarded-for header from an untrusted client changes nothing.
	for _, c := range []struct {
		name   string
		token  string
		bearer bool
		header []string
	}{
		{"another guess at login", "guess-6", false, nil},
		{"the admin token at login", adminToken, false, nil},
		{"the admin token as bearer", adminToken, true, nil},
		{"a spoofed X-Forwarded-For", "guess-7", false, []string{"X-Forwarded-For", "203.0.113.9"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, after := signIn(t, e, attacker, c.token, c.bearer, c.header...)
			secs, err := strconv.Atoi(after)
			if st != http.StatusTooManyRequests || err != nil || secs < 1 {
				t.Errorf("status %d, Retry-After %q; want 429 with a positive Retry-After", st, after)
			}
		})
	}
	// Another address is not affected.
	if st, _ := signIn(t, e, admin, adminToken, false); st != http.StatusNoContent {
		t.Errorf("admin login from another address: %d, want 204", st)
	}
	if st, _ := signIn(t, e, admin, adminToken, true); st != http.StatusOK {
		t.Errorf("admin bearer from another address: %d, want 200", st)
	}
}

func TestGuessingFromManyAddressesSparesAnAddressThatSignedInBefore(t *testing.T) {
	e := newEnv(t, withoutDispatcher(), withSignInLimits(api.SignInLimits{AddressBurst: 5, PerAddressPerMinute: slowRefill,
		SharedBurst: 20, SharedPerMinute: slowRefill}))
	admin := from(t, "127.0.0.9")
	if st, _ := signIn(t, e, admin, adminToken, true); st != http.StatusOK {
		t.Fatalf("admin before the attack: %d", st)
	}
	limited := 0
	for a := range 6 {
		c := from(t, "127.0.1."+strconv.Itoa(a+1))
		for i := range 5 {
			if st, _ := signIn(t, e, c, "guess", i%2 == 0); st == http.StatusTooManyRequests {
				limited++
			}
		}
	}
	if limited != 10 {
		t.Errorf("%d of 30 spread guesses refused, want the 10 beyond the 20 shared tries", limited)
	}
	// A newcomer waits with the attackers; the admin who signed in from here before does not.
	if st, after := signIn(t, e, from(t, "127.0.2.1"), adminToken, false); st != http.StatusTooManyRequests || after == "" {
		t.Errorf("new address while the shared tries are spent: %d (Retry-After %q), want 429", st, after)
	}
	if st, _ := signIn(t, e, admin, adminToken, true); st != http.StatusOK {
		t.Errorf("known admin address during the attack: %d, want 200", st)
	}
	if st, _ := signIn(t, e, admin, adminToken, false); st != http.StatusNoContent {
		t.Errorf("known admin address logging in during the attack: %d, want 204", st)
	}
}

func TestTrustedProxyNamesTheClient(t *testing.T) {
	e := newEnv(t, withoutDispatcher(), withSignInLimits(api.SignInLimits{AddressBurst: 2, PerAddressPerMinute: slowRefill,
		SharedBurst: 1000, SharedPerMinute: slowRefill}, "127.0.0.0/8"))
	proxy := from(t, "127.0.0.5")
	for range 2 {
		signIn(t, e, proxy, "guess", false, "X-Forwarded-For", "203.0.113.7")
	}
	if st, _ := signIn(t, e, proxy, adminToken, false, "X-Forwarded-For", "203.0.113.7"); st != http.StatusTooManyRequests {
		t.Errorf("the guessing client behind the proxy: %d, want 429", st)
	}
	if st, _ := signIn(t, e, proxy, adminToken, false, "X-Forwarded-For", "203.0.113.8"); st != http.StatusNoContent {
		t.Errorf("another client behind the same proxy: %d, want 204", st)
	}
}
