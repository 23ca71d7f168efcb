// Package procstat reads CPU time from Linux's /proc, for the bench and the benchmarks that
// report what a run cost the machine rather than only their own process: on a machine
// PostgreSQL shares, its server's CPU is the part a process's own figure leaves out. Elsewhere
// every reading is 0.
package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ticks is USER_HZ on Linux, the unit of /proc's CPU times.
const ticks = 100

// Machine is the CPU time every process on the machine has used since boot, in seconds: the
// first line of /proc/stat without its idle and I/O-wait columns (guest time is in user's
// already).
func Machine() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var busy float64
	// user nice system idle iowait irq softirq steal
	for i, v := range f[1:9] {
		if i == 3 || i == 4 {
			continue
		}
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0
		}
		busy += n
	}
	return busy / ticks
}

// Process is the user and system CPU time of a process, in seconds, from /proc/<pid>/stat; 0
// when the process or the file is not there.
func Process(pid int) float64 {
	_, t, ok := readStat(fmt.Sprintf("/proc/%d/stat", pid))
	if !ok {
		return 0
	}
	return (t.user + t.system) / ticks
}

// stat is a process's CPU times from its stat file, in ticks: its own, and those of the
// children it has waited for.
type stat struct{ user, system, childUser, childSystem float64 }

// readStat reads a /proc/<pid>/stat file: the process's command and CPU times.
func readStat(path string) (command string, t stat, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", t, false
	}
	// The command is in parentheses and may hold spaces and parentheses itself: it ends at
	// the last ')'.
	open, end := strings.IndexByte(string(b), '('), strings.LastIndexByte(string(b), ')')
	if open < 0 || end < open {
		return "", t, false
	}
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 15 {
		return "", t, false
	}
	var v [4]float64
	for i := range v {
		if v[i], err = strconv.ParseFloat(f[11+i], 64); err != nil {
			return "", t, false
		}
	}
	return string(b[open+1 : end]), stat{v[0], v[1], v[2], v[3]}, true
}

// Command is the CPU time, in seconds, of every process on the machine whose command (the
// name /proc/<pid>/stat gives) is name, with that of the children they have waited for: a
// server that forks a process per connection, as PostgreSQL does, keeps the time of its ended
// ones in the parent, so connections that close between two readings still count. 0 where
// /proc is not there.
func Command(name string) float64 {
	dir, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var total float64
	for _, e := range dir {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		// A process that ended since the directory was read has no file: its time is in its
		// parent's now.
		if command, t, ok := readStat("/proc/" + e.Name() + "/stat"); ok && command == name {
			total += t.user + t.system + t.childUser + t.childSystem
		}
	}
	return total / ticks
}
