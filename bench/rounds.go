package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Rounds. One run of the bench moves by about ±10% on a shared 2-core machine, so a figure is
// quoted as the median and the worst of several rounds (-runs), and a change is measured
// against the code before it by running both benches alternately in the same minutes
// (-against): this build first in odd rounds, the other in even ones, so neither always
// runs on a machine the other just warmed. Every round runs in a fresh process of its
// bench, this build's too: measured in the process that keeps the rounds, the same build
// used about 4% more CPU per delivery than in a process of its own.

// Rounds is what -runs and -against measured: every round's report, per build.
type Rounds struct {
	This    []*Report `json:"this"`
	Against []*Report `json:"against,omitempty"`
	// AgainstPath is the bench binary -against named.
	AgainstPath string `json:"against_path,omitempty"`
}

func mainRounds(ctx context.Context, o options) int {
	rs, err := runRounds(ctx, o, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	emit(o, rs, func(w io.Writer) { printSummary(w, rs) })
	if failed(append(slices.Clone(rs.This), rs.Against...)...) {
		return 1
	}
	return 0
}

// runRounds measures o.runs rounds, each round's log and table going to progress.
func runRounds(ctx context.Context, o options, progress io.Writer) (*Rounds, error) {
	rs := &Rounds{AgainstPath: o.against}
	for i := range o.runs {
		order := []bool{false, true} // against?
		if i%2 == 1 {
			order = []bool{true, false}
		}
		for _, against := range order {
			if against && o.against == "" {
				continue
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			who, path := "this build", o.self
			if against {
				who, path = o.against, o.against
			}
			// The round's own log and table follow, on its standard error.
			fmt.Fprintf(progress, "\nRound %d of %d, %s:\n", i+1, o.runs, who)
			rep, err := runBench(ctx, path, o.passthrough, progress)
			if err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", i+1, who, err)
			}
			if against {
				rs.Against = append(rs.Against, rep)
			} else {
				rs.This = append(rs.This, rep)
			}
		}
	}
	return rs, nil
}

// runBench runs a bench binary once with these arguments and reads its JSON report.
func runBench(ctx context.Context, path string, args []string, progress io.Writer) (*Report, error) {
	if path == "" {
		return nil, errors.New("no bench binary to run")
	}
	cmd := exec.CommandContext(ctx, path, append(slices.Clone(args), "-json")...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = progress
	err := cmd.Run()
	var rep Report
	if derr := json.Unmarshal(out.Bytes(), &rep); derr != nil {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("read its report: %w", derr)
	}
	return &rep, nil // a failed scenario is in the report's errors
}

// figure is one row's figure over the rounds of one build.
type figure struct {
	values   []float64
	decimals int
}

// summary is a table row over the rounds: its figure per build.
type summary struct {
	row
	better int
	builds [2]*figure // this build, against
}

// summarize groups the rounds' rows by store, scenario and metric, in the order they first
// appear. Rows without a number (verdicts, soak samples) are left out.
func summarize(rs *Rounds) []*summary {
	byKey := map[string]*summary{}
	var out []*summary
	for b, reps := range [][]*Report{rs.This, rs.Against} {
		for _, rep := range reps {
			for _, r := range rows(rep) {
				v, decimals, ok := leadingNumber(r.value)
				if !ok || r.scenario == "soak" || r.scenario == "error" {
					continue
				}
				k := r.store + "\x00" + r.scenario + "\x00" + r.key()
				s := byKey[k]
				if s == nil {
					s = &summary{row: r, better: better(r)}
					s.metric = r.key()
					byKey[k] = s
					out = append(out, s)
				}
				if s.builds[b] == nil {
					s.builds[b] = &figure{decimals: decimals}
				}
				s.builds[b].values = append(s.builds[b].values, v)
			}
		}
	}
	return out
}

// key is the metric without what varies from round to round: the note that the scenario
// did not finish.
func (r row) key() string {
	k, _, _ := strings.Cut(r.metric, " [INCOMPLETE")
	return k
}

// better says which way a row's figure improves: 1 up, -1 down, 0 neither (a count).
func better(r row) int {
	switch m := r.metric; {
	case strings.Contains(r.target, "≥"):
		return 1
	case strings.Contains(r.target, "≤"):
		return -1
	case strings.HasPrefix(m, "CPU cores busy on the machine"):
		return 0 // what the machine gave, not what the phase cost: its range says more
	case strings.Contains(m, "µs"), strings.Contains(m, " ms"), strings.Contains(m, "RSS"),
		strings.Contains(m, "CPU cores"), strings.HasSuffix(m, " in s"):
		return -1
	case strings.HasPrefix(m, "connections opened"), strings.HasPrefix(m, "captures/s the bin took"),
		strings.HasPrefix(m, "events published/s"):
		return 0
	case strings.Contains(m, "/s"):
		return 1
	}
	return 0
}

// leadingNumber reads the number a value starts with ("0.32 (of 55,103)", "20,967",
// "1.85 of 2"), and how many decimals it was written with.
func leadingNumber(s string) (float64, int, bool) {
	end := 0
	for end < len(s) && (s[end] >= '0' && s[end] <= '9' || s[end] == ',' || s[end] == '.' || s[end] == '-') {
		end++
	}
	t := strings.ReplaceAll(s[:end], ",", "")
	v, err := strconv.ParseFloat(t, 64)
	if err != nil {
		return 0, 0, false
	}
	decimals := 0
	if _, frac, ok := strings.Cut(t, "."); ok {
		decimals = len(frac)
	}
	return v, decimals, true
}

// median is the middle value (the mean of the two middle ones for an even count).
func median(vs []float64) float64 {
	s := slices.Sorted(slices.Values(vs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// cell is "median (worst)", or "median (lowest–highest)" for a figure with no better way.
func (f *figure) cell(better int) string {
	if f == nil {
		return ""
	}
	format := func(v float64) string {
		if f.decimals == 0 {
			return num(v)
		}
		return strconv.FormatFloat(v, 'f', f.decimals, 64)
	}
	lo, hi := slices.Min(f.values), slices.Max(f.values)
	med := format(median(f.values))
	switch {
	case lo == hi:
		return med
	case better > 0:
		return med + " (" + format(lo) + ")"
	case better < 0:
		return med + " (" + format(hi) + ")"
	}
	return med + " (" + format(lo) + "–" + format(hi) + ")"
}

func printSummary(w io.Writer, rs *Rounds) {
	first := rs.This[0]
	fmt.Fprintf(w, "\nHookrelay bench, %s, %d CPUs, %s, %s: %d rounds", first.StartedAt.Format("2006-01-02 15:04 UTC"),
		first.CPUs, first.GoVersion, first.Mode, len(rs.This))
	if rs.AgainstPath != "" {
		fmt.Fprintf(w, " of this build and of %s, alternately", rs.AgainstPath)
	}
	fmt.Fprintln(w, ".\nEach figure is the median of the rounds and, in brackets, the worst (or, where neither way is better, the range).")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "store\tscenario\tmetric\tthis build"
	if rs.AgainstPath != "" {
		head += "\tagainst"
	}
	fmt.Fprintln(tw, head+"\ttarget\tmet (median)")
	for _, s := range summarize(rs) {
		line := fmt.Sprintf("%s\t%s\t%s\t%s", s.store, s.scenario, s.metric, s.builds[0].cell(s.better))
		if rs.AgainstPath != "" {
			line += "\t" + s.builds[1].cell(s.better)
		}
		met := ""
		if s.builds[0] != nil {
			if ok, judged := meets(s.target, median(s.builds[0].values)); judged {
				met = map[bool]string{true: "yes", false: "NO"}[ok]
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", line, s.target, met)
	}
	tw.Flush()
}

// meets judges a median against a row's target: "≥ 0.35", "p99 ≤ 10 ms". Other targets
// ("all") are judged in each round's own table only.
func meets(target string, v float64) (ok, judged bool) {
	for _, op := range []string{"≥", "≤"} {
		_, rest, found := strings.Cut(target, op)
		if !found {
			continue
		}
		limit, _, isNum := leadingNumber(strings.TrimSpace(rest))
		if !isNum {
			return false, false
		}
		if op == "≥" {
			return v >= limit, true
		}
		return v <= limit, true
	}
	return false, false
}
