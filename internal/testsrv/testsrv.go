// Package testsrv starts real Hookrelay servers for tests: in-process, wired exactly as
// main.go wires them (models.Open → delivery.NewSender/New → api.New) on a random loopback
// port with a SQLite file in t.TempDir(); or as the built binary, for crash and shutdown tests.
// Both are driven through the same Client, over real HTTP.
package testsrv

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hookrelay/hookrelay/api"
	"github.com/hookrelay/hookrelay/delivery"
	"github.com/hookrelay/hookrelay/inspector"
	"github.com/hookrelay/hookrelay/internal/apivalidate"
	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/models"
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
	// DBPath reuses a database file (a restart); empty means a new file in t.TempDir().
	DBPath string
	// PublicURL overrides the server's own URL as the public URL.
	PublicURL string
	// Extra registers more routes besides the inspector's and /metrics, which are always there
	// as in main.go.
	Extra []func(r *gin.Engine, authed *gin.RouterGroup)
}

// Server is a running in-process Hookrelay.
type Server struct {
	*Client
	DBPath     string
	PublicURL  string
	Store      *models.Store
	Dispatcher *delivery.Dispatcher
	Sender     *delivery.Sender

	http     *http.Server
	stop     context.CancelFunc
	dispDone chan error
	stopped  bool
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
	}
	ctx := context.Background()
	store, err := models.Open(ctx, o.DBPath)
	if err != nil {
		ln.Close()
		t.Fatalf("open store: %v", err)
	}
	sender := delivery.NewSender(delivery.SenderConfig{Timeout: o.Timeout, AllowPrivate: o.AllowPrivate,
		PublicURL: o.PublicURL, Version: "test", MaxConns: o.Workers})
	// As in main.go; the queue gauges are counted afresh on every scrape so tests see them move.
	metrics := delivery.NewMetrics(delivery.MetricsConfig{Store: store, QueueInterval: time.Nanosecond, Sender: sender})
	disp := delivery.New(delivery.Config{Store: store, Sender: sender, Workers: o.Workers,
		PerWebhook: o.PerWebhook, RetrySchedule: o.RetrySchedule, Metrics: metrics})
	hub := inspector.NewHub(inspector.HubConfig{PublicURL: o.PublicURL})
	insp := inspector.New(inspector.Config{Store: store, Hub: hub, PublicURL: o.PublicURL, AllowPrivate: o.AllowPrivate,
		ForwardTimeout: o.Timeout})
	extra := append([]func(*gin.Engine, *gin.RouterGroup){
		api.InspectorRoutes(insp),
		func(r *gin.Engine, _ *gin.RouterGroup) { r.GET("/metrics", gin.WrapH(metrics.Handler())) },
	}, o.Extra...)
	router := api.New(api.Config{Store: store, Dispatcher: disp, AdminTokenHash: models.HashToken(AdminToken),
		PublicURL: o.PublicURL, AllowHTTP: o.AllowHTTP, AllowPrivate: o.AllowPrivate, Version: "test", Extra: extra,
		Metrics: metrics})

	s := &Server{
		Client:     NewClient(base, AdminToken),
		DBPath:     o.DBPath,
		PublicURL:  o.PublicURL,
		Store:      store,
		Dispatcher: disp,
		Sender:     sender,
		http:       &http.Server{Handler: router, ReadHeaderTimeout: 10 * time.Second},
		dispDone:   make(chan error, 1),
	}
	// Every exchange is checked against openapi/openapi.json (see internal/apivalidate).
	s.Client.HTTP.Transport = apivalidate.Transport(t, s.Client.HTTP.Transport)
	// Shutdown does not wait for hijacked connections: close the inspector's WebSockets.
	s.http.RegisterOnShutdown(hub.Close)
	dctx, stop := context.WithCancel(ctx)
	s.stop = stop
	go func() { s.dispDone <- disp.Run(dctx) }()
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// Stop shuts the server down as main.go does: stop serving, let in-flight deliveries finish
// and be recorded, close connections and the database. Safe to call twice.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if s.stopped {
		return
	}
	s.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.http.Shutdown(ctx); err != nil {
		t.Errorf("http shutdown: %v", err)
	}
	s.stop()
	select {
	case err := <-s.dispDone:
		if err != nil {
			t.Errorf("dispatcher: %v", err)
		}
	case <-ctx.Done():
		t.Errorf("dispatcher did not stop within 30s")
	}
	s.Sender.CloseIdleConnections()
	s.Client.HTTP.CloseIdleConnections()
	if err := s.Store.Close(); err != nil {
		t.Errorf("close store: %v", err)
	}
}
