package main

import (
	"bytes"
	"context"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// roundsOf builds reports whose single phase delivered at the given ratios to a ceiling of
// 50,000 and whose latency p99s are the given milliseconds.
func roundsOf(ratios, p99s []float64) []*Report {
	var out []*Report
	for i, r := range ratios {
		tp := &ThroughputResult{Events: 100, Webhooks: 4, Concurrency: 32, CeilingSingle: 50000,
			Single: &PhaseResult{Mode: "single", Complete: i != 1, Delivered: 400, DeliveriesPerSec: r * 50000, CPUCores: 1.5,
				MachineCores: 1.9 + float64(i)/20}}
		lat := &LatencyResult{Rate: 1000, Events: 5000, Received: 5000, Complete: true, P99ms: p99s[i], AchievedRate: 1000}
		out = append(out, &Report{CPUs: 2, Runs: []*Run{{Store: "sqlite", Throughput: tp, Latency: lat}}})
	}
	return out
}

// Each figure is summarised as its median and its worst round, the worst taken the way the
// figure gets worse; a round that did not finish still counts in the same row.
func TestSummaryIsTheMedianAndTheWorstRound(t *testing.T) {
	rs := &Rounds{This: roundsOf([]float64{0.30, 0.36, 0.28}, []float64{3.7, 4.0, 3.5}),
		Against: roundsOf([]float64{0.25, 0.27}, []float64{5, 6}), AgainstPath: "/tmp/bench-before"}
	got := map[string]*summary{}
	for _, s := range summarize(rs) {
		got[s.metric] = s
	}
	for _, c := range []struct {
		metric, this, against string
	}{
		{"deliveries/s ÷ ceiling (single; of the ceiling measured around it)", "0.30 (0.28)", "0.26 (0.25)"},
		{"deliveries/s (single, 100×4, c=32)", "15,000 (14,000)", "13,000 (12,500)"},
		{"ingest→receipt p99 ms", "3.7 (4.0)", "5.5 (6.0)"},
		{"CPU cores used by bench + server (single)", "1.50", "1.50"},
		{"CPU cores busy on the machine, every process (single)", "1.95 (1.90–2.00)", "1.92 (1.90–1.95)"},
	} {
		s := got[c.metric]
		if s == nil {
			t.Errorf("no row %q; rows: %q", c.metric, slices.Sorted(maps.Keys(got)))
			continue
		}
		if this, against := s.builds[0].cell(s.better), s.builds[1].cell(s.better); this != c.this || against != c.against {
			t.Errorf("%s: %q against %q; want %q against %q", c.metric, this, against, c.this, c.against)
		}
	}
	var out bytes.Buffer
	printSummary(&out, rs)
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, "÷ ceiling (single") && !strings.HasSuffix(strings.TrimSpace(line), "NO") {
			t.Errorf("a median of 0.30 against a target of 0.35 is not met: %q", line)
		}
		if strings.Contains(line, "p99 ms") && !strings.HasSuffix(strings.TrimSpace(line), "yes") {
			t.Errorf("a median p99 of 3.7 ms meets ≤ 10 ms: %q", line)
		}
	}
}

func TestLeadingNumberAndTargets(t *testing.T) {
	for _, c := range []struct {
		in       string
		v        float64
		decimals int
	}{{"0.32 (of 55,103)", 0.32, 2}, {"20,967", 20967, 0}, {"1.85 of 2", 1.85, 2}, {"3.7", 3.7, 1}} {
		if v, d, ok := leadingNumber(c.in); !ok || v != c.v || d != c.decimals {
			t.Errorf("leadingNumber(%q) = %v, %d, %v", c.in, v, d, ok)
		}
	}
	if _, _, ok := leadingNumber("yes"); ok {
		t.Error(`"yes" read as a number`)
	}
	for _, c := range []struct {
		target     string
		v          float64
		ok, judged bool
	}{{"≥ 0.35", 0.36, true, true}, {"≥ 10,000", 9000, false, true}, {"p99 ≤ 25 ms", 3.7, true, true}, {"≤ 2", 2.5, false, true}, {"all", 1, false, false}} {
		if ok, judged := meets(c.target, c.v); ok != c.ok || judged != c.judged {
			t.Errorf("meets(%q, %v) = %v, %v", c.target, c.v, ok, judged)
		}
	}
}

// -against runs another build of the bench with the same options, alternately with this one:
// this build first in odd rounds, the other first in even ones.
func TestAgainstRunsTheOtherBenchAlternately(t *testing.T) {
	other := filepath.Join(t.TempDir(), "bench-other")
	if out, err := exec.Command("go", "build", "-o", other, ".").CombinedOutput(); err != nil {
		t.Fatalf("build the other bench: %v\n%s", err, out)
	}
	o, err := parseOptions([]string{"-runs", "2", "-against", other, "-scenarios", "latency", "-rate", "100",
		"-duration", "300ms", "-warmup", "0s", "-limit", "1m", "-json"})
	if err != nil {
		t.Fatal(err)
	}
	o.self = other // the test binary is no bench: this build's bench, built as the other was
	if want := []string{"-duration=300ms", "-limit=1m0s", "-rate=100", "-scenarios=latency", "-warmup=0s"}; !slices.Equal(o.passthrough, want) {
		t.Errorf("the other bench gets %v, want %v", o.passthrough, want)
	}
	var progress bytes.Buffer
	rs, err := runRounds(context.Background(), o, &progress)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	if len(rs.This) != 2 || len(rs.Against) != 2 {
		t.Fatalf("%d rounds of this build and %d of the other, want 2 and 2", len(rs.This), len(rs.Against))
	}
	for _, rep := range append(rs.This, rs.Against...) {
		if l := rep.Runs[0].Latency; l == nil || !l.Complete || l.Received != 30 {
			t.Errorf("latency %+v: want 30 of 30 received", l)
		}
	}
	var order []string
	for _, line := range strings.Split(progress.String(), "\n") {
		if strings.HasPrefix(line, "Round ") {
			order = append(order, line)
		}
	}
	want := []string{"Round 1 of 2, this build:", "Round 1 of 2, " + other + ":", "Round 2 of 2, " + other + ":", "Round 2 of 2, this build:"}
	if !slices.Equal(order, want) {
		t.Errorf("rounds ran %q, want %q", order, want)
	}
}
