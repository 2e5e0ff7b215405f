package evidence

import (
	"testing"

	"github.com/rotation-agent/rotation-agent/test/harness"
)

// agentBinary is the rotation-agent command, built once for the tests of the evidence commands.
var agentBinary string

func TestMain(m *testing.M) {
	harness.RunWithAgent(m, &agentBinary)
}
