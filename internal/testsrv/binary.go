package testsrv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/apivalidate"
)

// RepoRoot is the module's root directory, found from this file's location so tests work
// from any package directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the testsrv source file")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// BuildBinary builds the hookrelay command into t.TempDir() and returns its path.
func BuildBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hookrelay")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// Process is a running hookrelay binary.
type Process struct {
	*Client
	Addr string

	cmd    *exec.Cmd
	done   chan struct{}
	err    error // from Wait, valid once done is closed
	mu     sync.Mutex
	output bytes.Buffer // stdout and stderr, for failure messages
}

var listeningRE = regexp.MustCompile(`listening on (\S+)\r?\n`)

// StartBinary runs bin on a random loopback port with the test admin token and the given
// extra flags, waits for its start-up banner, and kills it at the end of the test if it is
// still running.
func StartBinary(t testing.TB, bin string, args ...string) *Process {
	t.Helper()
	args = append([]string{"--addr", "127.0.0.1:0", "--admin-token", AdminToken}, args...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOOKRELAY_LOG_FORMAT=text")
	addr := make(chan string, 1)
	p := &Process{cmd: cmd, done: make(chan struct{})}
	cmd.Stdout = &outputWriter{p: p, addr: addr}
	cmd.Stderr = &outputWriter{p: p}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.Running() {
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("hookrelay output:\n%s", p.Output())
		}
	})
	select {
	case a := <-addr:
		p.Addr = a
		p.Client = NewClient("http://"+a, AdminToken)
		// Every exchange is checked against openapi/openapi.json (see internal/apivalidate).
		p.Client.HTTP.Transport = apivalidate.Transport(t, p.Client.HTTP.Transport)
		t.Cleanup(p.Client.HTTP.CloseIdleConnections)
	case <-p.done:
		t.Fatalf("hookrelay exited before listening: %v\n%s", p.err, p.Output())
	case <-time.After(30 * time.Second):
		t.Fatalf("hookrelay did not print its banner within 30s\n%s", p.Output())
	}
	return p
}

// RSS is the process's resident memory in bytes, from /proc (Linux).
func (p *Process) RSS(t testing.TB) int64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("read process status: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), &kb); err == nil {
				return kb << 10
			}
		}
	}
	t.Fatal("no VmRSS in the process status")
	return 0
}

// Output is everything the process printed so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

// Running reports whether the process has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("SIGKILL: %v", err)
	}
	<-p.done
	p.HTTP.CloseIdleConnections()
}

// Terminate sends SIGTERM and waits up to timeout for a clean exit, which it requires.
func (p *Process) Terminate(t testing.TB, timeout time.Duration) {
	t.Helper()
	if err := p.Stop(syscall.SIGTERM, timeout); err != nil {
		t.Fatal(err)
	}
}

// Stop sends sig and waits up to timeout for the process to exit; it returns an error unless
// the process exited with status 0. It does not touch the test, so goroutines may call it.
func (p *Process) Stop(sig os.Signal, timeout time.Duration) error {
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %v: %w", sig, err)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		return fmt.Errorf("hookrelay did not exit within %s of %v\n%s", timeout, sig, p.Output())
	}
	p.HTTP.CloseIdleConnections()
	if p.err != nil {
		return fmt.Errorf("hookrelay exited with %v after %v\n%s", p.err, sig, p.Output())
	}
	return nil
}

// outputWriter keeps what the process prints and, on stdout, reports the address from the
// start-up banner once it appears.
type outputWriter struct {
	p    *Process
	addr chan string // nil on stderr
}

func (w *outputWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	w.p.output.Write(b)
	if w.addr != nil {
		if m := listeningRE.FindStringSubmatch(w.p.output.String()); m != nil {
			select {
			case w.addr <- m[1]:
			default:
			}
			w.addr = nil
		}
	}
	return len(b), nil
}

// Node returns the node executable and the testdata/node directory holding the signature
// check scripts and their installed packages. It fails the test rather than skipping:
// `make test` installs both (make deps), so their absence is a broken setup, not an optional
// prerequisite.
func Node(t testing.TB) (node, dir string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: `make deps` needs it (apt-get install -y nodejs npm)")
	}
	dir = filepath.Join(RepoRoot(t), "testdata", "node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "standardwebhooks")); err != nil {
		t.Fatalf("testdata/node packages are not installed: run `make deps` (%v)", err)
	}
	return node, dir
}

// RunNode runs one of the testdata/node scripts and returns its trimmed output and whether it
// exited 0.
func RunNode(t testing.TB, script string, args ...string) (string, bool) {
	t.Helper()
	node, dir := Node(t)
	cmd := exec.Command(node, append([]string{filepath.Join(dir, script)}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run node %s: %v", script, err)
	}
	return strings.TrimSpace(string(out)), err == nil
}

// WriteFile writes b into a new file in t.TempDir() and returns its path.
func WriteFile(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(fmt.Errorf("write %s: %w", p, err))
	}
	return p
}
