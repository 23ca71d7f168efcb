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
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which may hold spaces but ends at the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return (utime + stime) / ticks
}
