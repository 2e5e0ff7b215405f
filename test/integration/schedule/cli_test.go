package schedule

import (
	"strings"
	"testing"

	"github.com/rotation-agent/rotation-agent/agent"
	"github.com/rotation-agent/rotation-agent/internal/clock"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

func agentOptions(c clock.Clock) agent.Options { return agent.Options{Clock: c} }

// runCLI runs the rotation-agent command with env (see harness.RunCLI) and returns what it
// wrote to stdout and then to stderr, and its exit code.
func runCLI(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	r := harness.RunCLI(t, agentBinary, env, args...)
	return r.Stdout + r.Stderr, r.Code
}

func contains(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
