package main

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/engine"
	"github.com/hookrelay/hookrelay/internal/testsrv"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfigDefaultsFollowTheSpec(t *testing.T) {
	c, err := parseConfig(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.addr != ":8080" || c.db != "hookrelay.db" || c.publicURL != "http://localhost:8080" || c.timeout != 10*time.Second ||
		c.retention != 720*time.Hour || c.inspectorRate != 50 || c.inspectorBusyRate != 200 || c.logFormat != "text" || c.allowHTTP || c.allowPrivate ||
		c.adminToken != "" || c.workers != engine.DefaultWorkers() || c.otlpEndpoint != "" {
		t.Fatalf("defaults: %+v", c)
	}
	want := []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour}
	if len(c.schedule) != len(want) {
		t.Fatalf("schedule %v", c.schedule)
	}
	for i := range want {
		if c.schedule[i] != want[i] {
			t.Fatalf("schedule %v, want %v", c.schedule, want)
		}
	}
}

func TestEnvironmentConfiguresAndFlagsWin(t *testing.T) {
	c, err := parseConfig([]string{"--addr", "127.0.0.1:9000"}, env(map[string]string{
		"HOOKRELAY_ADDR": "127.0.0.1:7000", "HOOKRELAY_DB": "/tmp/x.db", "HOOKRELAY_ALLOW_HTTP": "true",
		"HOOKRELAY_ALLOW_PRIVATE_TARGETS": "1", "HOOKRELAY_DELIVERY_TIMEOUT": "3s", "HOOKRELAY_RETRY_SCHEDULE": "1s,2s",
		"HOOKRELAY_WORKERS": "7", "HOOKRELAY_INSPECTOR_RATE": "0", "HOOKRELAY_INSPECTOR_BUSY_RATE": "0", "HOOKRELAY_LOG_FORMAT": "json",
		"HOOKRELAY_PUBLIC_URL": "https://hooks.example.com/", "HOOKRELAY_ADMIN_TOKEN": "0123456789abcdef",
		"HOOKRELAY_OTLP_ENDPOINT": "http://collector:4318",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.addr != "127.0.0.1:9000" {
		t.Errorf("flag did not win: addr %s", c.addr)
	}
	if c.db != "/tmp/x.db" || !c.allowHTTP || !c.allowPrivate || c.timeout != 3*time.Second || len(c.schedule) != 2 ||
		c.workers != 7 || c.inspectorRate != 0 || c.inspectorBusyRate != 0 || c.logFormat != "json" || c.publicURL != "https://hooks.example.com" ||
		c.adminToken != "0123456789abcdef" || c.otlpEndpoint != "http://collector:4318" {
		t.Errorf("environment not applied: %+v", c)
	}
}

func TestBadConfigurationNamesTheFlagOrVariable(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--delivery-timeout", "soon"}, nil, "--delivery-timeout"},
		{[]string{"--delivery-timeout", "0s"}, nil, "--delivery-timeout"},
		{[]string{"--retry-schedule", "10s,later"}, nil, "--retry-schedule"},
		{[]string{"--retention", "-1h"}, nil, "--retention"},
		{[]string{"--workers", "0"}, nil, "--workers"},
		{[]string{"--workers", "many"}, nil, "workers"},
		{[]string{"--public-url", "ftp://example.com"}, nil, "--public-url"},
		{[]string{"--log-format", "xml"}, nil, "--log-format"},
		{[]string{"--admin-token", "short"}, nil, "--admin-token"},
		{[]string{"--addr", "8080"}, nil, "--addr"},
		{[]string{"--inspector-rate", "-1"}, nil, "--inspector-rate"},
		{[]string{"--inspector-busy-rate", "-1"}, nil, "--inspector-busy-rate"},
		{[]string{"--inspector-busy-rate", "fast"}, nil, "--inspector-busy-rate"},
		{[]string{"--claim-lease", "5s", "--delivery-timeout", "10s"}, nil, "--claim-lease"},
		{[]string{"--nope"}, nil, "nope"},
		{[]string{"--trusted-proxies", "10.0.0.0/8,proxy.internal"}, nil, "--trusted-proxies"},
		{[]string{"--otlp-endpoint", "localhost:4318"}, nil, "--otlp-endpoint"},
		{nil, map[string]string{"HOOKRELAY_OTLP_ENDPOINT": "grpc://collector"}, "--otlp-endpoint"},
		{[]string{"extra"}, nil, "extra"},
		{nil, map[string]string{"HOOKRELAY_WORKERS": "lots"}, "HOOKRELAY_WORKERS"},
		{nil, map[string]string{"HOOKRELAY_ALLOW_HTTP": "maybe"}, "HOOKRELAY_ALLOW_HTTP"},
		{nil, map[string]string{"HOOKRELAY_DELIVERY_TIMEOUT": "later"}, "--delivery-timeout"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.args, tc.env), func(t *testing.T) {
			_, err := parseConfig(tc.args, env(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("args %v env %v: error %v, want one naming %s", tc.args, tc.env, err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("args %v: error spans lines: %q", tc.args, err)
			}
		})
	}
}

func TestBinaryRefusesBadConfigurationWithOneLineAndStatus2(t *testing.T) {
	bin := testsrv.BuildBinary(t)
	cmd := exec.Command(bin, "--delivery-timeout", "soon", "--db", filepath.Join(t.TempDir(), "x.db"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("exit: %v, want status 2", err)
	}
	out := strings.TrimSpace(stderr.String())
	if strings.Count(out, "\n") != 0 || !strings.Contains(out, "--delivery-timeout") {
		t.Fatalf("stderr %q: want one line naming --delivery-timeout", out)
	}
}

// The admin token is generated once, printed once, stored hashed, and keeps working after a
// restart on the same database.
func TestGeneratedAdminTokenIsPrintedOnceAndSurvivesRestart(t *testing.T) {
	bin := testsrv.BuildBinary(t)
	db := filepath.Join(t.TempDir(), "token.db")

	_, token, stop := startForBanner(t, bin, db)
	stop()
	if !strings.HasPrefix(token, "hr_") {
		t.Fatal("first start printed no admin token")
	}
	addr, again, stop := startForBanner(t, bin, db)
	defer stop()
	if again != "" {
		t.Fatal("second start printed the admin token again")
	}
	for tok, want := range map[string]int{token: http.StatusOK, token + "x": http.StatusUnauthorized} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/api/v1/webhooks", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("token after restart: status %d, want %d", resp.StatusCode, want)
		}
	}
}

// startForBanner starts the binary without --admin-token and reads its banner: the address
// and the admin token, if one was printed.
func startForBanner(t *testing.T, bin, db string) (addr, token string, stop func()) {
	t.Helper()
	cmd := exec.Command(bin, "--addr", "127.0.0.1:0", "--db", db)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop = func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	addrRE := regexp.MustCompile(`listening on (\S+)`)
	tokenRE := regexp.MustCompile(`Admin token \(shown once, store it now\): (\S+)`)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		// The banner is one write: once the address is there, so is the token line, if any.
		if m := addrRE.FindStringSubmatch(out.String()); m != nil {
			if tm := tokenRE.FindStringSubmatch(out.String()); tm != nil {
				token = tm[1]
			}
			return m[1], token, stop
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	t.Fatalf("no banner within 30s:\n%s", out.String())
	return "", "", nil
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A second Hookrelay on the same SQLite file would free the first one's leases and send its
// deliveries again: it is refused at start with one line, and the first keeps running.
func TestASecondProcessOnTheSameSQLiteFileIsRefused(t *testing.T) {
	bin := testsrv.BuildBinary(t)
	db := filepath.Join(t.TempDir(), "hookrelay.db")
	first := testsrv.StartBinary(t, bin, "--db", db)
	cmd := exec.Command(bin, "--addr", "127.0.0.1:0", "--db", db, "--admin-token", testsrv.AdminToken)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	done := make(chan error, 1)
	go func() { done <- cmd.Run() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("second process: %v, want exit status 1", err)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("a second process on the same file kept running")
	}
	out := strings.TrimSpace(stderr.String())
	if !strings.Contains(out, "in use by another Hookrelay process") || strings.Count(out, "\n") != 0 {
		t.Errorf("stderr %q: want one line saying the file is in use", out)
	}
	if !first.Running() {
		t.Fatal("the first process stopped")
	}
	first.Client.Do(t, http.MethodGet, "/api/v1/webhooks", nil, http.StatusOK, nil)
}

func TestHelpListsEveryFlagWithItsDefaultAndMeaning(t *testing.T) {
	for _, arg := range []string{"--help", "-h"} {
		_, err := parseConfig([]string{arg}, env(nil))
		var help *helpRequested
		if !errors.As(err, &help) {
			t.Fatalf("%s: err %v, want the usage", arg, err)
		}
		for _, want := range []string{
			"--addr string\n      listen address, host:port (default \":8080\")",
			"--delivery-timeout duration\n      time limit of one delivery attempt, from connecting to the last byte read (default 10s)",
			"--retry-schedule durations\n", `(default "10s,1m,5m,30m,2h,6h,12h,24h")`,
			"--allow-http bool\n      accept http:// webhook URLs (default false)",
			"--claim-lease duration\n", "(default 2 × --delivery-timeout + 30s)",
			"env HOOKRELAY_MAX_CONNECTIONS_PER_ADDRESS",
			"--inspector-busy-rate number\n", "(default 200)\n      env HOOKRELAY_INSPECTOR_BUSY_RATE",
			"--otlp-endpoint string\n      OTLP/HTTP collector to export traces to", "(default none: tracing off)\n      env HOOKRELAY_OTLP_ENDPOINT",
			"  hookrelay listen --forward-to URL ", "  hookrelay trigger EVENT ", "  hookrelay verify --secret S FILE ",
		} {
			if !strings.Contains(help.usage, want) {
				t.Errorf("%s: usage lacks %q:\n%s", arg, want, help.usage)
			}
		}
		// Every flag, each with a meaning and a default.
		n := 0
		for _, block := range strings.Split(help.usage, "\n  --")[1:] {
			n++
			lines := strings.Split(block, "\n")
			if len(lines) < 3 || !strings.Contains(lines[1], "(default ") || !strings.HasPrefix(strings.TrimSpace(lines[2]), "env HOOKRELAY_") {
				t.Errorf("%s: flag block without meaning, default or variable: %q", arg, block)
			}
		}
		if n != 20 {
			t.Errorf("%s: %d flags listed, want 20:\n%s", arg, n, help.usage)
		}
	}
}

func TestBinaryHelpPrintsTheFlagsAndExits0(t *testing.T) {
	bin := testsrv.BuildBinary(t)
	for _, arg := range []string{"--help", "-h"} {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, arg)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v (stderr %q)", arg, err, stderr.String())
		}
		if !strings.HasPrefix(stdout.String(), "Usage: hookrelay [flags]") || !strings.Contains(stdout.String(), "--inspector-rate number\n") ||
			!strings.Contains(stdout.String(), "--trusted-proxies list\n") || stderr.Len() != 0 {
			t.Errorf("%s: stdout %q, stderr %q", arg, stdout.String(), stderr.String())
		}
	}
}

// `make deps` installs Debian's Node.js and npm when they are missing (as `make browser` installs
// Chromium), and leaves a machine that has them alone. apt-get is a stub that records its calls.
func TestMakeDepsInstallsNodeOnlyWhenMissing(t *testing.T) {
	makeBin, err := exec.LookPath("make")
	if err != nil {
		t.Fatalf("make is needed to check the Makefile: %v", err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	stubs := t.TempDir()
	calls := filepath.Join(t.TempDir(), "apt-get.log")
	writeStub := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(stubs, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeStub("apt-get", `echo "$@" >> `+calls)
	run := func() string {
		t.Helper()
		cmd := exec.Command(makeBin, "--no-print-directory", "node", "GO="+goBin)
		cmd.Dir = testsrv.RepoRoot(t)
		cmd.Env = append(os.Environ(), "PATH="+stubs) // no node, no npm: only the stubs
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make node: %v\n%s", err, out)
		}
		log, _ := os.ReadFile(calls)
		return string(log)
	}
	if got := run(); !strings.Contains(got, "update -qq\n") || !strings.Contains(got, "install -y -qq nodejs npm\n") {
		t.Fatalf("without node, apt-get was called with:\n%s", got)
	}
	os.Remove(calls)
	writeStub("node", "exit 0")
	writeStub("npm", "exit 0")
	if got := run(); got != "" {
		t.Fatalf("with node and npm present, apt-get was called with:\n%s", got)
	}
}

// --otlp-endpoint makes the binary export its spans over OTLP/HTTP: an event published to a
// webhook that asks for trace context reaches the receiver with a traceparent, and by the end
// of a clean shutdown the collector holds every span of that trace.
func TestOTLPEndpointExportsTheBinarysTraces(t *testing.T) {
	collector := testsrv.NewCollector(t, http.StatusOK)
	rc := testsrv.NewReceiver(t, nil)
	bin := testsrv.BuildBinary(t)
	p := testsrv.StartBinary(t, bin, "--db", filepath.Join(t.TempDir(), "hookrelay.db"), "--allow-http",
		"--allow-private-targets", "--otlp-endpoint", collector.URL)
	p.CreateWebhook(t, map[string]any{"name": "traced", "url": rc.URL, "events": []string{"conversation.started"},
		"trace_context": true})
	pub := p.Publish(t, "conversation.started", map[string]any{"conversation_id": 1, "visitor_name": "Ann"}, "")
	p.WaitDelivery(t, p.EventDelivery(t, pub.ID).ID, 30*time.Second, testsrv.Finished)
	caps := rc.Captures()
	if len(caps) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(caps))
	}
	m := regexp.MustCompile(`^00-([0-9a-f]{32})-[0-9a-f]{16}-01$`).FindStringSubmatch(caps[0].Header.Get("traceparent"))
	if m == nil {
		t.Fatalf("traceparent %q is not a sampled W3C traceparent", caps[0].Header.Get("traceparent"))
	}
	traceID, _ := hex.DecodeString(m[1])
	p.Terminate(t, 30*time.Second)

	exports, spans := collector.Exports(), collector.Spans()
	if len(exports) == 0 || exports[0] != "POST /v1/traces application/x-protobuf" {
		t.Fatalf("collector got %v, want POST /v1/traces of protobuf", exports)
	}
	if !bytes.Contains(spans, traceID) {
		t.Errorf("the exported spans lack the receiver's trace %s", m[1])
	}
	for _, name := range []string{"publish", "enqueue", "claim", "send", "record"} {
		if !bytes.Contains(spans, []byte(name)) {
			t.Errorf("the exported spans lack a %s span", name)
		}
	}
}
