package procstat

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// CPU this process burns shows in its own time and in the machine's, which holds it. The
// clock counts in ticks of 10 ms, so the machine's is compared with that much slack.
func TestBurnedCPUShowsInTheProcessAndTheMachine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	pid := os.Getpid()
	proc0, machine0 := Process(pid), Machine()
	if machine0 <= 0 {
		t.Fatalf("the machine's CPU time read %.2f s, want it read", machine0)
	}
	// Spin until the process's own clock shows 0.2 s more; a machine this busy in other work
	// gives it that within the deadline all the same.
	burned := 0.0
	for deadline := time.Now().Add(time.Minute); burned < 0.2; burned = Process(pid) - proc0 {
		if time.Now().After(deadline) {
			t.Fatalf("a minute of spinning counted %.2f s of the process's CPU", burned)
		}
		for i := 0; i < 1_000_000; i++ {
			sink = i
		}
	}
	if machine := Machine() - machine0; machine < burned-0.03 {
		t.Errorf("the machine's busy time grew %.2f s, less than the process's %.2f", machine, burned)
	}
	if Process(-1) != 0 {
		t.Error("a process that does not exist has CPU time")
	}
}

var sink int

// Command counts every process of the name, and keeps the time of one that ended in its
// parent's: a child of this test binary (so of its name) burns CPU and exits, and the total
// of the name still holds what it burned.
func TestCommandKeepsTheTimeOfEndedChildren(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	if os.Getenv("PROCSTAT_BURN") != "" {
		for start := time.Now(); time.Since(start) < 10*time.Second && Process(os.Getpid()) < 0.3; {
			for i := 0; i < 1_000_000; i++ {
				sink = i
			}
		}
		os.Exit(0)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(exe)
	if len(name) > 15 {
		name = name[:15] // the kernel keeps a command's first 15 bytes
	}
	// This process's own time first: it keeps growing, and read after the total it could
	// pass it by a tick.
	own := Process(os.Getpid())
	before := Command(name)
	if before < own {
		t.Fatalf("processes named %q used %.2f s, less than this one alone (%.2f)", name, before, own)
	}
	cmd := exec.Command(exe, "-test.run=^TestCommandKeepsTheTimeOfEndedChildren$")
	cmd.Env = append(os.Environ(), "PROCSTAT_BURN=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	child := (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	if child < 0.25 {
		t.Fatalf("the child burned %.2f s, want 0.3", child)
	}
	// This process's own time grew meanwhile too, by a little; the clock counts in ticks.
	if grew := Command(name) - before; grew < child-0.03 {
		t.Errorf("processes named %q grew by %.2f s while a child of theirs burned %.2f s and ended", name, grew, child)
	}
	if Command("no such command here") != 0 {
		t.Error("a command that no process runs has CPU time")
	}
}
