package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/agent"
)

// BuildAgent builds the rotation-agent command into dir and returns its path, for tests that
// run the agent as a separate process (crashes, signals, exit codes).
func BuildAgent(dir string) (string, error) {
	bin := filepath.Join(dir, "rotation-agent")
	build := exec.Command("go", "build", "-o", bin, "github.com/rotation-agent/rotation-agent/cmd/rotation-agent")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	return bin, build.Run()
}

// ProcessEnv is the environment of an agent process configured as cfg configures an in-process
// one (start from AgentConfig): its Vault, NATS, agent id, timings and evidence key file. The
// agent always listens on a free metrics port, never the default 127.0.0.1:9464 that another
// agent on the host may hold, and always signs its evidence with cfg's key file. Nothing comes
// from the test's own environment; extra settings come last and win.
func ProcessEnv(cfg agent.Config, extra ...string) []string {
	if cfg.Evidence.KeyFile == "" {
		panic("harness.ProcessEnv: the configuration has no evidence key file (start from AgentConfig)")
	}
	env := []string{
		"PATH=/usr/bin:/bin",
		"VAULT_ADDR=" + cfg.Vault.Addr,
		"VAULT_CACERT=" + cfg.Vault.CACert,
		"VAULT_TOKEN=" + cfg.Vault.Token,
		"ROTATION_AGENT_AGENT_ID=" + cfg.AgentID,
		"ROTATION_AGENT_NATS_URL=" + strings.Join(cfg.NATS.URL, ","),
		"ROTATION_AGENT_NATS_ACK_WAIT=" + cfg.NATS.AckWait.String(),
		"ROTATION_AGENT_SHUTDOWN_TIMEOUT=" + cfg.ShutdownTimeout.String(),
		"ROTATION_AGENT_LOCK_TTL=" + cfg.LockTTL.String(),
		"ROTATION_AGENT_METRICS_LISTEN=127.0.0.1:0",
	}
	env = append(env, EvidenceSignerEnv(cfg.Evidence.KeyFile)...)
	return append(env, extra...)
}

// Process is the agent running as a separate process, configured through its environment as
// a user would run it.
type Process struct {
	Cmd    *exec.Cmd
	Output *SyncBuffer
	done   chan error
}

// StartProcess starts binary with env (see ProcessEnv) and args ("run" when none); it is
// killed when the test ends if it is still running.
func StartProcess(t testing.TB, binary string, env []string, args ...string) *Process {
	t.Helper()
	if len(args) == 0 {
		args = []string{"run"}
	}
	p := &Process{Cmd: exec.Command(binary, args...), Output: &SyncBuffer{}, done: make(chan error, 1)}
	p.Cmd.Env = env
	p.Cmd.Stderr = p.Output
	p.Cmd.Stdout = p.Output
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	go func() { p.done <- p.Cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.Cmd.Process.Signal(syscall.SIGCONT) // a stopped process cannot die
		_ = p.Cmd.Process.Kill()
		p.Exited()
	})
	return p
}

// Exited waits for the process to end and returns its exit code (-1 when killed by a signal).
func (p *Process) Exited() int {
	err := <-p.done
	p.done <- err // keep it for later callers
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// Wait returns the exit code once the process ends within timeout, or fails the test.
func (p *Process) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		return p.Exited()
	case <-time.After(timeout):
		t.Fatalf("agent process still running after %s; output:\n%s", timeout, p.Output.String())
		return -1
	}
}

// Done is closed-like: it reports whether the process has ended, without waiting.
func (p *Process) Done() bool {
	select {
	case err := <-p.done:
		p.done <- err
		return true
	default:
		return false
	}
}

// WaitReady waits for the agent's "consuming change events" log line.
func (p *Process) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.Output.String(), "consuming change events") {
		if time.Now().After(deadline) || p.Done() {
			t.Fatalf("agent not ready; output:\n%s", p.Output.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill sends SIGKILL, as kill -9 does, and waits for the process to end.
func (p *Process) Kill() {
	_ = p.Cmd.Process.Signal(syscall.SIGCONT)
	_ = p.Cmd.Process.Kill()
	p.Exited()
}

// Freeze stops the process (SIGSTOP) for d, as a long GC pause or a frozen VM would, then lets
// it go on (SIGCONT).
func (p *Process) Freeze(d time.Duration) {
	_ = p.Cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(d)
	_ = p.Cmd.Process.Signal(syscall.SIGCONT)
}

// RunWithAgent is a TestMain for packages that run the agent as a process: it builds the
// rotation-agent command into a temporary directory, stores its path in binary, runs each
// setup with that directory (for files the tests share), runs the tests, removes the
// directory and exits with the tests' status.
func RunWithAgent(m *testing.M, binary *string, setups ...func(dir string) error) {
	dir, err := os.MkdirTemp("", "rotation-agent-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*binary, err = BuildAgent(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "build rotation-agent:", err)
		os.Exit(1)
	}
	for _, setup := range setups {
		if err := setup(dir); err != nil {
			fmt.Fprintln(os.Stderr, "test setup:", err)
			_ = os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}
