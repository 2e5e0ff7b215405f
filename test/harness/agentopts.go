package harness

import (
	"context"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/agent"
)

// StartAgentWith is StartAgent with options an embedding program may set (a fake clock, for
// example); LogOutput and Ready are set by the harness.
func StartAgentWith(t testing.TB, cfg agent.Config, opts agent.Options) *RunningAgent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ra := &RunningAgent{Log: &SyncBuffer{}, stop: cancel, done: make(chan error, 1)}
	ready := make(chan struct{})
	opts.LogOutput = ra.Log
	opts.Ready = func(string) { close(ready) }
	go func() { ra.done <- agent.Run(ctx, cfg, opts) }()
	select {
	case <-ready:
	case err := <-ra.done:
		cancel()
		t.Fatalf("agent did not start: %v\nlog:\n%s", err, ra.Log.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("agent did not start within 30s\nlog:\n%s", ra.Log.String())
	}
	t.Cleanup(func() { ra.Stop(t) })
	return ra
}

// StartAgentListening is StartAgent without waiting for the agent to consume events: it
// returns once the agent's HTTP server listens (cfg.MetricsListen must be set), before the
// agent contacts Vault. Ready reports when the agent consumes events.
func StartAgentListening(t testing.TB, cfg agent.Config) (*RunningAgent, <-chan struct{}) {
	t.Helper()
	if cfg.MetricsListen == "" {
		t.Fatal("StartAgentListening needs MetricsListen")
	}
	ctx, cancel := context.WithCancel(context.Background())
	ra := &RunningAgent{Log: &SyncBuffer{}, stop: cancel, done: make(chan error, 1)}
	ready, listening := make(chan struct{}), make(chan string, 1)
	go func() {
		ra.done <- agent.Run(ctx, cfg, agent.Options{
			LogOutput: ra.Log,
			Ready:     func(string) { close(ready) },
			Listening: func(addr string) { listening <- addr },
		})
	}()
	select {
	case ra.MetricsAddr = <-listening:
	case err := <-ra.done:
		cancel()
		t.Fatalf("agent did not start: %v\nlog:\n%s", err, ra.Log.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("agent did not listen within 30s\nlog:\n%s", ra.Log.String())
	}
	t.Cleanup(func() { ra.Stop(t) })
	return ra, ready
}
