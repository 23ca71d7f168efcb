package client_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hookrelay/hookrelay/app"
)

// adminToken is the bootstrap admin token of the servers these tests start.
const adminToken = "hr_client_example_admin_token_0123456789"

// startHookrelay runs a real Hookrelay, wired by app.New as main.go wires it, on a loopback port
// with a SQLite file in a new temporary directory. Example functions have no *testing.T, hence
// no t.TempDir: stop removes the directory. http:// and loopback targets are allowed, since the
// receivers are httptest servers.
func startHookrelay() (baseURL string, stop func(), err error) {
	dir, err := os.MkdirTemp("", "hookrelay-client-")
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, err
	}
	baseURL = "http://" + ln.Addr().String()
	a, err := app.New(context.Background(), app.Config{
		DB: filepath.Join(dir, "hookrelay.db"), PublicURL: baseURL, AdminToken: adminToken,
		AllowHTTP: true, AllowPrivate: true,
		DeliveryTimeout: 5 * time.Second, RetrySchedule: []time.Duration{100 * time.Millisecond},
		Version: "client-test",
		// The example's output is what it prints; the server's request log would be in it.
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		ln.Close()
		_ = os.RemoveAll(dir)
		return "", nil, err
	}
	a.Start(ln)
	return baseURL, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
		_ = os.RemoveAll(dir)
	}, nil
}
