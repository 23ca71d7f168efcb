package app_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/app"
)

// start runs an App on a loopback port until the test ends and returns its base URL.
func start(t *testing.T, cfg app.Config) (*app.App, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	cfg.PublicURL = base
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := app.New(context.Background(), cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	a.Start(ln)
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	return a, base
}

func status(t *testing.T, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func TestFirstStartGeneratesAnAdminTokenThatLaterStartsKeep(t *testing.T) {
	db := filepath.Join(t.TempDir(), "hookrelay.db")
	first, base := start(t, app.Config{DB: db})
	token := first.NewAdminToken
	if len(token) < 16 {
		t.Fatalf("first start generated token %q", token)
	}
	if got := status(t, base+"/api/v1/webhooks", token); got != http.StatusOK {
		t.Fatalf("generated token: status %d", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := first.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}

	second, base := start(t, app.Config{DB: db})
	if second.NewAdminToken != "" {
		t.Fatalf("second start generated another token")
	}
	if got := status(t, base+"/api/v1/webhooks", token); got != http.StatusOK {
		t.Fatalf("token of the first start after a restart: status %d", got)
	}
	if got := status(t, base+"/api/v1/webhooks", "not-the-token-0123456789"); got != http.StatusUnauthorized {
		t.Fatalf("wrong token: status %d", got)
	}
}

func TestEveryPartIsServed(t *testing.T) {
	_, base := start(t, app.Config{DB: filepath.Join(t.TempDir(), "hookrelay.db"), AdminToken: "app-test-token-0123456789"})
	for path, want := range map[string]int{
		"/healthz":            http.StatusOK,
		"/readyz":             http.StatusOK,
		"/metrics":            http.StatusOK,
		"/openapi.json":       http.StatusOK,
		"/inspect/unknownbin": http.StatusNotFound,
		"/api/v1/event-types": http.StatusOK,
	} {
		if got := status(t, base+path, "app-test-token-0123456789"); got != want {
			t.Errorf("GET %s: status %d, want %d", path, got, want)
		}
	}
}

func TestNewRefusesAMissingDatabaseOrPublicURL(t *testing.T) {
	if _, err := app.New(context.Background(), app.Config{PublicURL: "http://x"}); err == nil {
		t.Error("no DB: no error")
	}
	if _, err := app.New(context.Background(), app.Config{DB: filepath.Join(t.TempDir(), "x.db")}); err == nil {
		t.Error("no public URL: no error")
	}
}
