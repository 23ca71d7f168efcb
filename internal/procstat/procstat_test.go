package procstat

import (
	"os"
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
