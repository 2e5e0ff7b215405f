package ops

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/test/harness"
)

// The agent speaks systemd's notify protocol as Type=notify needs it: READY=1 on the
// NOTIFY_SOCKET datagram socket once it is up, STATUS= once it consumes events, STOPPING=1 when
// SIGTERM arrives, and a clean exit.
func TestSystemdNotify(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	a := startNotifying(t, v, n)
	if got := a.read("READY=1"); got != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	if got := a.read("STATUS="); got != "STATUS=consuming change events" {
		t.Fatalf("second notification %q, want STATUS=consuming change events", got)
	}
	// The log travels through a pipe, the notification through the socket: give the log line
	// written just before the status a moment to arrive.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(a.out.String(), "agent started; consuming change events"); {
		if time.Now().After(deadline) {
			t.Fatalf("the status says consuming but the agent never did:\n%s", a.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.stop()
}

// A discovery source whose first refresh keeps failing does not fail the start: systemd gets
// READY=1 with a STATUS= naming the source, /readyz stays not ready, and the agent consumes
// nothing until the source answers (so TimeoutStartSec never kills and restarts it).
func TestSystemdReadyWhileDiscoveryWaits(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	file := filepath.Join(t.TempDir(), "discovery.yaml")
	// No such mount: every refresh of the source fails.
	if err := os.WriteFile(file, []byte("kv:\n  - mount: nosuch\n    prefix: apps\ninterval: 1h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startNotifying(t, v, n, "ROTATION_AGENT_DISCOVERY_FILE="+file)
	want := "READY=1\nSTATUS=waiting for the first discovery refresh of kv-v2:nosuch/apps"
	if got := a.read("READY=1"); got != want {
		t.Fatalf("first notification %q, want %q", got, want)
	}
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(a.out.String(), "discovery source failed its first refresh"); {
		if time.Now().After(deadline) {
			t.Fatalf("no failed first refresh in the log:\n%s", a.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(a.out.String(), "agent started; consuming change events") {
		t.Fatalf("the agent consumes changes although discovery never answered:\n%s", a.out.String())
	}
	a.stop()
}

// notifyingAgent is the agent command run with a NOTIFY_SOCKET the test reads.
type notifyingAgent struct {
	t    *testing.T
	sock *net.UnixConn
	p    *harness.Process
	out  *harness.SyncBuffer
}

// startNotifying runs the agent command against v and n with a NOTIFY_SOCKET, and env added.
func startNotifying(t *testing.T, v *harness.Vault, n *harness.NATS, env ...string) *notifyingAgent {
	t.Helper()
	socketPath := filepath.Join(t.TempDir(), "notify.sock")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: socketPath, Net: "unixgram"})
	if err != nil {
		t.Fatalf("notify socket: %v", err)
	}
	t.Cleanup(func() { _ = sock.Close() })

	cfg := harness.AgentConfig(t, v, v.AgentToken(t), n)
	cfg.ShutdownTimeout = 5 * time.Second
	p := harness.StartProcess(t, agentBinary, harness.ProcessEnv(cfg, append([]string{"NOTIFY_SOCKET=" + socketPath}, env...)...))
	return &notifyingAgent{t: t, sock: sock, p: p, out: p.Output}
}

// read returns the next notification, failing the test after a minute without one.
func (a *notifyingAgent) read(what string) string {
	a.t.Helper()
	buf := make([]byte, 4096)
	if err := a.sock.SetReadDeadline(time.Now().Add(60 * time.Second)); err != nil {
		a.t.Fatal(err)
	}
	nr, _, err := a.sock.ReadFromUnix(buf)
	if err != nil {
		a.t.Fatalf("waiting for %s on NOTIFY_SOCKET: %v\nagent output:\n%s", what, err, a.out.String())
	}
	return string(buf[:nr])
}

// stop sends SIGTERM and expects STOPPING=1, then a clean exit.
func (a *notifyingAgent) stop() {
	a.t.Helper()
	if err := a.p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		a.t.Fatal(err)
	}
	if got := a.read("STOPPING=1"); got != "STOPPING=1" {
		a.t.Fatalf("notification after SIGTERM %q, want STOPPING=1", got)
	}
	if code := a.p.Wait(a.t, 30*time.Second); code != 0 {
		a.t.Fatalf("agent exited with %d after SIGTERM, want 0:\n%s", code, a.out.String())
	}
}
