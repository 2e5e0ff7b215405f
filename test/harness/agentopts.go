package harness

import (
	"testing"

	"github.com/rotation-agent/rotation-agent/agent"
)

// StartAgentWith is StartAgent with options an embedding program may set (a fake clock, for
// example); LogOutput, Ready and Listening are set by the harness.
func StartAgentWith(t testing.TB, cfg agent.Config, opts agent.Options) *RunningAgent {
	t.Helper()
	ra, ready, _ := launchAgent(t, cfg, opts)
	awaitStart(t, ra, ready, "start")
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
	ra, ready, listening := launchAgent(t, cfg, agent.Options{})
	awaitStart(t, ra, listening, "listen")
	return ra, ready
}
