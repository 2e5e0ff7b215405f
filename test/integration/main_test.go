// Package integration runs the agent against a real in-process Vault core and a real NATS
// JetStream server, and asserts on Vault's own state and on what the agent published.
package integration

import (
	"fmt"
	"os"
	"testing"

	"github.com/rotation-agent/rotation-agent/test/harness"
)

// agentBinary is the rotation-agent command built once for the tests that run the agent as a
// separate process (crashes, exit codes).
var agentBinary string

// evidenceKeyFile is the key those agent processes sign their evidence with.
var evidenceKeyFile string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rotation-agent-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBinary, err = harness.BuildAgent(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "build rotation-agent:", err)
		os.Exit(1)
	}
	evidenceKeyFile, err = harness.WriteEvidenceKey(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "evidence key:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
