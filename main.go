// Command hookrelay sends signed webhooks for live-chat events, with an admin UI, a built-in
// receiver (the inspector) and generated API docs, in one binary.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hookrelay/hookrelay/app"
	"github.com/hookrelay/hookrelay/cli"
	"github.com/hookrelay/hookrelay/delivery"
	"github.com/hookrelay/hookrelay/engine"
	"github.com/hookrelay/hookrelay/inspector"
	"github.com/hookrelay/hookrelay/tracing"
)

var version = "dev"

type config struct {
	addr, db, publicURL, adminToken, logFormat string
	allowHTTP, allowPrivate                    bool
	timeout, retention, autoDisable, lease     time.Duration
	schedule                                   []time.Duration
	workers, perWebhook                        int
	maxConns, maxConnsPerAddr                  int
	inspectorRate                              float64
	inspectorBusyRate                          float64 // 0: captures never yield
	trustedProxies                             []string
	otlpEndpoint                               string
}

func main() {
	if code, ok := cli.Run(os.Args[1:]); ok { // hookrelay listen | trigger | verify
		os.Exit(code)
	}
	cfg, err := parseConfig(os.Args[1:], os.Getenv)
	var help *helpRequested
	if errors.As(err, &help) {
		fmt.Print(help.usage)
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hookrelay:", err)
		os.Exit(2)
	}
	if err := run(cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "hookrelay:", err)
		os.Exit(1)
	}
}

// parseConfig reads flags, each with a HOOKRELAY_<NAME> environment variable; flags win.
// Errors name the flag or variable at fault.
func parseConfig(args []string, getenv func(string) string) (*config, error) {
	fs := flag.NewFlagSet("hookrelay", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := &config{}
	var timeout, retention, autoDisable, schedule, rate, busyRate string
	fs.StringVar(&c.addr, "addr", ":8080", "listen address, host:port")
	fs.StringVar(&c.db, "db", "hookrelay.db", "SQLite file path, or a postgres:// URL")
	fs.StringVar(&c.publicURL, "public-url", "", "base URL shown for inspector URLs and links; an absolute http or https URL (default http://<host>:<port> of --addr)")
	fs.StringVar(&c.adminToken, "admin-token", "", "bootstrap admin API token, at least 16 characters (default generated on first start, printed once)")
	fs.BoolVar(&c.allowHTTP, "allow-http", false, "accept http:// webhook URLs")
	fs.BoolVar(&c.allowPrivate, "allow-private-targets", false, "allow loopback, private and link-local delivery targets")
	fs.StringVar(&timeout, "delivery-timeout", "10s", "time limit of one delivery attempt, from connecting to the last byte read")
	fs.StringVar(&schedule, "retry-schedule", "10s,1m,5m,30m,2h,6h,12h,24h", "delays before attempts 2, 3, … (±10% jitter); \"\" for a single attempt")
	fs.IntVar(&c.workers, "workers", engine.DefaultWorkers(), "deliveries in flight at once, in total; 1 to 100000 (default 64 × CPU cores, at least 64: "+strconv.Itoa(engine.DefaultWorkers())+" here)")
	fs.IntVar(&c.perWebhook, "per-webhook", 0, "most deliveries in flight to one webhook (default --workers ÷ 4, at least 4)")
	var lease string
	fs.StringVar(&lease, "claim-lease", "0", "how long a replica holds a claimed delivery before another may take it over; longer than --delivery-timeout (default 2 × --delivery-timeout + 30s)")
	fs.StringVar(&retention, "retention", "720h", "finished deliveries, attempts, events, captures and expired sessions older than this are pruned; 0 keeps everything")
	fs.StringVar(&autoDisable, "auto-disable-after", "120h", "disable a webhook whose attempts have all failed for this long; 0 never disables")
	fs.StringVar(&rate, "inspector-rate", "50", "captures accepted per second per inspector bin (burst twice that); 0 is unlimited")
	fs.StringVar(&busyRate, "inspector-busy-rate", strconv.Itoa(inspector.DefaultBusyRate), "captures all inspector bins together accept per second while webhooks are being delivered (this server's own deliveries to its bins excepted); 0: captures never wait for deliveries")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format, text or json (logs go to standard error)")
	fs.IntVar(&c.maxConns, "max-connections", 0, "client connections held open at once (default half the file descriptor limit, 256 to 16384)")
	fs.IntVar(&c.maxConnsPerAddr, "max-connections-per-address", 0, "client connections one address may hold open; -1 for no limit (default a quarter of --max-connections)")
	fs.StringVar(&c.otlpEndpoint, "otlp-endpoint", "", "OTLP/HTTP collector to export traces to, such as http://localhost:4318 (default none: tracing off)")
	var proxies string
	fs.StringVar(&proxies, "trusted-proxies", "", "comma-separated addresses or CIDRs of reverse proxies whose X-Forwarded-For names the client (default none)")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, &helpRequested{usage: usage(fs)}
		}
		return nil, err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		env := "HOOKRELAY_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(env); v != "" && !given[f.Name] && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%s: invalid value %q", env, v)
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	dur := func(name, v string, zeroOK bool) (time.Duration, error) {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || (d == 0 && !zeroOK) {
			return 0, fmt.Errorf("--%s: %q is not a positive duration such as 10s or 720h", name, v)
		}
		return d, nil
	}
	if c.timeout, err = dur("delivery-timeout", timeout, false); err != nil {
		return nil, err
	}
	if c.retention, err = dur("retention", retention, true); err != nil {
		return nil, err
	}
	if c.autoDisable, err = dur("auto-disable-after", autoDisable, true); err != nil {
		return nil, err
	}
	if c.lease, err = dur("claim-lease", lease, true); err != nil {
		return nil, err
	}
	if c.lease != 0 && c.lease <= c.timeout {
		return nil, fmt.Errorf("--claim-lease: must be longer than --delivery-timeout, or an attempt could be taken over while it runs")
	}
	if c.schedule, err = delivery.ParseSchedule(schedule); err != nil {
		return nil, fmt.Errorf("--retry-schedule: %w", err)
	}
	if c.inspectorRate, err = strconv.ParseFloat(rate, 64); err != nil || c.inspectorRate < 0 {
		return nil, fmt.Errorf("--inspector-rate: %q is not a number ≥ 0", rate)
	}
	if c.inspectorBusyRate, err = strconv.ParseFloat(busyRate, 64); err != nil || c.inspectorBusyRate < 0 {
		return nil, fmt.Errorf("--inspector-busy-rate: %q is not a number ≥ 0", busyRate)
	}
	if c.workers < 1 || c.workers > 100000 {
		return nil, fmt.Errorf("--workers: must be between 1 and 100000")
	}
	if c.perWebhook < 0 {
		return nil, fmt.Errorf("--per-webhook: must not be negative")
	}
	for _, p := range strings.Split(proxies, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				return nil, fmt.Errorf("--trusted-proxies: %q is not an IP address or CIDR", p)
			}
		}
		c.trustedProxies = append(c.trustedProxies, p)
	}
	if c.maxConns < 0 {
		return nil, fmt.Errorf("--max-connections: must not be negative")
	}
	if c.maxConnsPerAddr < -1 {
		return nil, fmt.Errorf("--max-connections-per-address: must be -1 (no limit), 0 (the default) or more")
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		return nil, fmt.Errorf("--log-format: must be text or json")
	}
	if c.db == "" {
		return nil, fmt.Errorf("--db: must not be empty")
	}
	host, port, err := net.SplitHostPort(c.addr)
	if err != nil {
		return nil, fmt.Errorf("--addr: %q is not host:port", c.addr)
	}
	if c.publicURL == "" {
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "localhost"
		}
		c.publicURL = "http://" + net.JoinHostPort(host, port)
	}
	u, err := url.Parse(c.publicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--public-url: %q is not an absolute http(s) URL", c.publicURL)
	}
	c.publicURL = strings.TrimSuffix(c.publicURL, "/")
	if c.otlpEndpoint != "" {
		if u, err := url.Parse(c.otlpEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--otlp-endpoint: %q is not an absolute http(s) URL", c.otlpEndpoint)
		}
	}
	if c.adminToken != "" && len(c.adminToken) < 16 {
		return nil, fmt.Errorf("--admin-token: must be at least 16 characters")
	}
	return c, nil
}

// flagKinds name the values of flags that are read as strings and parsed after.
var flagKinds = map[string]string{"delivery-timeout": "duration", "claim-lease": "duration", "retention": "duration",
	"auto-disable-after": "duration", "retry-schedule": "durations", "inspector-rate": "number", "inspector-busy-rate": "number", "trusted-proxies": "list"}

// helpRequested is what parseConfig returns for -h or --help: the usage text to print.
type helpRequested struct{ usage string }

func (h *helpRequested) Error() string { return "help requested" }

// usage lists every flag with its value's kind, its meaning, its default and its environment
// variable. A default the flag package would print as "0" or "" but that is worked out at start
// (--workers, --claim-lease, …) is named in the flag's own text instead.
func usage(fs *flag.FlagSet) string {
	var b strings.Builder
	b.WriteString("Usage: hookrelay [flags]\n\n")
	b.WriteString("Hookrelay sends signed webhooks for live-chat events, with an admin UI, API docs (/docs)\n")
	b.WriteString("and a webhook inspector, in one binary.\n\n")
	b.WriteString("Every flag can also be set with the environment variable HOOKRELAY_<NAME> (upper case,\n")
	b.WriteString("dashes as underscores); a flag wins over its variable. Durations read like 10s, 5m or 720h.\n\n")
	b.WriteString("Flags:\n")
	fs.VisitAll(func(f *flag.Flag) {
		kind, meaning := flag.UnquoteUsage(f)
		if k, ok := flagKinds[f.Name]; ok {
			kind = k // read as a string, parsed afterwards
		} else if kind == "" {
			kind = "bool"
		}
		if !strings.Contains(meaning, "(default") {
			def := f.DefValue
			if kind == "string" || kind == "durations" {
				def = strconv.Quote(def)
			}
			meaning += " (default " + def + ")"
		}
		fmt.Fprintf(&b, "  --%s %s\n      %s\n      env HOOKRELAY_%s\n", f.Name, kind, meaning,
			strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_")))
	})
	b.WriteString("\nBad configuration exits with status 2 and a line naming the flag at fault.\n")
	b.WriteString("\nCommands for developing a receiver against a running server (each has --help):\n")
	b.WriteString("  hookrelay listen --forward-to URL   forward a bin's requests to a local URL as they arrive\n")
	b.WriteString("  hookrelay trigger EVENT             publish the catalogue's example of an event type\n")
	b.WriteString("  hookrelay verify --secret S FILE    check a saved request's signatures offline\n")
	return b.String()
}

func run(cfg *config, out io.Writer) error {
	var handler slog.Handler = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})
	if cfg.logFormat == "json" {
		handler = slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})
	}
	logger := slog.New(handler)
	slog.SetDefault(logger)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var tracer *tracing.Tracer // nil: tracing off, at no cost
	if cfg.otlpEndpoint != "" {
		var err error
		if tracer, err = tracing.NewOTLP(ctx, cfg.otlpEndpoint, version, logger); err != nil {
			return fmt.Errorf("--otlp-endpoint: %w", err)
		}
	}
	busyRate := cfg.inspectorBusyRate
	if busyRate == 0 {
		busyRate = -1 // app.Config reads 0 as its default
	}
	a, err := app.New(ctx, app.Config{
		DB: cfg.db, PublicURL: cfg.publicURL, AdminToken: cfg.adminToken,
		AllowHTTP: cfg.allowHTTP, AllowPrivate: cfg.allowPrivate, TrustedProxies: cfg.trustedProxies,
		MaxConnections: cfg.maxConns, MaxConnectionsPerAddress: cfg.maxConnsPerAddr,
		DeliveryTimeout: cfg.timeout, RetrySchedule: cfg.schedule, Workers: cfg.workers, PerWebhook: cfg.perWebhook,
		ClaimLease: cfg.lease, Retention: cfg.retention, AutoDisableAfter: cfg.autoDisable,
		InspectorRate: cfg.inspectorRate, InspectorBusyRate: busyRate, Version: version, UI: uiDist(), Logger: logger, Tracer: tracer,
	})
	if err != nil {
		return fmt.Errorf("--db: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		_ = a.Shutdown(context.Background())
		return fmt.Errorf("--addr: %w", err)
	}
	a.Start(ln)
	banner(out, cfg, ln.Addr().String(), a.NewAdminToken)

	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down: finishing in-flight requests and deliveries")
	case serveErr = <-a.Err():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.timeout+20*time.Second)
	defer cancel()
	if err := a.Shutdown(shutdownCtx); err != nil {
		logger.Warn("shutdown", "err", err)
	}
	if serveErr != nil {
		return serveErr
	}
	logger.Info("stopped")
	return nil
}

func banner(out io.Writer, cfg *config, listening, newToken string) {
	data := cfg.db
	if strings.HasPrefix(data, "postgres") {
		if u, err := url.Parse(data); err == nil {
			u.User = nil
			data = u.String()
		}
	}
	// One write, so whoever reads the output sees the whole block at once.
	var b strings.Builder
	fmt.Fprintf(&b, "Hookrelay %s listening on %s\n", version, listening)
	fmt.Fprintf(&b, "  Admin UI:  %s/\n", cfg.publicURL)
	fmt.Fprintf(&b, "  API docs:  %s/docs\n", cfg.publicURL)
	fmt.Fprintf(&b, "  Inspector: %s/inspect/<bin id>\n", cfg.publicURL)
	fmt.Fprintf(&b, "  Data:      %s\n", data)
	if newToken != "" {
		fmt.Fprintf(&b, "  Admin token (shown once, store it now): %s\n", newToken)
	}
	io.WriteString(out, b.String())
}
