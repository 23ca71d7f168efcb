package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// runner runs the scenarios on one backend.
type runner struct {
	o   options
	be  backend
	bin string // the hookrelay binary; "" runs Hookrelay in this process
	// replicaBin is the binary the replicas scenario starts several of (built when -binary is
	// not given: replicas are processes).
	replicaBin string
	// otlp is the trace collector's URL with -tracing, else "".
	otlp string
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s %s] %s\n", time.Now().Format("15:04:05"), r.be.name, fmt.Sprintf(format, args...))
}

// start runs a Hookrelay on dsn and returns it with an API client; stop stops both.
func (r *runner) start(dsn string, timeout time.Duration, schedule ...time.Duration) (hookrelay, *client, func(), error) {
	return r.startWith(serverOptions{dsn: dsn, timeout: timeout, workers: r.o.workers, schedule: schedule})
}

// startWith is start with every server option given.
func (r *runner) startWith(o serverOptions) (hookrelay, *client, func(), error) {
	var h hookrelay
	var err error
	o.otlp = r.otlp
	if r.bin != "" {
		h, err = startChild(r.bin, o)
	} else {
		h, err = startInProcess(o)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	cl := newClient(h.baseURL(), benchToken, r.o.c*2)
	cl.traceContext = r.otlp != ""
	stop := func() {
		// Connections the client dialed but never used would hold up the server's graceful
		// shutdown for seconds: close them first.
		cl.http.CloseIdleConnections()
		if err := h.stop(); err != nil {
			r.logf("stop: %v", err)
		}
	}
	return h, cl, stop, nil
}

// withLimit bounds one wait of a scenario.
func (r *runner) withLimit(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.o.limit)
}

// awaitDelivered waits, within the limit, for every delivery the sink expects; it reports
// whether they all arrived and when the last did (now, when some did not).
func (r *runner) awaitDelivered(ctx context.Context, s *sink) (bool, time.Time) {
	wctx, cancel := r.withLimit(ctx)
	defer cancel()
	if !s.wait(wctx) {
		return false, time.Now()
	}
	return true, time.Unix(0, s.last.Load())
}

// PhaseResult is one way of publishing in the throughput scenario.
type PhaseResult struct {
	Mode             string  `json:"mode"` // single or batch
	Requests         int     `json:"requests"`
	AcceptSeconds    float64 `json:"accept_seconds"`
	AcceptedPerSec   float64 `json:"events_accepted_per_sec"`
	Delivered        int64   `json:"delivered"`
	DeliverSeconds   float64 `json:"deliver_seconds"` // first publish → last receipt
	DeliveriesPerSec float64 `json:"deliveries_per_sec"`
	Complete         bool    `json:"complete"`
	PublishErrors    int     `json:"publish_errors"`
	MetricsSucceeded float64 `json:"metrics_succeeded"` // hookrelay_deliveries_total{outcome="succeeded"} at the end
	// ConnsOpened is how many connections the sender made to the sink during the phase: with
	// keep-alive working, about one per concurrent attempt, whatever the delivery count.
	ConnsOpened float64 `json:"connections_opened"`
	// CPUCores is the CPU time the bench and Hookrelay used over the phase ÷ its wall time.
	// Well under the machine's core count on a CPU-bound run means others took the rest.
	CPUCores float64 `json:"cpu_cores_used"`
	// MachineCores is the CPU time every process on the machine used over the phase ÷ its wall
	// time (0 where /proc/stat is not there). Near the core count while CPUCores is well under
	// it, the phase is bound by CPU that others spend: on PostgreSQL, its server's.
	MachineCores float64 `json:"machine_cores_busy"`
	// ServerCores is the Hookrelay process's part of CPUCores, with -binary (0 in-process).
	ServerCores float64 `json:"server_cores_used,omitempty"`
	// DatabaseCores is the CPU time of every PostgreSQL process on this machine over the phase
	// ÷ its wall time (0 on SQLite, or with the server on another machine).
	DatabaseCores float64 `json:"database_cores_used,omitempty"`
	// FloodCapturesPerSec is, in the flood scenario, the captures one bin took meanwhile.
	FloodCapturesPerSec float64 `json:"flood_captures_per_sec,omitempty"`
}

// ThroughputResult is scenario 1.
type ThroughputResult struct {
	Events      int          `json:"events"`
	Webhooks    int          `json:"webhooks"`
	Concurrency int          `json:"concurrency"`
	BatchSize   int          `json:"batch_size"`
	Single      *PhaseResult `json:"single,omitempty"`
	Batch       *PhaseResult `json:"batch,omitempty"`
	// The ceiling is measured before, between and after the phases: on a shared machine it
	// moves by several percent within a minute, so each phase's ratio uses the mean of the
	// two measurements around it (CeilingSingle, CeilingBatch). CeilingRPS is the mean of all.
	CeilingBefore  float64 `json:"ceiling_before_requests_per_sec"`
	CeilingBetween float64 `json:"ceiling_between_requests_per_sec,omitempty"`
	CeilingAfter   float64 `json:"ceiling_after_requests_per_sec"`
	CeilingSingle  float64 `json:"ceiling_single_requests_per_sec"`
	CeilingBatch   float64 `json:"ceiling_batch_requests_per_sec,omitempty"`
	CeilingRPS     float64 `json:"ceiling_requests_per_sec"`
	// CeilingClient says where the plain client ran: "in-process" beside the sink, or in
	// its "own process" when Hookrelay runs as the binary (its sender is then a process of
	// its own too).
	CeilingClient string  `json:"ceiling_client"`
	RatioSingle   float64 `json:"ratio_single"` // deliveries/s ÷ ceiling
	RatioBatch    float64 `json:"ratio_batch"`
}

func (r *runner) throughput(ctx context.Context) (*ThroughputResult, error) {
	res := &ThroughputResult{Events: r.o.n, Webhooks: r.o.k, Concurrency: r.o.c, BatchSize: r.o.batch,
		CeilingClient: "in-process"}
	ownProcess := r.bin != ""
	if ownProcess {
		res.CeilingClient = "own process"
	}
	total := r.o.n * r.o.k
	var err error
	r.logf("throughput: loopback ceiling, %d requests of 1 KiB with concurrency %d, client %s", total, r.o.c, res.CeilingClient)
	if res.CeilingBefore, err = ceiling(ctx, total, r.o.c, ownProcess); err != nil {
		return res, fmt.Errorf("ceiling: %w", err)
	}
	if res.Single, err = r.throughputPhase(ctx, false, flooded{}); err != nil {
		return res, fmt.Errorf("single publish: %w", err)
	}
	again := func(at *float64) error {
		r.logf("throughput: loopback ceiling again, %d requests of 1 KiB with concurrency %d, client %s", total, r.o.c, res.CeilingClient)
		var err error
		if *at, err = ceiling(ctx, total, r.o.c, ownProcess); err != nil {
			return fmt.Errorf("ceiling: %w", err)
		}
		return nil
	}
	if r.o.batch > 1 {
		if err := again(&res.CeilingBetween); err != nil {
			return res, err
		}
		if res.Batch, err = r.throughputPhase(ctx, true, flooded{}); err != nil {
			return res, fmt.Errorf("batch publish: %w", err)
		}
	}
	if err := again(&res.CeilingAfter); err != nil {
		return res, err
	}
	if res.Batch == nil {
		res.CeilingSingle = (res.CeilingBefore + res.CeilingAfter) / 2
		res.CeilingRPS = res.CeilingSingle
	} else {
		res.CeilingSingle = (res.CeilingBefore + res.CeilingBetween) / 2
		res.CeilingBatch = (res.CeilingBetween + res.CeilingAfter) / 2
		res.CeilingRPS = (res.CeilingBefore + res.CeilingBetween + res.CeilingAfter) / 3
		res.RatioBatch = res.Batch.DeliveriesPerSec / res.CeilingBatch
	}
	res.RatioSingle = res.Single.DeliveriesPerSec / res.CeilingSingle
	return res, nil
}

// flooded says whether a throughput phase runs beside a flooded inspector bin, the
// server's per-bin capture limit then (0: none), and whether captures never yield to
// deliveries (--inspector-busy-rate 0).
type flooded struct {
	on      bool
	rate    float64
	noYield bool
}

// throughputPhase publishes -n events to -k webhooks on a fresh database and measures
// deliveries per second. With a flood, senders post captures to one inspector bin as fast as
// it takes them for the whole phase.
func (r *runner) throughputPhase(ctx context.Context, batch bool, flood flooded) (*PhaseResult, error) {
	mode := "single"
	if batch {
		mode = "batch"
	}
	if flood.on {
		mode += "_flood_" + strconv.FormatFloat(flood.rate, 'f', -1, 64)
		if flood.noYield {
			mode += "_noyield"
		}
	}
	n, k := r.o.n, r.o.k
	r.logf("throughput (%s): %d events × %d webhooks, concurrency %d", mode, n, k, r.o.c)
	dsn, cleanup, err := r.be.fresh(ctx, "throughput_"+mode)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	s, err := startSink(int64(n*k), false)
	if err != nil {
		return nil, err
	}
	defer s.close()
	h, cl, stop, err := r.startWith(serverOptions{dsn: dsn, timeout: r.o.deliveryTimeout, workers: r.o.workers,
		inspectorRate: flood.rate, noYield: flood.noYield})
	if err != nil {
		return nil, err
	}
	defer stop()
	if err := subscribeSink(ctx, cl, s, k); err != nil {
		return nil, err
	}
	stopProfile, err := r.startProfile(mode)
	if err != nil {
		return nil, err
	}
	defer stopProfile()

	res := &PhaseResult{Mode: mode}
	stopFlood := func() {}
	if flood.on {
		if stopFlood, err = r.flood(ctx, cl, res); err != nil {
			return nil, err
		}
		defer stopFlood()
	}
	connsBefore, _ := scrape(ctx, cl, "hookrelay_delivery_connections_opened_total")
	cpuStart := r.readCPU(h)
	start := time.Now()
	var elapsed time.Duration
	var failures int
	var firstErr error
	b := 1
	if batch {
		b = r.o.batch
	}
	res.Requests = (n + b - 1) / b
	elapsed, failures, firstErr = closedLoop(ctx, res.Requests, r.o.c, func(ctx context.Context, i int) error {
		return publishRequest(ctx, cl, i, b, n)
	})
	res.PublishErrors = failures
	if failures > 0 {
		r.logf("throughput (%s): %d publish requests failed, first: %v", mode, failures, firstErr)
	}
	res.AcceptSeconds = elapsed.Seconds()
	res.AcceptedPerSec = float64(n) / elapsed.Seconds()
	var end time.Time
	res.Complete, end = r.awaitDelivered(ctx, s)
	stopProfile()
	stopFlood()
	wall := time.Since(start).Seconds()
	used := r.cpuSince(h, cpuStart, wall)
	res.CPUCores, res.ServerCores, res.DatabaseCores, res.MachineCores = used.process, used.server, used.database, used.machine
	res.Delivered = s.count.Load()
	res.DeliverSeconds = end.Sub(start).Seconds()
	res.DeliveriesPerSec = float64(res.Delivered) / res.DeliverSeconds
	// The sink counts a delivery when the request arrives; the server counts it when the
	// response is back, a moment later: give the counter that moment.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		v, err := scrape(ctx, cl, `hookrelay_deliveries_total{outcome="succeeded"}`)
		if err != nil {
			r.logf("throughput (%s): scrape /metrics: %v", mode, err)
			break
		}
		if res.MetricsSucceeded = v; int64(v) >= res.Delivered {
			break
		}
	}
	if v, err := scrape(ctx, cl, "hookrelay_delivery_connections_opened_total"); err == nil {
		res.ConnsOpened = v - connsBefore
	}
	r.logf("throughput (%s): %.0f events/s accepted, %.0f deliveries/s, %.2f CPU cores used (%.2f busy on the machine)", mode,
		res.AcceptedPerSec, res.DeliveriesPerSec, res.CPUCores, res.MachineCores)
	return res, nil
}

// flood starts senders posting signed captures to a new bin, -c at a time, as fast as it
// takes them; stop ends them and records their rate in res.
func (r *runner) flood(ctx context.Context, cl *client, res *PhaseResult) (stop func(), err error) {
	binID, err := cl.createBin(ctx)
	if err != nil {
		return nil, err
	}
	fctx, cancel := context.WithCancel(ctx)
	hc := newHTTPClient(r.o.c)
	ring := signedCaptures(time.Now())
	var taken atomic.Int64
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _, _ = closedLoop(fctx, math.MaxInt, r.o.c, func(ctx context.Context, i int) error {
			err := postCapture(ctx, hc, cl.base+"/inspect/"+binID, ring, i)
			if err == nil {
				taken.Add(1)
			}
			return err
		})
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
			hc.CloseIdleConnections()
			res.FloodCapturesPerSec = float64(taken.Load()) / time.Since(start).Seconds()
			r.logf("throughput (%s): the bin took %.0f captures/s meanwhile", res.Mode, res.FloodCapturesPerSec)
		})
	}, nil
}

// subscribeSink creates k webhooks pointing at the sink's counting endpoints.
func subscribeSink(ctx context.Context, cl *client, s *sink, k int) error {
	for i := range k {
		if _, err := cl.createWebhook(ctx, fmt.Sprintf("bench %d", i), fmt.Sprintf("%s/ok/%d", s.base, i)); err != nil {
			return err
		}
	}
	return nil
}

// publishRequest sends request i of a run publishing n events b at a time: one event per
// POST /events when b is 1, else one POST /events/batch.
func publishRequest(ctx context.Context, cl *client, i, b, n int) error {
	if b == 1 {
		return expect(cl.post(ctx, "/api/v1/events", eventBody(i, time.Now())))
	}
	from := i * b
	return expect(cl.post(ctx, "/api/v1/events/batch", batchBody(from, min(b, n-from), time.Now())))
}

// phaseFile names a file of one phase after base, the store and the phase: cpu.pprof →
// cpu.sqlite.batch.pprof; ext is the extension when base has none.
func (r *runner) phaseFile(base, mode, ext string) string {
	if i := strings.LastIndexByte(base, '.'); i > 0 {
		base, ext = base[:i], base[i:]
	}
	return fmt.Sprintf("%s.%s.%s%s", base, r.be.name, mode, ext)
}

// startProfile starts the CPU profile of one scenario (or throughput phase) when -cpuprofile
// is set and its execution trace when -trace is; the returned function (safe to call twice)
// stops them and writes the allocation profile when -memprofile is set. Files are named for
// the store and the scenario: cpu.pprof → cpu.sqlite.batch.pprof.
func (r *runner) startProfile(mode string) (func(), error) {
	name := func(base string) string { return r.phaseFile(base, mode, ".pprof") }
	var cpu *os.File
	if r.o.cpuprofile != "" {
		f, err := os.Create(name(r.o.cpuprofile))
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, err
		}
		cpu = f
	}
	var tr *os.File
	if r.o.trace != "" {
		f, err := os.Create(name(r.o.trace))
		if err == nil {
			if err = trace.Start(f); err != nil {
				f.Close()
			}
		}
		if err != nil {
			if cpu != nil {
				pprof.StopCPUProfile()
				cpu.Close()
			}
			return nil, err
		}
		tr = f
	}
	done := false
	return func() {
		if done {
			return
		}
		done = true
		if cpu != nil {
			pprof.StopCPUProfile()
			cpu.Close()
		}
		if tr != nil {
			trace.Stop()
			tr.Close()
		}
		if r.o.memprofile != "" {
			if f, err := os.Create(name(r.o.memprofile)); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}
	}, nil
}

// expect turns a publish answer other than 202 into an error.
func expect(status int, body []byte, err error) error {
	if err != nil {
		return err
	}
	if status != http.StatusAccepted {
		if len(body) > 300 {
			body = body[:300]
		}
		return fmt.Errorf("HTTP %d: %s", status, body)
	}
	return nil
}

// scrape reads one sample from the server's /metrics.
func scrape(ctx context.Context, cl *client, series string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cl.base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := cl.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("%s not found in /metrics", series)
}
