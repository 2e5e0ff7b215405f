package sidecar

import (
	"os"
	"testing"

	"github.com/rotation-agent/rotation-agent/test/harness"
)

// agentBinary is the rotation-agent command, built once for the tests that crash the agent.
var agentBinary string

func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == commandArg {
		os.Exit(runCommand(os.Args[2], os.Args[3:]))
	}
	if helper := os.Getenv(helperEnv); helper != "" {
		os.Exit(runHelper(helper))
	}
	harness.RunWithAgent(m, &agentBinary)
}
