package harness

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/agent"
	"github.com/rotation-agent/rotation-agent/test/harness/evidencekey"
)

// SyncBuffer is a bytes.Buffer safe for one writer and concurrent readers: the agent's log.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// AgentConfig returns a configuration for an agent that talks to v with token and to n, with
// short timings suited to tests, signing its evidence with a fresh key.
func AgentConfig(t testing.TB, v *Vault, token string, n *NATS) agent.Config {
	t.Helper()
	return AgentConfigWithKey(v, token, n, EvidenceKeyFile(t))
}

// AgentConfigWithKey is AgentConfig signing evidence with the key in keyFile (one a TestMain
// wrote, say, shared by the agents of several tests). n may be nil when the caller sets
// NATS.URL itself.
func AgentConfigWithKey(v *Vault, token string, n *NATS, keyFile string) agent.Config {
	cfg := agent.Defaults()
	cfg.AgentID = "test-agent"
	cfg.LogLevel = "debug"
	cfg.Vault.Addr = v.Addr
	cfg.Vault.CACert = v.CACertFile
	cfg.Vault.Token = token
	if n != nil {
		cfg.NATS.URL = []string{n.URL}
	}
	cfg.NATS.AckWait = 5 * time.Second
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.LockTTL = 3 * time.Second
	// Any free port: agents of parallel test packages must not share the default one.
	cfg.MetricsListen = "127.0.0.1:0"
	cfg.Evidence.Signer, cfg.Evidence.KeyFile = agent.SignerFile, keyFile
	return cfg
}

// EvidenceKeyFile writes a new Ed25519 evidence signing key to a file of the test's temporary
// directory and returns its path.
func EvidenceKeyFile(t testing.TB) string {
	t.Helper()
	path, err := WriteEvidenceKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// WriteEvidenceKey writes a new Ed25519 evidence signing key (PEM, PKCS #8) to dir and returns
// its path; for a TestMain, which has no testing.TB.
func WriteEvidenceKey(dir string) (string, error) {
	path := filepath.Join(dir, "evidence-key.pem")
	return path, evidencekey.Write(path)
}

// EvidenceSignerEnv is the environment that makes an agent process sign its evidence with the
// key file at path, the way an operator without Vault transit would configure it.
func EvidenceSignerEnv(path string) []string {
	return []string{"ROTATION_AGENT_EVIDENCE_SIGNER=file", "ROTATION_AGENT_EVIDENCE_KEY_FILE=" + path}
}

// RunningAgent is an agent started by StartAgent.
type RunningAgent struct {
	// Log is the agent's JSON log.
	Log *SyncBuffer
	// MetricsAddr is where the agent serves /metrics, /healthz and /readyz (empty when the
	// configuration turns the server off).
	MetricsAddr string
	stop        context.CancelFunc
	done        chan error
	stopOnce    sync.Once
}

// StartAgent runs the agent with cfg until the test ends (or Stop is called) and waits until
// it consumes events. A start-up failure fails the test.
func StartAgent(t testing.TB, cfg agent.Config) *RunningAgent {
	t.Helper()
	return StartAgentWith(t, cfg, agent.Options{})
}

// launchAgent runs agent.Run in the background with the harness's log, ready and listening
// hooks on top of opts, stops it when the test ends, and returns the channels those hooks
// signal: ready once the agent consumes events, listening with its HTTP address.
func launchAgent(t testing.TB, cfg agent.Config, opts agent.Options) (*RunningAgent, <-chan struct{}, <-chan string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ra := &RunningAgent{Log: &SyncBuffer{}, stop: cancel, done: make(chan error, 1)}
	ready, listening := make(chan struct{}), make(chan string, 1)
	opts.LogOutput = ra.Log
	opts.Ready = func(string) { close(ready) }
	// Called before Ready, so MetricsAddr is set once the agent is ready.
	opts.Listening = func(addr string) {
		ra.MetricsAddr = addr
		select {
		case listening <- addr:
		default:
		}
	}
	go func() { ra.done <- agent.Run(ctx, cfg, opts) }()
	t.Cleanup(func() { ra.Stop(t) })
	return ra, ready, listening
}

// awaitStart waits for started, failing the test when the agent ends or takes over 30s.
func awaitStart[T any](t testing.TB, ra *RunningAgent, started <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-started:
		return v
	case err := <-ra.done:
		ra.stopOnce.Do(ra.stop) // it has ended: nothing for Stop to wait for
		t.Fatalf("agent did not start: %v\nlog:\n%s", err, ra.Log.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("agent did not %s within 30s\nlog:\n%s", what, ra.Log.String())
	}
	var zero T
	return zero
}

// Stop stops the agent and fails the test if it does not stop cleanly in time. Calling it
// twice is harmless.
func (ra *RunningAgent) Stop(t testing.TB) {
	t.Helper()
	ra.stopOnce.Do(func() {
		ra.stop()
		select {
		case err := <-ra.done:
			if err != nil {
				t.Errorf("agent stopped with error: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("agent did not stop within 30s")
		}
	})
}
