package ops

import (
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/test/harness"
)

// The agent speaks systemd's notify protocol as Type=notify needs it: READY=1 on the
// NOTIFY_SOCKET datagram socket once it consumes events, STOPPING=1 when SIGTERM arrives, and
// a clean exit.
func TestSystemdNotify(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	socketPath := filepath.Join(t.TempDir(), "notify.sock")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: socketPath, Net: "unixgram"})
	if err != nil {
		t.Fatalf("notify socket: %v", err)
	}
	defer sock.Close()

	cmd := exec.Command(agentBinary, "run")
	cmd.Env = []string{
		"PATH=/usr/bin:/bin",
		"NOTIFY_SOCKET=" + socketPath,
		"VAULT_ADDR=" + v.Addr,
		"VAULT_CACERT=" + v.CACertFile,
		"VAULT_TOKEN=" + v.AgentToken(t),
		"ROTATION_AGENT_NATS_URL=" + n.URL,
		"ROTATION_AGENT_SHUTDOWN_TIMEOUT=5s",
		"ROTATION_AGENT_METRICS_LISTEN=127.0.0.1:0",
		"ROTATION_AGENT_EVIDENCE_SIGNER=file",
		"ROTATION_AGENT_EVIDENCE_KEY_FILE=" + harness.EvidenceKeyFile(t),
	}
	out := &harness.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done //nolint:errcheck // the exit status after a kill says nothing
		done <- nil
	})

	read := func(what string) string {
		t.Helper()
		buf := make([]byte, 4096)
		if err := sock.SetReadDeadline(time.Now().Add(60 * time.Second)); err != nil {
			t.Fatal(err)
		}
		nr, _, err := sock.ReadFromUnix(buf)
		if err != nil {
			t.Fatalf("waiting for %s on NOTIFY_SOCKET: %v\nagent output:\n%s", what, err, out.String())
		}
		return string(buf[:nr])
	}
	if got := read("READY=1"); got != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	// The log travels through a pipe, the notification through the socket: give the log line
	// written just before READY=1 a moment to arrive.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(out.String(), "agent started; consuming change events"); {
		if time.Now().After(deadline) {
			t.Fatalf("READY=1 arrived but the agent never said it consumes events:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := read("STOPPING=1"); got != "STOPPING=1" {
		t.Fatalf("notification after SIGTERM %q, want STOPPING=1", got)
	}
	select {
	case err := <-done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("agent exited with %d after SIGTERM, want 0:\n%s", exit.ExitCode(), out.String())
		} else if err != nil {
			t.Fatal(err)
		}
		done <- nil
	case <-time.After(30 * time.Second):
		t.Fatalf("agent still running 30s after SIGTERM:\n%s", out.String())
	}
}
