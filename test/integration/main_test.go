// Package integration runs the agent against a real in-process Vault core and a real NATS
// JetStream server, and asserts on Vault's own state and on what the agent published.
package integration

import (
	"testing"

	"github.com/rotation-agent/rotation-agent/test/harness"
)

// agentBinary is the rotation-agent command built once for the tests that run the agent as a
// separate process (crashes, exit codes).
var agentBinary string

// evidenceKeyFile is the key those agent processes sign their evidence with.
var evidenceKeyFile string

func TestMain(m *testing.M) {
	harness.RunWithAgent(m, &agentBinary, func(dir string) (err error) {
		evidenceKeyFile, err = harness.WriteEvidenceKey(dir)
		return err
	})
}
