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
