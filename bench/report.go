package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// row is one line of the table: a figure, and its store's target for it when there is one.
type row struct {
	store, scenario, metric, value, target string
	met                                    *bool
}

func check(ok bool) *bool { return &ok }

// rows flattens a report into table lines, judging each figure against the targets set for
// its store (targetsFor).
func rows(rep *Report) []row {
	var out []row
	for _, r := range rep.Runs {
		judged := targetsFor(r.Store)
		add := func(scenario, metric, value, target string, met *bool) {
			if !judged[target] {
				target, met = "", nil
			}
			out = append(out, row{r.Store, scenario, metric, value, target, met})
		}
		// cpuSplit adds a line per measured part of a phase's CPU per delivery or capture:
		// the bench's and the server's together, the Hookrelay process's, PostgreSQL's.
		cpuSplit := func(scenario, per, what string, total, server, database float64) {
			for _, c := range []struct {
				whose  string
				micros float64
			}{{"bench + server", total}, {"of them the Hookrelay process", server}, {"PostgreSQL", database}} {
				if c.micros > 0 {
					add(scenario, "CPU µs per "+per+", "+c.whose+" "+what, fmt.Sprintf("%.0f", c.micros), "", nil)
				}
			}
		}
		if t := r.Throughput; t != nil {
			for _, p := range []*PhaseResult{t.Single, t.Batch} {
				if p == nil {
					continue
				}
				what := fmt.Sprintf("(%s, %d×%d, c=%d)", p.Mode, t.Events, t.Webhooks, t.Concurrency)
				if p.Mode == "batch" {
					what = fmt.Sprintf("(batch of %d, %d×%d, c=%d)", t.BatchSize, t.Events, t.Webhooks, t.Concurrency)
				}
				if p.Mode == "batch" {
					// The batch endpoint is how a publisher gets past 10,000 events a second; one
					// event per request is judged by its deliveries.
					add("throughput", "events accepted/s "+what, num(p.AcceptedPerSec), "≥ 10,000", check(p.AcceptedPerSec >= 10000))
				} else {
					add("throughput", "events accepted/s "+what, num(p.AcceptedPerSec), "", nil)
				}
				add("throughput", "deliveries/s "+what+completeness(p.Complete, p.Delivered), num(p.DeliveriesPerSec), "≥ 10,000",
					check(p.Complete && p.DeliveriesPerSec >= 10000))
				add("throughput", "CPU cores used by bench + server ("+p.Mode+")", fmt.Sprintf("%.2f of %d", p.CPUCores, rep.CPUs), "", nil)
				if p.MachineCores > 0 {
					add("throughput", "CPU cores busy on the machine, every process ("+p.Mode+")", fmt.Sprintf("%.2f of %d", p.MachineCores, rep.CPUs), "", nil)
				}
				add("throughput", fmt.Sprintf("connections opened to the sink for %s deliveries (%s)", num(float64(p.Delivered)), p.Mode),
					num(p.ConnsOpened), "", nil)
				if p.DeliveriesPerSec > 0 {
					// Steadier than the rate when other work shares the machine.
					micros := func(cores float64) float64 { return cores / p.DeliveriesPerSec * 1e6 }
					cpuSplit("throughput", "delivery", "("+p.Mode+")", micros(p.CPUCores), micros(p.ServerCores), micros(p.DatabaseCores))
				}
				ceil := t.CeilingSingle
				if p.Mode == "batch" {
					ceil = t.CeilingBatch
				}
				if ceil > 0 {
					target, least := "≥ 0.35", 0.35
					if p.Mode == "batch" && r.Store == "postgres" {
						target, least = "≥ 0.30", 0.30
					}
					add("throughput", fmt.Sprintf("deliveries/s ÷ ceiling (%s; of the ceiling measured around it)", p.Mode),
						fmt.Sprintf("%.2f (of %s)", p.DeliveriesPerSec/ceil, num(ceil)), target, check(p.DeliveriesPerSec/ceil >= least))
				}
			}
			if t.CeilingRPS > 0 {
				measured := num(t.CeilingBefore) + ", " + num(t.CeilingAfter)
				what := "before and after"
				if t.CeilingBetween > 0 {
					measured = num(t.CeilingBefore) + ", " + num(t.CeilingBetween) + ", " + num(t.CeilingAfter)
					what = "before, between and after the phases"
				}
				add("throughput", fmt.Sprintf("loopback ceiling requests/s (c=%d, 1 KiB, client %s; mean of %s)", t.Concurrency, t.CeilingClient, what),
					fmt.Sprintf("%s (%s)", num(t.CeilingRPS), measured), "", nil)
			}
		}
		if l := r.Latency; l != nil {
			latencyRows(add, "latency", l, "p99 ≤ 10 ms", check(l.Complete && l.P99ms <= 10))
		}
		if i := r.Isolation; i != nil && i.Healthy != nil {
			latencyRows(add, "isolation", i.Healthy, "", nil)
			if i.P99Ratio > 0 {
				add("isolation", fmt.Sprintf("healthy p99 ÷ latency p99 (%d hanging, timeout %s)", i.Hanging, i.Timeout),
					fmt.Sprintf("%.2f", i.P99Ratio), "≤ 2", check(i.Healthy.Complete && i.P99Ratio <= 2))
			}
		}
		if b := r.Backlog; b != nil {
			add("backlog", fmt.Sprintf("queued %d deliveries (store, server stopped) in s", b.Deliveries), fmt.Sprintf("%.1f", b.SeedSeconds), "", nil)
			add("backlog", "drain deliveries/s"+completeness(b.Complete, b.Delivered), num(b.DrainPerSec), "≥ 10,000", check(b.Complete && b.DrainPerSec >= 10000))
			target, met := "", (*bool)(nil)
			if b.Deliveries >= 1000000 {
				target, met = "≤ 200 MB", check(b.PeakRSSMB <= 200)
			}
			add("backlog", "peak RSS MB of the "+b.RSSScope, fmt.Sprintf("%.0f", b.PeakRSSMB), target, met)
		}
		for _, rr := range r.Replicas {
			what := fmt.Sprintf("(%d replicas, %d×%d, batches of %d)", rr.Replicas, rr.Events, rr.Webhooks, rr.BatchSize)
			add("replicas", "events accepted/s "+what, num(rr.AcceptedPerSec), "", nil)
			add("replicas", "deliveries/s "+what+completeness(rr.Complete, rr.Delivered), num(rr.DeliveriesPerSec), "", nil)
		}
		for _, e := range r.Errors {
			add("error", e, "", "", nil)
		}
		if in := r.Inspector; in != nil {
			for _, p := range []struct {
				name  string
				phase *CapturePhase
			}{{"unwatched", in.Unwatched}, {"watched by a WebSocket", in.Watched}} {
				if p.phase == nil {
					continue
				}
				what := fmt.Sprintf("(%s, %d signed captures, c=%d)", p.name, in.Captures, in.Concurrency)
				add("inspector", "captures/s "+what, num(p.phase.PerSec), "", nil)
				cpuSplit("inspector", "capture", what, p.phase.CPUMicros, p.phase.ServerMicros, p.phase.DatabaseMicros)
				if p.phase.MachineCores > 0 {
					add("inspector", "CPU cores busy on the machine, every process "+what, fmt.Sprintf("%.2f of %d", p.phase.MachineCores, rep.CPUs), "", nil)
				}
				if in.CeilingRPS > 0 {
					add("inspector", "captures/s ÷ loopback ceiling "+what, fmt.Sprintf("%.2f", p.phase.Ratio), "≥ 0.40",
						check(p.phase.Failed == 0 && p.phase.Ratio >= 0.40))
				}
				if p.phase == in.Watched {
					add("inspector", "pushed live, of them verified (signature, timestamp and payload)",
						fmt.Sprintf("%d, %d", p.phase.Pushed, p.phase.Valid), "all", check(p.phase.Valid == int64(in.Captures)))
				}
			}
		}
		if f := r.Flood; f != nil && f.Quiet != nil && f.QuietAfter != nil {
			add("flood", "deliveries/s, quiet (batches; mean of first and last)"+completeness(f.Quiet.Complete, f.Quiet.Delivered)+completeness(f.QuietAfter.Complete, f.QuietAfter.Delivered),
				fmt.Sprintf("%s (%s, %s)", num(f.QuietPerSec), num(f.Quiet.DeliveriesPerSec), num(f.QuietAfter.DeliveriesPerSec)), "", nil)
			for _, p := range []struct {
				what   string
				phase  *PhaseResult
				ratio  float64
				target bool
			}{{fmt.Sprintf("the bin limited to %d/s (the default)", defaultInspectorRate), f.Limited, f.LimitedRatio, true},
				{"the bin unlimited (--inspector-rate 0)", f.Unlimited, f.UnlimitedRatio, true},
				{"the bin unlimited, captures never yielding (--inspector-busy-rate 0)", f.NoYield, f.NoYieldRatio, false}} {
				if p.phase == nil {
					continue
				}
				add("flood", "deliveries/s, one bin flooded, "+p.what+completeness(p.phase.Complete, p.phase.Delivered),
					num(p.phase.DeliveriesPerSec), "", nil)
				add("flood", "captures/s the bin took, "+p.what, num(p.phase.FloodCapturesPerSec), "", nil)
				if !p.target {
					add("flood", "deliveries/s flooded ÷ quiet, "+p.what, fmt.Sprintf("%.2f", p.ratio), "", nil)
					continue
				}
				add("flood", "deliveries/s flooded ÷ quiet, "+p.what, fmt.Sprintf("%.2f", p.ratio), "≥ 0.90",
					check(p.phase.Complete && p.ratio >= 0.90))
			}
		}
		if s := r.Soak; s != nil {
			add("soak", fmt.Sprintf("published %s events in %.0f s to %d webhooks; receiver answered 500 to %s, left %s hanging, reset %s",
				num(float64(s.Published)), s.Seconds, s.Webhooks, num(float64(s.Failed)), num(float64(s.TimedOut)), num(float64(s.Reset))),
				num(float64(s.Delivered)), "all", check(s.Complete))
			for _, smp := range s.Samples {
				add("soak", fmt.Sprintf("at %4.0f s: goroutines, RSS MB (Go heap, Go total), open fds, pending", smp.AtSeconds),
					fmt.Sprintf("%.0f, %.0f (%.0f, %.0f), %.0f, %.0f", smp.Goroutines, smp.RSSMB, smp.GoHeapMB, smp.GoSysMB, smp.OpenFDs, smp.Pending), "", nil)
			}
			add("soak", "flat after the warm-up ("+s.Verdict+")", map[bool]string{true: "yes", false: "no"}[s.Flat], "yes", check(s.Flat))
		}
	}
	return out
}

func latencyRows(add func(string, string, string, string, *bool), scenario string, l *LatencyResult, target string, met *bool) {
	add(scenario, fmt.Sprintf("events published/s (%.0f/s asked for, %d events)", l.Rate, l.Events), num(l.AchievedRate), "", nil)
	add(scenario, "ingest→receipt p50 ms", fmt.Sprintf("%.1f", l.P50ms), "", nil)
	add(scenario, "ingest→receipt p99 ms"+completeness(l.Complete, l.Received), fmt.Sprintf("%.1f", l.P99ms), target, met)
	add(scenario, "ingest→receipt max ms", fmt.Sprintf("%.1f", l.MaxMs), "", nil)
	if l.MachineCores > 0 {
		add(scenario, "CPU cores busy on the machine, every process, while publishing", fmt.Sprintf("%.2f", l.MachineCores), "", nil)
	}
	if l.StallSeconds > 0 {
		add(scenario, "records of attempts held up halfway through, for s (-stall-records)", fmt.Sprintf("%g", l.StallSeconds), "", nil)
	}
	if l.SpilledSeconds != nil {
		add(scenario, "healthy webhook spilled when publishing ended, for how long in s (0: not spilled)", fmt.Sprintf("%.1f", *l.SpilledSeconds), "", nil)
	}
	if l.WarmupSeconds > 0 {
		add(scenario, fmt.Sprintf("ingest→receipt max ms in the %gs warm-up (not measured above)", l.WarmupSeconds),
			fmt.Sprintf("%.1f", l.WarmupMaxMs), "", nil)
	}
}

// targetsFor is the set of targets a store's figures are judged by. Those Hookrelay aims at
// on 2 cores were set for SQLite, the default store: events accepted and deliveries a second,
// deliveries at 0.35 of the loopback ceiling, captures at 0.40 of it, the latency p99 at
// 1,000 events/s, peak memory with a million deliveries pending, and the relative ones. On
// PostgreSQL, whose server shares the two cores, the targets are its own: batches at 0.30 of
// the ceiling, and the relative ones as on SQLite (the healthy webhook's p99 within 2 × while
// others hang, deliveries with a bin flooded at 0.90 of those without). Its other figures are
// shown without a target.
func targetsFor(store string) map[string]bool {
	if store == "postgres" {
		return map[string]bool{"≥ 0.30": true, "≤ 2": true, "≥ 0.90": true}
	}
	return map[string]bool{"≥ 10,000": true, "≥ 0.35": true, "≥ 0.40": true, "p99 ≤ 10 ms": true,
		"≤ 2": true, "≤ 200 MB": true, "≥ 0.90": true}
}

func completeness(complete bool, got int64) string {
	if complete {
		return ""
	}
	return fmt.Sprintf(" [INCOMPLETE: %d received within -limit]", got)
}

func printTable(w io.Writer, rep *Report) {
	traced := "tracing off"
	if rep.Tracing {
		traced = "tracing on (OTLP/HTTP)"
	}
	fmt.Fprintf(w, "Hookrelay bench, %s, %d CPUs, %s, %s, %s; load average %s before, %s after.\n",
		rep.StartedAt.Format("2006-01-02 15:04 UTC"), rep.CPUs, rep.GoVersion, rep.Mode, traced, rep.LoadBefore, rep.LoadAfter)
	fmt.Fprintln(w, "Figures are noisy when other work shares the machine.")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "store\tscenario\tmetric\tvalue\ttarget\tmet")
	for _, r := range rows(rep) {
		met := ""
		if r.met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*r.met]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.store, r.scenario, r.metric, r.value, r.target, met)
	}
	tw.Flush()
}

// num formats a rate with thousands separators.
func num(f float64) string {
	s := fmt.Sprintf("%.0f", f)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
