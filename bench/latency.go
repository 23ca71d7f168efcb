package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hookrelay/hookrelay/internal/procstat"
	"github.com/jackc/pgx/v5"
)

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
			return nil, 0, fmt.Errorf("stall the records: %w", err)
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
	if r.o.latencies != "" {
		if err := writeFile(r.phaseFile(r.o.latencies, label, ".tsv"), func(w io.Writer) error { return s.writeLatencies(w, measureFrom) }); err != nil {
			return nil, 0, fmt.Errorf("write the latencies: %w", err)
		}
	}
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

// writeFile creates name and has write fill it.
func writeFile(name string, write func(io.Writer) error) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
