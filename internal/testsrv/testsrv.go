// Package testsrv starts real Hookrelay servers for tests: in-process, through app.New as
// main.go starts it, on a random loopback port with a SQLite file in t.TempDir() (or a fresh
// PostgreSQL schema, see internal/storetest); or as the built binary, for crash and shutdown
// tests. Both are driven through the same Client, over real HTTP.
package testsrv

import (
	"context"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hookrelay/hookrelay/api"
	"github.com/hookrelay/hookrelay/app"
	"github.com/hookrelay/hookrelay/inspector"
	"github.com/hookrelay/hookrelay/internal/apivalidate"
	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/tracing"
)

// AdminToken is the bootstrap admin token of every test server.
const AdminToken = "hr_test_admin_token_0123456789abcdef"

// Options configures Start. The zero value is a server with the production guards on
// (no http://, no private targets), a 2 s delivery timeout and a 50ms,50ms retry schedule.
type Options struct {
	AllowHTTP    bool
	AllowPrivate bool
	Timeout      time.Duration
	// RetrySchedule nil means 50ms,50ms (three attempts in all); an empty, non-nil slice
	// means a single attempt.
	RetrySchedule []time.Duration
	Workers       int
	PerWebhook    int
	InspectorRate float64 // 0: unlimited
	// InspectorBusyRate as app.Config's: 0 is its default, negative never yields.
	InspectorBusyRate float64
	// RefusedHold and MaxHeld: app.Config's InspectorRefusedHold and InspectorMaxHeld.
	RefusedHold time.Duration
	MaxHeld     int
	// NoDispatch leaves published deliveries pending: nothing claims them.
	NoDispatch bool
	// DBPath reuses a database file (a restart); empty means a new database (storetest.DSN).
	DBPath string
	// PublicURL overrides the server's own URL as the public URL.
	PublicURL string
	// PublicHTTPS makes the public URL the server's own with https://, as behind a proxy that
	// terminates TLS (the server itself serves plain HTTP).
	PublicHTTPS bool
	UI          fs.FS
	Hub         inspector.HubConfig
	// ConnState is set on the HTTP server (to watch connections open and close).
	ConnState func(net.Conn, http.ConnState)
	// Logger receives the server's logs; nil is slog.Default (shown by go test on failure).
	Logger *slog.Logger
	// Extra registers more routes besides the inspector's and /metrics, which are always there
	// as in main.go.
	Extra []func(r *gin.Engine, authed *gin.RouterGroup)
	// SignInLimits bound failed sign-ins. Zero means limits so high that tests sending many
	// bad tokens on purpose (every route refuses a bad token) never meet them; the tests of
	// the limits set their own.
	SignInLimits api.SignInLimits
	// TrustedProxies as --trusted-proxies.
	TrustedProxies []string
	// AutoDisableAfter as --auto-disable-after; 0 never disables.
	AutoDisableAfter time.Duration
	// Tracer traces publishes and attempts, as --otlp-endpoint does; nil traces nothing.
	Tracer *tracing.Tracer
}

// Server is a running in-process Hookrelay.
type Server struct {
	*Client
	*app.App
	DBPath    string
	PublicURL string
}

// Start runs a server until the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.RetrySchedule == nil {
		o.RetrySchedule = []time.Duration{50 * time.Millisecond, 50 * time.Millisecond}
	}
	if o.Workers <= 0 {
		o.Workers = 16
	}
	if o.DBPath == "" {
		o.DBPath = storetest.DSN(t)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	base := "http://" + ln.Addr().String()
	if o.PublicURL == "" {
		o.PublicURL = base
		if o.PublicHTTPS {
			o.PublicURL = "https://" + ln.Addr().String()
		}
	}
	signInLimits := o.SignInLimits
	if signInLimits == (api.SignInLimits{}) {
		signInLimits = api.SignInLimits{AddressBurst: 1 << 30, SharedBurst: 1 << 30}
	}
	a, err := app.New(context.Background(), app.Config{
		DB: o.DBPath, PublicURL: o.PublicURL, AdminToken: AdminToken,
		AllowHTTP: o.AllowHTTP, AllowPrivate: o.AllowPrivate,
		DeliveryTimeout: o.Timeout, RetrySchedule: o.RetrySchedule, Workers: o.Workers, PerWebhook: o.PerWebhook,
		InspectorRate: o.InspectorRate, InspectorBusyRate: o.InspectorBusyRate,
		InspectorRefusedHold: o.RefusedHold, InspectorMaxHeld: o.MaxHeld, Version: "test", UI: o.UI, Logger: o.Logger,
		NoDispatch: o.NoDispatch, Tracer: o.Tracer, AutoDisableAfter: o.AutoDisableAfter, Hub: o.Hub, Routes: o.Extra, SignInLimits: signInLimits, TrustedProxies: o.TrustedProxies,
		// Counted afresh on every scrape, so tests see the queue gauges move.
		QueueStatsEvery: time.Nanosecond,
	})
	if err != nil {
		ln.Close()
		t.Fatalf("start hookrelay: %v", err)
	}
	a.Server.ConnState = o.ConnState
	s := &Server{Client: NewClient(base, AdminToken), App: a, DBPath: o.DBPath, PublicURL: o.PublicURL}
	// Every exchange is checked against openapi/openapi.json (see internal/apivalidate).
	s.Client.HTTP.Transport = apivalidate.Transport(t, s.Client.HTTP.Transport)
	a.Start(ln)
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// Stop shuts the server down as main.go does: stop serving, let in-flight deliveries finish
// and be recorded, close connections and the database. Safe to call twice.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.App.Shutdown(ctx); err != nil {
		t.Errorf("stop hookrelay: %v", err)
	}
	s.Client.HTTP.CloseIdleConnections()
}
