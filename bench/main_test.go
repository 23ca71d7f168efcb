package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/signature"
)

// TestEveryScenarioRunsToCompletionAtToySizes runs the whole harness in-process, tiny, so the
// bench cannot rot: every scenario must deliver everything it published and report figures.
// It asserts counts only, never speed.
func TestEveryScenarioRunsToCompletionAtToySizes(t *testing.T) {
	rep, r := runScenarios(t, "-n", "60", "-c", "4", "-k", "2", "-batch", "25", "-rate", "100", "-duration", "500ms",
		"-hang", "3", "-hang-timeout", "1s", "-backlog", "300", "-workers", "16", "-limit", "1m")
	tp := r.Throughput
	for _, p := range []*PhaseResult{tp.Single, tp.Batch} {
		if p == nil || !p.Complete || p.Delivered != 120 || p.PublishErrors != 0 || p.DeliveriesPerSec <= 0 || p.AcceptedPerSec <= 0 {
			t.Errorf("throughput phase %+v: want 120 deliveries, complete, no publish errors", p)
		}
		// The server's own counter agrees with what the sink received.
		if p != nil && p.MetricsSucceeded != 120 {
			t.Errorf("%s: /metrics counted %v successful deliveries, want 120", p.Mode, p.MetricsSucceeded)
		}
	}
	// Keep-alive: the first phase opens the sink's connections, fewer than its deliveries.
	if p := tp.Single; p != nil && (p.ConnsOpened < 1 || p.ConnsOpened >= float64(p.Delivered)) {
		t.Errorf("single phase opened %v connections for %d deliveries, want at least one and fewer than the deliveries",
			p.ConnsOpened, p.Delivered)
	}
	if tp.Batch != nil && tp.Batch.Requests != 3 {
		t.Errorf("batch phase sent %d requests, want 3 (60 events by 25)", tp.Batch.Requests)
	}
	if tp.Single != nil && tp.Single.CPUCores <= 0 {
		t.Errorf("single phase: CPU cores used %v, want a positive figure", tp.Single.CPUCores)
	}
	// In one process on SQLite, neither the server's part nor a database server's is told.
	for _, p := range []*PhaseResult{tp.Single, tp.Batch} {
		if p != nil && (p.ServerCores != 0 || p.DatabaseCores != 0) {
			t.Errorf("%s phase: server %.2f and database %.2f cores, want neither measured", p.Mode, p.ServerCores, p.DatabaseCores)
		}
	}
	// The machine's busy time holds the process's own: apart by more than the counters' ticks
	// (/proc/stat counts each core in 10 ms ticks, on each of the four reads) would mean
	// /proc/stat was read wrong. A phase of a few ticks may read none at all, so the bound is
	// the process's less those ticks, not any positive figure.
	for _, p := range []*PhaseResult{tp.Single, tp.Batch} {
		if p == nil || p.DeliverSeconds <= 0 {
			continue
		}
		slack := tickSlack(rep.CPUs, p.DeliverSeconds)
		if p.MachineCores < 0 || p.MachineCores < p.CPUCores-slack || p.MachineCores > float64(rep.CPUs)+slack {
			t.Errorf("%s phase: %.2f cores busy on the machine, %.2f used by the process, of %d: want the machine's between the process's and the core count",
				p.Mode, p.MachineCores, p.CPUCores, rep.CPUs)
		}
	}
	if tp.CeilingBefore <= 0 || tp.CeilingBetween <= 0 || tp.CeilingAfter <= 0 ||
		tp.CeilingSingle != (tp.CeilingBefore+tp.CeilingBetween)/2 || tp.CeilingBatch != (tp.CeilingBetween+tp.CeilingAfter)/2 {
		t.Errorf("ceilings %v before, %v between and %v after; %v for single, %v for batch: want each phase to use the two around it",
			tp.CeilingBefore, tp.CeilingBetween, tp.CeilingAfter, tp.CeilingSingle, tp.CeilingBatch)
	}
	if tp.RatioSingle != tp.Single.DeliveriesPerSec/tp.CeilingSingle || tp.RatioBatch != tp.Batch.DeliveriesPerSec/tp.CeilingBatch {
		t.Errorf("ratios %v and %v do not use their phases' ceilings", tp.RatioSingle, tp.RatioBatch)
	}
	if tp.CeilingRPS <= 0 || tp.RatioBatch <= 0 {
		t.Errorf("ceiling %v, ratio %v: want both positive", tp.CeilingRPS, tp.RatioBatch)
	}
	for name, l := range map[string]*LatencyResult{"latency": r.Latency, "isolation": r.Isolation.Healthy} {
		if l == nil || !l.Complete || l.Events != 50 || l.Received != 50 || l.P50ms <= 0 || l.P99ms < l.P50ms || l.MaxMs < l.P99ms {
			t.Errorf("%s: %+v: want 50 of 50 received with ordered percentiles", name, l)
		}
		if l != nil && (l.MachineCores <= 0 || l.MachineCores > float64(rep.CPUs)+0.08/l.SendSeconds) {
			t.Errorf("%s: %.2f cores busy on the machine of %d: want a positive share of them", name, l.MachineCores, rep.CPUs)
		}
		if l != nil && (l.SpilledSeconds == nil || *l.SpilledSeconds < 0 || *l.SpilledSeconds > l.SendSeconds+1) {
			t.Errorf("%s: healthy webhook spilled for %v s of a %.1f s run: want a measure within it", name, l.SpilledSeconds, l.SendSeconds)
		}
	}
	if r.Isolation.HangHits == 0 {
		t.Error("isolation: the hanging endpoints were never called")
	}
	if b := r.Backlog; b == nil || !b.Complete || b.Delivered != 300 || b.PeakRSSMB <= 0 {
		t.Errorf("backlog %+v: want 300 delivered and a peak RSS", b)
	}
	// Every capture stored (up to the 500 a bin keeps), and with a viewer, pushed and verified.
	if in := r.Inspector; in == nil || in.Unwatched == nil || in.Watched == nil || in.CeilingRPS <= 0 {
		t.Errorf("inspector %+v: want both phases and a ceiling", in)
	} else {
		for _, p := range []*CapturePhase{in.Unwatched, in.Watched} {
			if p.Failed != 0 || p.Stored != 60 || p.PerSec <= 0 || p.Ratio != p.PerSec/in.CeilingRPS {
				t.Errorf("inspector phase %+v: want 60 stored, no failures, a rate and its ratio", p)
			}
			slack := tickSlack(rep.CPUs, p.Seconds)
			if used := p.CPUMicros * p.PerSec / 1e6; p.MachineCores < 0 || p.MachineCores < used-slack || p.MachineCores > float64(rep.CPUs)+slack {
				t.Errorf("inspector phase: %.2f cores busy on the machine of %d, %.2f used by the process: want the machine's between the process's and the core count",
					p.MachineCores, rep.CPUs, used)
			}
		}
		if in.Unwatched.Pushed != 0 || in.Watched.Pushed != 60 || in.Watched.Valid != 60 {
			t.Errorf("pushed %d unwatched, %d watched of which %d verified; want 0, 60 and 60",
				in.Unwatched.Pushed, in.Watched.Pushed, in.Watched.Valid)
		}
	}
	if f := r.Flood; f == nil || f.Quiet == nil || !f.Quiet.Complete || f.QuietAfter == nil || !f.QuietAfter.Complete ||
		f.QuietPerSec != (f.Quiet.DeliveriesPerSec+f.QuietAfter.DeliveriesPerSec)/2 {
		t.Errorf("flood %+v: want both quiet phases complete, and their mean", f)
	} else {
		for _, p := range []struct {
			phase *PhaseResult
			ratio float64
		}{{f.Limited, f.LimitedRatio}, {f.Unlimited, f.UnlimitedRatio}, {f.NoYield, f.NoYieldRatio}} {
			if p.phase == nil || !p.phase.Complete || p.phase.Delivered != 120 || p.phase.FloodCapturesPerSec <= 0 ||
				p.ratio != p.phase.DeliveriesPerSec/f.QuietPerSec {
				t.Errorf("flooded phase %+v (ratio %v): want it complete beside a bin that took captures, and its ratio", p.phase, p.ratio)
			}
		}
	}
	var out bytes.Buffer
	printTable(&out, rep)
	for _, want := range []string{"events accepted/s (single", "deliveries/s ÷ ceiling (batch;", "ingest→receipt p50 ms", "events published/s (100/s asked for", "ingest→receipt p99 ms",
		"healthy p99 ÷ latency p99", "healthy webhook spilled when publishing ended", "drain deliveries/s", "peak RSS MB", "captures/s ÷ loopback ceiling (watched", "deliveries/s flooded ÷ quiet, the bin unlimited", "quiet (batches; mean of first and last)", "captures never yielding (--inspector-busy-rate 0)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestPercentileIsNearestRank(t *testing.T) {
	d := []time.Duration{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5}, {0.9, 9}, {0.99, 10}, {1, 10}, {0.01, 1}} {
		t.Run(fmt.Sprintf("p%v", c.q*100), func(t *testing.T) {
			if got := percentile(d, c.q); got != c.want {
				t.Errorf("p%v = %v, want %v", c.q*100, got, c.want)
			}
		})
	}
	if percentile(nil, 0.5) != 0 {
		t.Error("percentile of nothing should be 0")
	}
}

func TestOptionsRejectNonsense(t *testing.T) {
	for _, args := range [][]string{
		{"-n", "0"}, {"-batch", "1001"}, {"-rate", "0"}, {"-scenarios", "throughput,speed"}, {"-backlog", "0"},
		{"-binary", "build", "-cpuprofile", "x"}, {"extra"}, {"-runs", "0"}, {"-runs", "3", "-cpuprofile", "x"},
		{"-binary", "build", "-trace", "x"}, {"-runs", "3", "-trace", "x"}, {"-against", "/tmp/other", "-trace", "x"},
		{"-against", "/tmp/other", "-binary", "build"}, {"-runs", "2", "-scenarios", "soak"},
		{"-stall-records", "-1s"}, {"-duration", "1s", "-stall-records", "500ms"}, {"-runs", "3", "-latencies", "x"},
	} {
		if _, err := parseOptions(args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

// TestMain lets the test binary serve as the ceiling's client process, as the bench's own
// binary does when it starts itself again (ceilingInChild).
func TestMain(m *testing.M) {
	if runCeilingChild(context.Background()) {
		return
	}
	os.Exit(m.Run())
}

// The ceiling measured with its client in a process of its own sends every request and
// reports a rate, as the in-process one does; the sink counts them all either way.
func TestCeilingClientInItsOwnProcess(t *testing.T) {
	for _, own := range []bool{false, true} {
		rate, err := ceiling(context.Background(), 200, 4, own)
		if err != nil || rate <= 0 {
			t.Errorf("own process %v: rate %v, %v; want a positive rate", own, rate, err)
		}
	}
}

// A short soak against the unreliable receiver delivers every event to every webhook despite
// the failures, timeouts and resets, and samples the server as it goes.
func TestSoakDeliversEverythingThroughAnUnreliableReceiver(t *testing.T) {
	_, r := runScenarios(t, "-scenarios", "soak", "-soak-duration", "4s", "-soak-every", "1s", "-soak-rate", "50",
		"-workers", "32", "-limit", "2m")
	if r.Soak == nil {
		t.Fatal("soak: no result")
	}
	s := r.Soak
	if !s.Complete || s.Published < 100 || s.Delivered != s.Published*int64(s.Webhooks) {
		t.Errorf("published %d, delivered %d pairs to %d webhooks", s.Published, s.Delivered, s.Webhooks)
	}
	if s.Failed == 0 || s.TimedOut == 0 || s.Reset == 0 {
		t.Errorf("the receiver failed %d, left hanging %d, reset %d: every kind of failure should occur", s.Failed, s.TimedOut, s.Reset)
	}
	if len(s.Samples) < 5 || s.Samples[0].Goroutines == 0 || s.Samples[0].OpenFDs == 0 {
		t.Errorf("samples %+v", s.Samples)
	}
}

// The inspector scenario measures verified captures: its payload must be one the inspector
// finds complete, or the figure would be of a cheaper path (an early "problems" verdict).
func TestCapturePayloadIsADeliveredPayload(t *testing.T) {
	body := capturePayload(7, time.Date(2026, 12, 4, 1, 2, 3, 0, time.UTC))
	event, known, problems := models.CheckDelivered(body)
	if event != "message.received" || !known || len(problems) != 0 {
		t.Fatalf("CheckDelivered(%s) = %q, %v, %v; want message.received, known, no problems", body, event, known, problems)
	}
	if n := len(body); n < 900 || n > 1200 {
		t.Errorf("payload is %d bytes; want about 1 KiB", n)
	}
}

// The senders of the inspector scenario post webhooks built before the phase: each must be
// one the bin verifies as Hookrelay's (its signature over its own body, a timestamp the
// inspector reads), and they must differ, as a stream of messages does.
func TestSignedCapturesAreHookrelaysWebhooks(t *testing.T) {
	now := time.Date(2026, 12, 7, 19, 0, 0, 0, time.UTC)
	ring := signedCaptures(now)
	if len(ring) != captureRing {
		t.Fatalf("%d webhooks, want %d", len(ring), captureRing)
	}
	seen := map[string]bool{}
	for i, sc := range ring {
		h := http.Header{}
		for _, kv := range sc.headers {
			h[kv[0]] = []string{kv[1]}
		}
		if sig := h.Get("X-Webhook-Signature"); !signature.VerifyHexHMAC(binSecret, sc.body, sig) {
			t.Fatalf("webhook %d: signature %q does not verify its body", i, sig)
		}
		if ts := h.Get("X-Webhook-Timestamp"); ts != models.FormatTimestamp(now) {
			t.Fatalf("webhook %d: timestamp %q, want %q", i, ts, models.FormatTimestamp(now))
		}
		if h.Get("X-Webhook-Event") != "message.received" {
			t.Fatalf("webhook %d: event %q", i, h.Get("X-Webhook-Event"))
		}
		if seen[string(sc.body)] {
			t.Fatalf("webhook %d repeats an earlier body", i)
		}
		seen[string(sc.body)] = true
	}
}

// flat passes steady samples and names what grew in leaking ones; a run too short to tell
// a leak from the requests of the moment is not judged.
func TestFlatJudgesOnlyWhatALeakWouldShow(t *testing.T) {
	series := func(every float64, n int, at func(i int) SoakSample) []SoakSample {
		out := make([]SoakSample, n)
		for i := range out {
			out[i] = at(i)
			out[i].AtSeconds = every * float64(i)
		}
		return out
	}
	steady := series(60, 12, func(i int) SoakSample {
		return SoakSample{Goroutines: float64(60 + 40*(i%2)), RSSMB: 150 + float64(i), OpenFDs: 80, Pending: 40}
	})
	if ok, why := flat(steady); !ok {
		t.Errorf("steady samples judged not flat: %s", why)
	}
	leaking := series(60, 12, func(i int) SoakSample {
		return SoakSample{Goroutines: float64(60 + 30*i), RSSMB: 150 + 20*float64(i), OpenFDs: 80, Pending: 40}
	})
	if ok, why := flat(leaking); ok || !strings.Contains(why, "goroutines") || !strings.Contains(why, "RSS MB") {
		t.Errorf("leaking samples judged %v: %q; want goroutines and RSS named", ok, why)
	}
	short := series(1, 6, func(i int) SoakSample { return SoakSample{Goroutines: float64(60 + 100*i)} })
	if ok, why := flat(short); !ok || !strings.Contains(why, "too short") {
		t.Errorf("a 6-second run judged %v: %q; want it left unjudged", ok, why)
	}
}

// On PostgreSQL on this machine, each phase counts its server's CPU too: a part of the
// machine's busy time beside the bench's own, and in the table per delivery and per capture.
func TestPhasesCountPostgreSQLsCPU(t *testing.T) {
	url := os.Getenv(storetest.PostgresEnv)
	if url == "" {
		t.Skipf("%s is not set", storetest.PostgresEnv)
	}
	rep, r := runScenarios(t, "-db", url, "-scenarios", "throughput,inspector", "-n", "1000", "-c", "8", "-k", "2", "-batch", "25", "-limit", "1m")
	for _, p := range []*PhaseResult{r.Throughput.Single, r.Throughput.Batch} {
		// Twice the counters' ticks: PostgreSQL's figure sums the ticks of many processes.
		slack := 2 * tickSlack(rep.CPUs, p.DeliverSeconds)
		if p.DatabaseCores <= 0 || p.CPUCores+p.DatabaseCores > p.MachineCores+slack {
			t.Errorf("%s phase: PostgreSQL %.2f cores, the bench %.2f, the machine %.2f: want PostgreSQL's positive and both within the machine's",
				p.Mode, p.DatabaseCores, p.CPUCores, p.MachineCores)
		}
	}
	for _, p := range []*CapturePhase{r.Inspector.Unwatched, r.Inspector.Watched} {
		// The bench's and PostgreSQL's shares, per capture, back to cores.
		bench, database := p.CPUMicros*p.PerSec/1e6, p.DatabaseMicros*p.PerSec/1e6
		if slack := 2 * tickSlack(rep.CPUs, p.Seconds); p.DatabaseMicros <= 0 || bench+database > p.MachineCores+slack {
			t.Errorf("inspector phase: PostgreSQL %.0f µs per capture, %.2f cores with the bench's %.2f, the machine %.2f: want PostgreSQL's measured and both within the machine's",
				p.DatabaseMicros, database, bench, p.MachineCores)
		}
	}
	var out bytes.Buffer
	printTable(&out, rep)
	for _, want := range []string{"CPU µs per delivery, PostgreSQL (single)", "CPU µs per capture, PostgreSQL (watched"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

// tickSlack is how far apart two CPU shares over a phase of seconds may read for the counters'
// resolution alone: four reads (two of each figure) of 10 ms ticks on each core.
func tickSlack(cpus int, seconds float64) float64 { return 0.04 * float64(cpus) / seconds }

// Each phase's CPU per delivery and per capture is split by whose it was where it was measured,
// and a part that was not measured gets no line.
func TestTableSplitsCPUByWhoseItWas(t *testing.T) {
	rep := &Report{CPUs: 2, Runs: []*Run{{Store: "postgres",
		Throughput: &ThroughputResult{Events: 100, Webhooks: 4, Concurrency: 8, BatchSize: 10,
			Single: &PhaseResult{Mode: "single", Complete: true, DeliveriesPerSec: 10000, CPUCores: 1.2, ServerCores: 0.8, DatabaseCores: 0.5},
			Batch:  &PhaseResult{Mode: "batch", Complete: true, DeliveriesPerSec: 20000, CPUCores: 1.2}},
		Inspector: &InspectorResult{Captures: 100, Concurrency: 8,
			Unwatched: &CapturePhase{PerSec: 1000, CPUMicros: 120, ServerMicros: 80, DatabaseMicros: 40, MachineCores: 1.6},
			Watched:   &CapturePhase{PerSec: 1000, CPUMicros: 130}}}}}
	lines := map[string]string{}
	for _, r := range rows(rep) {
		lines[r.metric] = r.value
	}
	for metric, want := range map[string]string{
		"CPU µs per delivery, bench + server (single)":                                            "120",
		"CPU µs per delivery, of them the Hookrelay process (single)":                             "80",
		"CPU µs per delivery, PostgreSQL (single)":                                                "50",
		"CPU µs per delivery, bench + server (batch)":                                             "60",
		"CPU µs per capture, of them the Hookrelay process (unwatched, 100 signed captures, c=8)": "80",
		"CPU µs per capture, PostgreSQL (unwatched, 100 signed captures, c=8)":                    "40",
		"CPU cores busy on the machine, every process (unwatched, 100 signed captures, c=8)":      "1.60 of 2",
	} {
		if got := lines[metric]; got != want {
			t.Errorf("%q = %q, want %q", metric, got, want)
		}
	}
	for _, absent := range []string{"CPU µs per delivery, PostgreSQL (batch)", "CPU µs per delivery, of them the Hookrelay process (batch)",
		"CPU µs per capture, PostgreSQL (watched by a WebSocket, 100 signed captures, c=8)",
		"CPU cores busy on the machine, every process (watched by a WebSocket, 100 signed captures, c=8)"} {
		if v, ok := lines[absent]; ok {
			t.Errorf("%q = %q, want no line for what was not measured", absent, v)
		}
	}
}

// -cpuprofile and -trace write a file per phase, named for the store and the phase, each one
// its tool reads.
func TestProfilesAndTracesAreWrittenPerPhase(t *testing.T) {
	dir := t.TempDir()
	runScenarios(t, "-scenarios", "inspector", "-n", "50", "-c", "4", "-limit", "1m",
		"-cpuprofile", filepath.Join(dir, "cpu.pprof"), "-trace", filepath.Join(dir, "run.trace"))
	for _, name := range []string{"cpu.sqlite.inspector_unwatched.pprof", "cpu.sqlite.inspector_watched.pprof",
		"run.sqlite.inspector_unwatched.trace", "run.sqlite.inspector_watched.trace"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, ".trace") {
			// An execution trace starts with its format's header.
			if !bytes.HasPrefix(b, []byte("go 1.")) {
				t.Errorf("%s starts %q, not an execution trace", name, b[:min(len(b), 16)])
			}
			continue
		}
		// A profile is a gzipped protocol buffer.
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if raw, err := io.ReadAll(zr); err != nil || len(raw) == 0 {
			t.Errorf("%s: %d bytes unzipped, %v", name, len(raw), err)
		}
	}
}

// runScenarios runs the bench with args on one store and fails the test on any scenario's error.
func runScenarios(t *testing.T, args ...string) (*Report, *Run) {
	t.Helper()
	o, err := parseOptions(args)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) != 1 {
		t.Fatalf("%d runs, want 1", len(rep.Runs))
	}
	r := rep.Runs[0]
	if len(r.Errors) > 0 {
		t.Fatalf("scenario errors: %v", r.Errors)
	}
	return rep, r
}

// The same figures are judged by each store's own targets: SQLite's for every rate and ratio,
// PostgreSQL's for batches (0.30 of the ceiling) and the relative figures only.
func TestEachStoreIsJudgedByItsOwnTargets(t *testing.T) {
	run := func(store string) *Run {
		return &Run{Store: store,
			Throughput: &ThroughputResult{Events: 100, Webhooks: 4, Concurrency: 8, BatchSize: 10, CeilingSingle: 40000, CeilingBatch: 40000,
				Single: &PhaseResult{Mode: "single", Complete: true, AcceptedPerSec: 2500, DeliveriesPerSec: 10000},
				Batch:  &PhaseResult{Mode: "batch", Complete: true, AcceptedPerSec: 3000, DeliveriesPerSec: 13000}},
			Latency:   &LatencyResult{Complete: true, P99ms: 6},
			Isolation: &IsolationResult{Healthy: &LatencyResult{Complete: true, P99ms: 9}, P99Ratio: 1.5},
			Inspector: &InspectorResult{Captures: 100, Concurrency: 8, CeilingRPS: 40000,
				Unwatched: &CapturePhase{PerSec: 10000, Ratio: 0.25}},
			Flood: &FloodResult{Quiet: &PhaseResult{Complete: true, DeliveriesPerSec: 100}, QuietAfter: &PhaseResult{Complete: true, DeliveriesPerSec: 100},
				QuietPerSec: 100, Unlimited: &PhaseResult{Complete: true, DeliveriesPerSec: 95}, UnlimitedRatio: 0.95}}
	}
	rep := &Report{CPUs: 2, Runs: []*Run{run("sqlite"), run("postgres")}}
	type verdict struct {
		target string
		met    string // "yes", "NO", or "" for no judgement
	}
	got := map[string]verdict{}
	for _, r := range rows(rep) {
		met := ""
		if r.met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*r.met]
		}
		got[r.store+" "+r.scenario+": "+r.metric] = verdict{r.target, met}
	}
	for metric, want := range map[string]verdict{
		"sqlite throughput: deliveries/s ÷ ceiling (single; of the ceiling measured around it)":   {"≥ 0.35", "NO"},
		"sqlite throughput: deliveries/s ÷ ceiling (batch; of the ceiling measured around it)":    {"≥ 0.35", "NO"},
		"sqlite throughput: events accepted/s (single, 100×4, c=8)":                               {"", ""},
		"sqlite throughput: events accepted/s (batch of 10, 100×4, c=8)":                          {"≥ 10,000", "NO"},
		"sqlite latency: ingest→receipt p99 ms":                                                   {"p99 ≤ 10 ms", "yes"},
		"sqlite inspector: captures/s ÷ loopback ceiling (unwatched, 100 signed captures, c=8)":   {"≥ 0.40", "NO"},
		"sqlite isolation: healthy p99 ÷ latency p99 (0 hanging, timeout )":                       {"≤ 2", "yes"},
		"sqlite flood: deliveries/s flooded ÷ quiet, the bin unlimited (--inspector-rate 0)":      {"≥ 0.90", "yes"},
		"postgres throughput: deliveries/s ÷ ceiling (single; of the ceiling measured around it)": {"", ""},
		"postgres throughput: deliveries/s ÷ ceiling (batch; of the ceiling measured around it)":  {"≥ 0.30", "yes"},
		"postgres throughput: events accepted/s (single, 100×4, c=8)":                             {"", ""},
		"postgres latency: ingest→receipt p99 ms":                                                 {"", ""},
		"postgres inspector: captures/s ÷ loopback ceiling (unwatched, 100 signed captures, c=8)": {"", ""},
		"postgres isolation: healthy p99 ÷ latency p99 (0 hanging, timeout )":                     {"≤ 2", "yes"},
		"postgres flood: deliveries/s flooded ÷ quiet, the bin unlimited (--inspector-rate 0)":    {"≥ 0.90", "yes"},
	} {
		if v, ok := got[metric]; !ok || v != want {
			t.Errorf("%q: target %q, met %q; want %q, %q (found: %v)", metric, v.target, v.met, want.target, want.met, ok)
		}
	}
}

// -latencies writes a file per latency scenario with a line for every event received, in the
// order of publishing: the measured ones from 0 ms on, the warm-up's before, and each one's
// latency as the scenario measured it.
func TestLatenciesAreWrittenPerScenarioInTheOrderOfPublishing(t *testing.T) {
	dir := t.TempDir()
	_, r := runScenarios(t, "-scenarios", "latency,isolation", "-rate", "100", "-duration", "500ms", "-warmup", "200ms",
		"-hang", "2", "-hang-timeout", "1s", "-limit", "1m", "-latencies", filepath.Join(dir, "lat.tsv"))
	for name, l := range map[string]*LatencyResult{"latency": r.Latency, "isolation": r.Isolation.Healthy} {
		b, err := os.ReadFile(filepath.Join(dir, "lat.sqlite."+name+".tsv"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if lines[0] != "published_ms\tlatency_ms" {
			t.Fatalf("%s: header %q", name, lines[0])
		}
		var measured, warm int
		var slowest float64
		last := math.Inf(-1)
		for _, line := range lines[1:] {
			var at, lat float64
			if _, err := fmt.Sscanf(line, "%f\t%f", &at, &lat); err != nil {
				t.Fatalf("%s: line %q: %v", name, line, err)
			}
			if at < last || lat <= 0 {
				t.Fatalf("%s: line %q after a publish at %.3f ms: want publishes in order and positive latencies", name, line, last)
			}
			last = at
			if at >= 0 {
				measured++
				slowest = max(slowest, lat)
			} else {
				warm++
			}
		}
		if int64(measured) != l.Received || warm != 20 || math.Abs(slowest-l.MaxMs) > 0.002 {
			t.Errorf("%s: %d measured lines (slowest %.3f ms) and %d of the warm-up; the scenario received %d (slowest %.3f ms) after a warm-up of 20",
				name, measured, slowest, warm, l.Received, l.MaxMs)
		}
	}
}
