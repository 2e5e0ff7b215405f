package ops

import (
	"net"
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

	cfg := harness.AgentConfig(t, v, v.AgentToken(t), n)
	p := harness.StartProcess(t, agentBinary, harness.ProcessEnv(cfg, "NOTIFY_SOCKET="+socketPath))
	out := p.Output

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
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := read("STOPPING=1"); got != "STOPPING=1" {
		t.Fatalf("notification after SIGTERM %q, want STOPPING=1", got)
	}
	if code := p.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("agent exited with %d after SIGTERM, want 0:\n%s", code, out.String())
	}
}
