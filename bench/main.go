// Command bench measures Hookrelay's throughput, latency and memory in one run: it starts Hookrelay (in this
// process, wired as main.go wires it, or the built binary with -binary), a sink receiver and
// a load generator, all on 127.0.0.1, and reports as a table and, with -json, as JSON.
//
//  1. throughput: N events with concurrency C to K webhooks with secrets, published one per
//     request and in batches: events accepted/s, deliveries/s, and the raw loopback ceiling
//     (the same sink hit directly by a plain keep-alive client) with the ratio;
//  2. latency: a fixed publish rate to one webhook: publish-to-receipt p50, p99, max;
//  3. isolation: the same with 50 endpoints that never answer: the healthy one's p99 against 2;
//  4. backlog: M deliveries queued with no dispatcher running, then released: drain rate and
//     peak RSS;
//  5. all of it on PostgreSQL when -db gives a postgres:// URL, plus (scenario "replicas")
//     the throughput of 1 and 3 processes of the binary sharing that database.
//
// Every scenario is bounded in count and time (-limit). Timings on a shared machine are
// noisy: the report prints the load average before and after.
//
//	go run ./bench                                  # defaults, SQLite
//	go run ./bench -n 5000 -backlog 100000          # a quicker run
//	go run ./bench -db sqlite,postgres://postgres@127.0.0.1:5432/test?sslmode=disable
//	go run ./bench -scenarios throughput -cpuprofile cpu.pprof -memprofile mem.pprof
//	go run ./bench -db postgres://postgres@127.0.0.1:5432/test?sslmode=disable -scenarios replicas
//	go run ./bench -scenarios throughput,latency -tracing   # against a run without, for tracing's cost
//	go run ./bench -scenarios latency,isolation -latencies lat.tsv   # each event's latency, by publish time
//	go run ./bench -scenarios throughput -runs 4 -against /tmp/bench-before   # paired rounds, median and worst
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	n, c, k, batch  int
	rate            float64
	duration        time.Duration
	warmup          time.Duration
	hang            int
	hangTimeout     time.Duration
	deliveryTimeout time.Duration
	stallRecords    time.Duration
	backlog         int
	workers         int
	db              string
	scenarios       []string
	binary          string
	json            bool
	limit           time.Duration
	cpuprofile      string
	memprofile      string
	trace           string
	latencies       string
	replicas        []int
	soakDuration    time.Duration
	soakEvery       time.Duration
	soakRate        float64
	replicasAlways  bool // asked for by name: fail on SQLite instead of leaving it out
	tracing         bool
	runs            int
	against         string
	// self is this build's bench binary, which -runs and -against run once per round.
	self string
	// passthrough is the command line less -runs, -against and -json: what each round's bench,
	// this build's and the one -against names, is run with.
	passthrough []string
}

var allScenarios = []string{"throughput", "latency", "isolation", "backlog", "inspector", "flood", "replicas"}

// soak runs only when asked for by name: it lasts -soak-duration (30 minutes by default).
var knownScenarios = append(slices.Clone(allScenarios), "soak")

func parseOptions(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var scenarios string
	fs.IntVar(&o.n, "n", 20000, "throughput: events to publish; inspector: captures to post")
	fs.IntVar(&o.c, "c", 32, "throughput: concurrent publishers (and ceiling client concurrency)")
	fs.IntVar(&o.k, "k", 4, "throughput and backlog: webhooks subscribed to every event")
	fs.IntVar(&o.batch, "batch", 100, "throughput: events per batch publish request (≤1000; 1 skips the batch phase)")
	fs.Float64Var(&o.rate, "rate", 1000, "latency and isolation: events published per second")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "latency and isolation: how long to publish and measure")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "latency and isolation: how long to publish first without measuring")
	fs.IntVar(&o.hang, "hang", 50, "isolation: endpoints that never answer")
	fs.DurationVar(&o.hangTimeout, "hang-timeout", 2*time.Second, "isolation: delivery timeout (bounds the hanging requests)")
	fs.DurationVar(&o.deliveryTimeout, "delivery-timeout", 10*time.Second, "delivery timeout in the other scenarios")
	fs.DurationVar(&o.stallRecords, "stall-records", 0, "latency and isolation on PostgreSQL: halfway through, lock the attempts table this long, as a database slow for a moment (the records of attempts wait, the webhooks' windows fill)")
	fs.IntVar(&o.backlog, "backlog", 1000000, "backlog: deliveries queued before the server starts")
	fs.IntVar(&o.workers, "workers", 0, "Hookrelay --workers (0: its default for this machine)")
	fs.StringVar(&o.db, "db", "sqlite", "comma-separated stores to run on: sqlite and/or a postgres:// URL")
	fs.StringVar(&scenarios, "scenarios", "", "comma-separated scenarios to run (default: all; replicas only on postgres)")
	var replicas string
	fs.StringVar(&replicas, "replicas", "1,3", "replicas scenario: comma-separated process counts")
	fs.StringVar(&o.binary, "binary", "", "run this hookrelay binary instead of in-process (\"build\" builds it first)")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON on stdout (the table goes to stderr)")
	fs.DurationVar(&o.limit, "limit", 5*time.Minute, "longest wait for any one scenario's deliveries")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of each scenario, named for it (in-process only)")
	fs.DurationVar(&o.soakDuration, "soak-duration", 30*time.Minute, "soak: how long to publish against the unreliable receiver")
	fs.DurationVar(&o.soakEvery, "soak-every", time.Minute, "soak: how often to sample goroutines, memory, descriptors and the queue")
	fs.Float64Var(&o.soakRate, "soak-rate", 100, "soak: events published per second")
	fs.BoolVar(&o.tracing, "tracing", false, "trace every publish and attempt, exported over OTLP/HTTP to a collector in this process that discards it; the webhooks ask for trace context (compare with a run without)")
	fs.StringVar(&o.memprofile, "memprofile", "", "write the cumulative allocation profile after each scenario (in-process only)")
	fs.StringVar(&o.latencies, "latencies", "", "latency and isolation: write every event's publish time and publish-to-receipt time to a file named for the store and the scenario (lat.tsv → lat.postgres.isolation.tsv)")
	fs.StringVar(&o.trace, "trace", "", "write an execution trace of each scenario, named for it (in-process only; read with go tool trace)")
	fs.IntVar(&o.runs, "runs", 1, "measure this many rounds and report each figure's median and worst")
	fs.StringVar(&o.against, "against", "", "a bench binary built from other code, run alternately with this one every round (paired runs)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name != "runs" && f.Name != "against" && f.Name != "json" {
			o.passthrough = append(o.passthrough, "-"+f.Name+"="+f.Value.String())
		}
	})
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, f := range strings.Split(replicas, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 16 {
			return o, fmt.Errorf("-replicas: %q is not a count from 1 to 16", f)
		}
		o.replicas = append(o.replicas, n)
	}
	explicit := scenarios != ""
	if !explicit {
		scenarios = strings.Join(allScenarios, ",")
	}
	for _, s := range strings.Split(scenarios, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !slices.Contains(knownScenarios, s) {
			return o, fmt.Errorf("-scenarios: unknown scenario %q (known: %s)", s, strings.Join(knownScenarios, ", "))
		}
		o.scenarios = append(o.scenarios, s)
	}
	o.replicasAlways = explicit && slices.Contains(o.scenarios, "replicas")
	switch {
	case o.n < 1 || o.c < 1 || o.k < 1:
		return o, errors.New("-n, -c and -k must be at least 1")
	case o.batch < 1 || o.batch > 1000:
		return o, errors.New("-batch must be between 1 and 1000")
	case o.rate <= 0 || o.duration <= 0 || o.warmup < 0 || o.stallRecords < 0:
		return o, errors.New("-rate and -duration must be positive, -warmup and -stall-records not negative")
	case o.stallRecords >= o.duration/2:
		return o, errors.New("-stall-records must end before the measured period does: less than half of -duration")
	case o.backlog < 1 || o.hang < 0:
		return o, errors.New("-backlog must be at least 1 and -hang not negative")
	case o.binary != "" && (o.cpuprofile != "" || o.memprofile != "" || o.trace != ""):
		return o, errors.New("-cpuprofile, -memprofile and -trace profile the in-process server: drop -binary")
	case o.runs < 1 || o.runs > 100:
		return o, errors.New("-runs must be between 1 and 100")
	case (o.runs > 1 || o.against != "") && (o.cpuprofile != "" || o.memprofile != "" || o.trace != "" || o.latencies != "" || slices.Contains(o.scenarios, "soak")):
		return o, errors.New("-runs and -against measure rounds: profile, write latencies or soak in a run of its own")
	case o.against != "" && o.binary != "":
		return o, errors.New("-against compares two benches, each with its own build in-process: drop -binary")
	}
	return o, nil
}

// Report is everything one run measured.
type Report struct {
	StartedAt  time.Time `json:"started_at"`
	CPUs       int       `json:"cpus"`
	GoVersion  string    `json:"go_version"`
	Mode       string    `json:"mode"` // in-process or binary
	Tracing    bool      `json:"tracing"`
	LoadBefore string    `json:"load_avg_before"`
	LoadAfter  string    `json:"load_avg_after"`
	Options    struct {
		N           int     `json:"n"`
		C           int     `json:"c"`
		K           int     `json:"k"`
		Batch       int     `json:"batch"`
		Rate        float64 `json:"rate"`
		Duration    string  `json:"duration"`
		Hang        int     `json:"hang"`
		HangTimeout string  `json:"hang_timeout"`
		Backlog     int     `json:"backlog"`
		Workers     int     `json:"workers"`
	} `json:"options"`
	Runs []*Run `json:"runs"`
}

// Run is the scenarios on one store.
type Run struct {
	Store      string            `json:"store"`
	Throughput *ThroughputResult `json:"throughput,omitempty"`
	Latency    *LatencyResult    `json:"latency,omitempty"`
	Isolation  *IsolationResult  `json:"isolation,omitempty"`
	Backlog    *BacklogResult    `json:"backlog,omitempty"`
	Replicas   []*ReplicaResult  `json:"replicas,omitempty"`
	Soak       *SoakResult       `json:"soak,omitempty"`
	Inspector  *InspectorResult  `json:"inspector,omitempty"`
	Flood      *FloodResult      `json:"flood,omitempty"`
	Errors     []string          `json:"errors,omitempty"`
}

func main() {
	if runCeilingChild(context.Background()) {
		return
	}
	o, err := parseOptions(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.runs > 1 || o.against != "" {
		if o.self, err = os.Executable(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		os.Exit(mainRounds(ctx, o))
	}
	rep, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	emit(o, rep, func(w io.Writer) { printTable(w, rep) })
	if failed(rep) {
		os.Exit(1)
	}
}

// emit prints the table, on standard output, or, with -json, v as JSON there and the table on
// standard error.
func emit(o options, v any, table func(io.Writer)) {
	w := io.Writer(os.Stdout)
	if o.json {
		w = os.Stderr
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(v)
	}
	table(w)
}

// failed reports whether a scenario failed in any of reps.
func failed(reps ...*Report) bool {
	for _, rep := range reps {
		for _, r := range rep.Runs {
			if len(r.Errors) > 0 {
				return true
			}
		}
	}
	return false
}

func run(ctx context.Context, o options) (*Report, error) {
	dir, err := os.MkdirTemp("", "hookrelay-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	rep := &Report{StartedAt: time.Now().UTC(), CPUs: runtime.NumCPU(), GoVersion: runtime.Version(),
		Mode: "in-process", LoadBefore: loadAvg(), Tracing: o.tracing}
	rep.Options.N, rep.Options.C, rep.Options.K, rep.Options.Batch = o.n, o.c, o.k, o.batch
	rep.Options.Rate, rep.Options.Duration, rep.Options.Hang = o.rate, o.duration.String(), o.hang
	rep.Options.HangTimeout, rep.Options.Backlog, rep.Options.Workers = o.hangTimeout.String(), o.backlog, o.workers

	bin := o.binary
	if bin == "build" {
		if bin, err = buildBinary(dir); err != nil {
			return nil, err
		}
	}
	if bin != "" {
		rep.Mode = "binary"
	}
	otlp := ""
	if o.tracing {
		c, err := startCollector()
		if err != nil {
			return nil, err
		}
		defer func() {
			c.close()
			fmt.Fprintf(os.Stderr, "trace collector: %d exports, %.1f MB of spans\n", c.requests.Load(), mb(c.bytes.Load()))
		}()
		otlp = c.url
	}
	for _, db := range strings.Split(o.db, ",") {
		db = strings.TrimSpace(db)
		be := backend{name: "sqlite", dir: dir}
		switch {
		case db == "sqlite":
		case strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://"):
			be = backend{name: "postgres", url: db}
		default:
			return nil, fmt.Errorf("-db: %q is neither sqlite nor a postgres:// URL", db)
		}
		r := &runner{o: o, be: be, bin: bin, replicaBin: bin, otlp: otlp}
		if be.name == "postgres" && slices.Contains(o.scenarios, "replicas") && r.replicaBin == "" {
			if r.replicaBin, err = buildBinary(dir); err != nil {
				return nil, err
			}
		}
		rep.Runs = append(rep.Runs, r.all(ctx))
	}
	rep.LoadAfter = loadAvg()
	return rep, nil
}

// all runs the selected scenarios; a failing scenario is reported and the next one runs.
func (r *runner) all(ctx context.Context) *Run {
	run := &Run{Store: r.be.name}
	fail := func(name string, err error) {
		r.logf("%s failed: %v", name, err)
		run.Errors = append(run.Errors, name+": "+err.Error())
	}
	for _, sc := range r.o.scenarios {
		if ctx.Err() != nil {
			fail(sc, ctx.Err())
			continue
		}
		switch sc {
		case "throughput":
			res, err := r.throughput(ctx)
			run.Throughput = res
			if err != nil {
				fail(sc, err)
			}
		case "latency":
			res, _, err := r.latency(ctx, 0)
			run.Latency = res
			if err != nil {
				fail(sc, err)
			}
		case "isolation":
			res, hung, err := r.latency(ctx, r.o.hang)
			run.Isolation = &IsolationResult{Hanging: r.o.hang, Timeout: r.o.hangTimeout.String(), Healthy: res, HangHits: hung}
			if err != nil {
				fail(sc, err)
			} else if run.Latency != nil && run.Latency.P99ms > 0 {
				run.Isolation.P99Ratio = res.P99ms / run.Latency.P99ms
			}
		case "backlog":
			res, err := r.backlog(ctx)
			run.Backlog = res
			if err != nil {
				fail(sc, err)
			}
		case "inspector":
			res, err := r.inspector(ctx)
			run.Inspector = res
			if err != nil {
				fail(sc, err)
			}
		case "flood":
			res, err := r.floodScenario(ctx)
			run.Flood = res
			if err != nil {
				fail(sc, err)
			}
		case "soak":
			res, err := r.soak(ctx)
			run.Soak = res
			if err != nil {
				fail(sc, err)
			}
		case "replicas":
			if r.be.name != "postgres" && !r.o.replicasAlways {
				continue // replicas share a PostgreSQL database; by default SQLite runs skip it
			}
			res, err := r.replicas(ctx)
			run.Replicas = res
			if err != nil {
				fail(sc, err)
			}
		}
	}
	return run
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// percentile is the nearest-rank q-quantile (q in (0,1]) of d; it sorts d.
func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(math.Ceil(q*float64(len(d)))) - 1
	return d[min(max(i, 0), len(d)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
func mb(b int64) float64         { return float64(b) / (1 << 20) }
