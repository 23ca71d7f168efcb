package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hookrelay/hookrelay/app"
	"github.com/hookrelay/hookrelay/internal/procstat"
	"github.com/hookrelay/hookrelay/tracing"
	"github.com/jackc/pgx/v5"
)

// benchToken is the admin token of every Hookrelay the bench starts.
const benchToken = "hr_bench_admin_token_0123456789abcdef"

// serverOptions configures one Hookrelay under test.
type serverOptions struct {
	dsn     string
	timeout time.Duration // per-attempt delivery timeout
	workers int           // 0: the binary's default
	// schedule is the retry schedule; nil: the default one.
	schedule []time.Duration
	// inspectorRate is the per-bin capture limit (captures per second); 0 is unlimited.
	inspectorRate float64
	// noYield starts it with --inspector-busy-rate 0: captures never wait for deliveries.
	noYield bool
	// otlp is where traces go (-tracing); "" leaves tracing off.
	otlp string
}

// hookrelay is one running Hookrelay: in this process or a child process.
type hookrelay interface {
	baseURL() string
	// peakRSS is the high-water mark of resident memory of the process serving, in bytes.
	peakRSS() int64
	// rssScope says whose memory peakRSS measures.
	rssScope() string
	// cpuSeconds is the CPU time used so far by the bench and the server together.
	cpuSeconds() float64
	// serverSeconds is the server's part of it, where it runs in a process of its own; 0 in
	// the bench's process, where the two cannot be told apart.
	serverSeconds() float64
	stop() error
}

// inProcess is Hookrelay started through app.New, as main.go starts it, on a real loopback
// listener.
type inProcess struct {
	base string
	app  *app.App
}

func startInProcess(o serverOptions) (*inProcess, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	base := "http://" + ln.Addr().String()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: benchLogLevel()}))
	var tracer *tracing.Tracer
	if o.otlp != "" {
		if tracer, err = tracing.NewOTLP(context.Background(), o.otlp, "bench", logger); err != nil {
			ln.Close()
			return nil, err
		}
	}
	a, err := app.New(context.Background(), app.Config{DB: o.dsn, PublicURL: base, AdminToken: benchToken,
		AllowHTTP: true, AllowPrivate: true, DeliveryTimeout: o.timeout, Workers: o.workers, RetrySchedule: o.schedule,
		InspectorRate: o.inspectorRate, InspectorBusyRate: busyRate(o.noYield),
		Version: "bench", Logger: logger, Tracer: tracer})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("start hookrelay: %w", err)
	}
	a.Server.IdleTimeout = 2 * time.Minute
	a.Start(ln)
	return &inProcess{base: base, app: a}, nil
}

// busyRate is app.Config's InspectorBusyRate: its default, or never yielding.
func busyRate(noYield bool) float64 {
	if noYield {
		return -1
	}
	return 0
}

func (p *inProcess) baseURL() string        { return p.base }
func (p *inProcess) peakRSS() int64         { return procStatus(os.Getpid(), "VmHWM") }
func (p *inProcess) rssScope() string       { return "bench process (server + sink + load generator)" }
func (p *inProcess) cpuSeconds() float64    { return selfSeconds() }
func (p *inProcess) serverSeconds() float64 { return 0 }

func (p *inProcess) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return p.app.Shutdown(ctx)
}

// child is the built hookrelay binary, run as a child process on a random loopback port.
type child struct {
	base   string
	cmd    *exec.Cmd
	done   chan struct{}
	hwm    atomic.Int64 // last VmHWM read while running
	output *tail
}

var listeningRE = regexp.MustCompile(`listening on (\S+)`)

func startChild(bin string, o serverOptions) (*child, error) {
	args := []string{"--addr", "127.0.0.1:0", "--db", o.dsn, "--admin-token", benchToken, "--allow-http",
		"--allow-private-targets", "--delivery-timeout", o.timeout.String(), "--log-format", "text",
		"--inspector-rate", strconv.FormatFloat(o.inspectorRate, 'f', -1, 64)}
	if o.workers > 0 {
		args = append(args, "--workers", strconv.Itoa(o.workers))
	}
	if o.noYield { // only then: a binary built before the flag runs the other phases
		args = append(args, "--inspector-busy-rate", "0")
	}
	if o.otlp != "" {
		args = append(args, "--otlp-endpoint", o.otlp)
	}
	if o.schedule != nil {
		delays := make([]string, len(o.schedule))
		for i, d := range o.schedule {
			delays[i] = d.String()
		}
		args = append(args, "--retry-schedule", strings.Join(delays, ","))
	}
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, done: make(chan struct{}), output: &tail{}}
	cmd.Stderr = c.output
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { _ = cmd.Wait(); close(c.done) }()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			_, _ = c.output.Write(append(sc.Bytes(), '\n'))
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case a := <-addr:
		c.base = "http://" + a
		go c.watchRSS()
		return c, nil
	case <-c.done:
		return nil, fmt.Errorf("hookrelay exited before listening:\n%s", c.output)
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("hookrelay did not print its banner within 30s:\n%s", c.output)
	}
}

// watchRSS keeps the child's VmHWM, which can no longer be read once it has exited.
func (c *child) watchRSS() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			if v := procStatus(c.cmd.Process.Pid, "VmHWM"); v > 0 {
				c.hwm.Store(v)
			}
		}
	}
}

func (c *child) baseURL() string { return c.base }
func (c *child) peakRSS() int64 {
	if v := procStatus(c.cmd.Process.Pid, "VmHWM"); v > 0 {
		c.hwm.Store(v)
	}
	return c.hwm.Load()
}
func (c *child) rssScope() string { return "hookrelay process" }
func (c *child) cpuSeconds() float64 {
	return selfSeconds() + c.serverSeconds()
}
func (c *child) serverSeconds() float64 { return procstat.Process(c.cmd.Process.Pid) }

func (c *child) stop() error {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return nil
	case <-time.After(time.Minute):
		_ = c.cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("hookrelay did not stop within a minute of SIGTERM")
	}
}

// tail keeps the last 8 KiB a child printed, for error messages.
type tail struct {
	mu sync.Mutex
	b  []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 8<<10 {
		t.b = t.b[len(t.b)-8<<10:]
	}
	return len(p), nil
}
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// procStatus reads a kB field of /proc/<pid>/status, in bytes; 0 when unavailable.
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// resetPeakRSS restarts this process's VmHWM from its current RSS (Linux ≥ 4.0), so a
// scenario's peak is not an earlier scenario's.
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// buildBinary builds the hookrelay command into dir from the module this bench belongs to.
func buildBinary(dir string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(dir, "hookrelay")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, b)
	}
	return bin, nil
}

// backend is a database the scenarios run on: SQLite files in a temp dir, or fresh schemas
// on a PostgreSQL server.
type backend struct {
	name string // "sqlite" or "postgres"
	url  string // the postgres URL given with -db
	dir  string
}

// fresh returns a new, empty database and a function that removes it.
func (b backend) fresh(ctx context.Context, label string) (string, func(), error) {
	if b.name == "sqlite" {
		path := filepath.Join(b.dir, label+".db")
		return path, func() {
			for _, suffix := range []string{"", "-wal", "-shm"} {
				_ = os.Remove(path + suffix)
			}
		}, nil
	}
	r := make([]byte, 4)
	_, _ = rand.Read(r)
	schema := "bench_" + label + "_" + hex.EncodeToString(r)
	conn, err := pgx.Connect(ctx, b.url)
	if err != nil {
		return "", nil, fmt.Errorf("connect to %s: %w", redact(b.url), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, fmt.Errorf("create schema: %w", err)
	}
	u, err := url.Parse(b.url)
	if err != nil {
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), func() {
		c, err := pgx.Connect(context.Background(), b.url)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	}, nil
}

// redact hides a URL's password.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// benchLogLevel is the in-process server's log level: warnings, or what
// HOOKRELAY_BENCH_LOG (debug, info) asks for when looking into a run.
func benchLogLevel() slog.Level {
	var l slog.Level = slog.LevelWarn
	if v := os.Getenv("HOOKRELAY_BENCH_LOG"); v != "" {
		_ = l.UnmarshalText([]byte(v))
	}
	return l
}
