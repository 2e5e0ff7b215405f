// Package faults is the fault suite: the agent under crashes, NATS node loss, a sealed Vault,
// Vault answering 503 and 429 in bursts, AckWait expiring with two replicas, and events
// published twice. Every scenario counts lost changes and duplicate rotations from Vault's own
// state, and the suite can write the table of docs/reliability.md.
package faults

import (
	"flag"
	"testing"

	"github.com/rotation-agent/rotation-agent/test/harness"
)

var (
	eventsPerScenario = flag.Int("faults.events", 20, "changes published per scenario (the full run uses 200)")
	reportPath        = flag.String("faults.report", "", "write the reliability report (markdown) to this file")
)

// agentBinary is the rotation-agent command, built once: scenarios run it as separate processes
// so they can kill, freeze and restart it.
var agentBinary string

func TestMain(m *testing.M) {
	flag.Parse()
	harness.RunWithAgent(m, &agentBinary)
}
