package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"math"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookrelay/hookrelay/internal/procstat"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
	"github.com/jackc/pgx/v5"
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

// flooded says whether a throughput phase runs beside a flooded inspector bin, and the
// server's per-bin capture limit then (0: none).
type flooded struct {
	on   bool
	rate float64
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
		inspectorRate: flood.rate})
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
	cpuStart, machineStart := h.cpuSeconds(), procstat.Machine()
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
	wctx, cancel := r.withLimit(ctx)
	res.Complete = s.wait(wctx)
	cancel()
	stopProfile()
	stopFlood()
	end := time.Now()
	if res.Complete {
		end = time.Unix(0, s.last.Load())
	}
	wall := time.Since(start).Seconds()
	res.CPUCores = (h.cpuSeconds() - cpuStart) / wall
	if machineStart > 0 {
		res.MachineCores = (procstat.Machine() - machineStart) / wall
	}
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
	var taken atomic.Int64
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _, _ = closedLoop(fctx, math.MaxInt, r.o.c, func(ctx context.Context, i int) error {
			err := postCapture(ctx, hc, cl.base+"/inspect/"+binID, i)
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

// startProfile starts the CPU profile of one scenario (or throughput phase) when -cpuprofile
// is set; the returned function (safe to call twice) stops it and writes the allocation
// profile when -memprofile is set. Files are named for the store and the scenario:
// cpu.pprof → cpu.sqlite.batch.pprof.
func (r *runner) startProfile(mode string) (func(), error) {
	name := func(base string) string {
		ext := ".pprof"
		if i := strings.LastIndexByte(base, '.'); i > 0 {
			base, ext = base[:i], base[i:]
		}
		return fmt.Sprintf("%s.%s.%s%s", base, r.be.name, mode, ext)
	}
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

// LatencyResult is scenario 2, and the healthy endpoint of scenario 3.
type LatencyResult struct {
	Rate         float64 `json:"rate"`
	Events       int     `json:"events"`
	SendSeconds  float64 `json:"send_seconds"`
	AchievedRate float64 `json:"achieved_rate"`
	Late         int     `json:"late"` // publishes that could not start on schedule (publisher saturated)
	Received     int64   `json:"received"`
	Complete     bool    `json:"complete"`
	P50ms        float64 `json:"p50_ms"`
	P90ms        float64 `json:"p90_ms"`
	P99ms        float64 `json:"p99_ms"`
	MaxMs        float64 `json:"max_ms"`
	PublishErrs  int     `json:"publish_errors"`
	// The first WarmupSeconds of publishing are not measured: connections, slow start and,
	// in the isolation scenario, the spilling of the endpoints that stopped answering (see
	// models/spill.go) settle then. WarmupMaxMs is the slowest event of that period.
	WarmupSeconds float64 `json:"warmup_seconds"`
	WarmupMaxMs   float64 `json:"warmup_max_ms"`
	// MachineCores is the CPU time every process on the machine used while the events were
	// published ÷ that time (see PhaseResult.MachineCores).
	MachineCores float64 `json:"machine_cores_busy"`
	// SpilledSeconds is how long the healthy webhook had been spilled when publishing ended,
	// 0 when it was not. On PostgreSQL a spill's events wait for takes, and before 58daae9 a
	// spill lasted as long as the stream (docs/performance.md, sections 3959264 and 58daae9),
	// so this tells a round's figures apart. Nil in the report of a bench built before it was
	// measured (a -against build).
	SpilledSeconds *float64 `json:"healthy_spilled_seconds,omitempty"`
	// StallSeconds is how long the records were held up halfway through (-stall-records).
	StallSeconds float64 `json:"records_stalled_seconds,omitempty"`
}

// IsolationResult is scenario 3.
type IsolationResult struct {
	Hanging  int            `json:"hanging_endpoints"`
	Timeout  string         `json:"delivery_timeout"`
	Healthy  *LatencyResult `json:"healthy"`
	HangHits int64          `json:"hanging_requests"`
	P99Ratio float64        `json:"p99_ratio"` // healthy p99 here ÷ p99 of scenario 2
}

// latency publishes at a fixed rate to one healthy webhook (plus hang dead ones) and
// measures publish-to-receipt on the healthy one.
func (r *runner) latency(ctx context.Context, hang int) (*LatencyResult, int64, error) {
	label := "latency"
	timeout := r.o.deliveryTimeout
	if hang > 0 {
		label, timeout = "isolation", r.o.hangTimeout
	}
	measured := int(r.o.rate * r.o.duration.Seconds())
	total := measured + int(r.o.rate*r.o.warmup.Seconds())
	r.logf("%s: %d events at %.0f/s to 1 healthy webhook and %d hanging (timeout %s), the first %s not measured",
		label, total, r.o.rate, hang, timeout, r.o.warmup)
	dsn, cleanup, err := r.be.fresh(ctx, label)
	if err != nil {
		return nil, 0, err
	}
	defer cleanup()
	s, err := startSink(int64(total), true)
	if err != nil {
		return nil, 0, err
	}
	defer s.close()
	_, cl, stop, err := r.start(dsn, timeout)
	if err != nil {
		return nil, 0, err
	}
	defer stop()
	healthy, err := cl.createWebhook(ctx, "healthy", s.base+"/ok/0")
	if err != nil {
		return nil, 0, err
	}
	for i := range hang {
		if _, err := cl.createWebhook(ctx, fmt.Sprintf("hanging %d", i), fmt.Sprintf("%s/hang/%d", s.base, i)); err != nil {
			return nil, 0, err
		}
	}
	stopProfile, err := r.startProfile(label)
	if err != nil {
		return nil, 0, err
	}
	defer stopProfile()
	res := &LatencyResult{Rate: r.o.rate, Events: measured, WarmupSeconds: r.o.warmup.Seconds()}
	measureFrom := time.Now().Add(r.o.warmup)
	var stalled chan error
	if r.o.stallRecords > 0 && r.be.name == "postgres" {
		stalled = make(chan error, 1)
		go func() {
			stalled <- stallRecords(ctx, dsn, time.Until(measureFrom.Add(r.o.duration/2)), r.o.stallRecords)
		}()
		res.StallSeconds = r.o.stallRecords.Seconds()
	}
	machineStart := procstat.Machine()
	elapsed, failures, late, firstErr := openLoop(ctx, r.o.rate, total, 512, func(ctx context.Context, i int, sched time.Time) error {
		return expect(cl.post(ctx, "/api/v1/events", eventBody(i, sched)))
	})
	if stalled != nil {
		if err := <-stalled; err != nil {
			return nil, 0, fmt.Errorf("%s: stall the records: %w", label, err)
		}
	}
	res.SendSeconds, res.Late, res.PublishErrs = elapsed.Seconds(), late, failures
	res.AchievedRate = float64(total) / elapsed.Seconds()
	if machineStart > 0 {
		res.MachineCores = (procstat.Machine() - machineStart) / elapsed.Seconds()
	}
	// Read after the machine's figure, which the probe's request would add to.
	since, spilled, err := cl.spilledSince(ctx, healthy)
	if err != nil {
		return nil, 0, err
	}
	spilledFor := 0.0
	if spilled {
		spilledFor = max(0, time.Since(since).Seconds())
	}
	res.SpilledSeconds = &spilledFor
	if failures > 0 {
		r.logf("%s: %d publishes failed, first: %v", label, failures, firstErr)
	}
	wctx, cancel := r.withLimit(ctx)
	res.Complete = s.wait(wctx)
	cancel()
	lat, warm := s.latencies(measureFrom)
	res.Received = int64(len(lat))
	res.WarmupMaxMs = ms(percentile(warm, 1))
	res.P50ms, res.P90ms, res.P99ms, res.MaxMs = ms(percentile(lat, 0.50)), ms(percentile(lat, 0.90)),
		ms(percentile(lat, 0.99)), ms(percentile(lat, 1))
	r.logf("%s: p50 %.1f ms, p99 %.1f ms, max %.1f ms (warm-up max %.1f ms)", label, res.P50ms, res.P99ms, res.MaxMs, res.WarmupMaxMs)
	return res, s.hung.Load(), nil
}

// stallRecords waits for after, then holds the attempts table locked against writes for
// hold: every record of an attempt waits, so the webhooks' windows fill with requests that
// were answered, as when the database is slow for a moment; publishes go on. What it tells
// is whether a healthy webhook's latency recovers afterwards (LatencyResult.SpilledSeconds).
func stallRecords(ctx context.Context, dsn string, after, hold time.Duration) error {
	if err := sleep(ctx, after); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, "LOCK TABLE attempts IN EXCLUSIVE MODE"); err != nil {
		return err
	}
	if err := sleep(ctx, hold); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// sleep waits for d, or returns ctx's error if it ends first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// BacklogResult is scenario 4.
type BacklogResult struct {
	Deliveries   int     `json:"deliveries"`
	Webhooks     int     `json:"webhooks"`
	SeedSeconds  float64 `json:"seed_seconds"` // queuing them through the store, server stopped
	DrainSeconds float64 `json:"drain_seconds"`
	DrainPerSec  float64 `json:"drain_per_sec"`
	Delivered    int64   `json:"delivered"`
	Complete     bool    `json:"complete"`
	PeakRSSMB    float64 `json:"peak_rss_mb"`
	BaseRSSMB    float64 `json:"base_rss_mb"` // the measured process before the server started
	RSSScope     string  `json:"rss_scope"`
	// From the server's /metrics at the end of the drain: how much of the memory is the Go
	// heap, and how much lies outside it (SQLite's page caches are allocated outside it).
	GoHeapInuseMB float64 `json:"go_heap_inuse_mb"`
	GoSysMB       float64 `json:"go_sys_mb"`
}

// backlog queues the deliveries while no dispatcher runs (the receiver is, in effect, down),
// then starts Hookrelay and measures the drain and the serving process's peak memory.
func (r *runner) backlog(ctx context.Context) (*BacklogResult, error) {
	k := r.o.k
	events := (r.o.backlog + k - 1) / k
	res := &BacklogResult{Deliveries: events * k, Webhooks: k}
	r.logf("backlog: queuing %d deliveries (%d events × %d webhooks) with the server stopped", res.Deliveries, events, k)
	dsn, cleanup, err := r.be.fresh(ctx, "backlog")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	s, err := startSink(int64(res.Deliveries), false)
	if err != nil {
		return nil, err
	}
	defer s.close()

	seedStart := time.Now()
	if err := seedBacklog(ctx, dsn, s.base, k, events); err != nil {
		return nil, err
	}
	res.SeedSeconds = time.Since(seedStart).Seconds()
	r.logf("backlog: queued in %.1fs; starting the server", res.SeedSeconds)

	if r.bin == "" {
		runtime.GC()
		debug.FreeOSMemory()
		resetPeakRSS()
		res.BaseRSSMB = mb(procStatus(os.Getpid(), "VmRSS"))
	}
	stopProfile, err := r.startProfile("backlog")
	if err != nil {
		return nil, err
	}
	defer stopProfile()
	start := time.Now()
	h, cl, stop, err := r.start(dsn, r.o.deliveryTimeout)
	if err != nil {
		return nil, err
	}
	res.RSSScope = h.rssScope()
	wctx, cancel := r.withLimit(ctx)
	res.Complete = s.wait(wctx)
	cancel()
	end := time.Now()
	if res.Complete {
		end = time.Unix(0, s.last.Load())
	}
	res.PeakRSSMB = mb(h.peakRSS())
	if v, err := scrape(ctx, cl, "go_memstats_heap_inuse_bytes"); err == nil {
		res.GoHeapInuseMB = v / (1 << 20)
	}
	if v, err := scrape(ctx, cl, "go_memstats_sys_bytes"); err == nil {
		res.GoSysMB = v / (1 << 20)
	}
	stop()
	res.Delivered = s.count.Load()
	res.DrainSeconds = end.Sub(start).Seconds()
	res.DrainPerSec = float64(res.Delivered) / res.DrainSeconds
	r.logf("backlog: %d delivered in %.1fs (%.0f/s), peak RSS %.0f MB (Go heap in use %.0f MB, Go runtime total %.0f MB at the end)",
		res.Delivered, res.DrainSeconds, res.DrainPerSec, res.PeakRSSMB, res.GoHeapInuseMB, res.GoSysMB)
	return res, nil
}

// seedBacklog writes webhooks and events straight through the store, in batches of 1000
// events per transaction, as the batch endpoint would but without a server running.
func seedBacklog(ctx context.Context, dsn, sinkBase string, k, events int) error {
	db, err := store.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	for i := range k {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		w := &models.Webhook{Name: fmt.Sprintf("bench %d", i), URL: fmt.Sprintf("%s/ok/%d", sinkBase, i),
			Secret: "whsec_" + base64.StdEncoding.EncodeToString(key), Events: models.EventMessageReceived, Enabled: true}
		if err := db.CreateWebhook(ctx, w); err != nil {
			return err
		}
	}
	et, _ := models.LookupEventType(models.EventMessageReceived)
	now := time.Now().UTC().Truncate(time.Second)
	payload, err := et.BuildBody(eventData(0, now), now)
	if err != nil {
		return fmt.Errorf("build body: %w", err)
	}
	const per = 1000
	in := make([]store.PublishInput, 0, per)
	for from := 0; from < events; from += per {
		in = in[:0]
		for range min(per, events-from) {
			in = append(in, store.PublishInput{Type: et.Name, Payload: payload, OccurredAt: now})
		}
		if _, err := db.Publish(ctx, in); err != nil {
			return fmt.Errorf("queue backlog: %w", err)
		}
	}
	return nil
}
