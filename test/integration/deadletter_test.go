package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/failpoint"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// A change that kills the agent on every delivery (a poison message) runs out of deliveries;
// the next agent publishes a max_deliveries rejection and copies the event to the dead-letter
// subject, so the failure is visible and the event can be replayed, not silently stuck.
func TestPoisonChangeIsDeadLettered(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	token := v.AgentToken(t)
	v.PutKV(t, "poison/app", map[string]any{"password": "canary-poison-0000"})
	crash := processEnv(v, token, n, "ROTATION_AGENT_NATS_MAX_DELIVER=2", failpoint.EnvVar+"="+failpoint.AfterJournal+"apply")
	payload := harness.ChangeEvent(t, "CHG-POISON-1", kvRef("poison/app"))

	first := harness.StartProcess(t, agentBinary, crash)
	first.WaitReady(t, 30*time.Second)
	bus.Publish(t, payload, "")
	for i, p := range []*harness.Process{first, harness.StartProcess(t, agentBinary, crash)} {
		if code := p.Wait(t, 30*time.Second); code != failpoint.ExitCode {
			t.Fatalf("delivery %d: exit %d, want the failpoint's\n%s", i+1, code, p.Output.String())
		}
	}
	survivor := harness.StartProcess(t, agentBinary, processEnv(v, token, n, "ROTATION_AGENT_NATS_MAX_DELIVER=2"))
	rejections := bus.WaitRejections(t, 1, 60*time.Second)
	r := rejections[0].Data
	if r.ReasonCode != events.ReasonUndeliverable || r.ChangeID != "CHG-POISON-1" || !strings.Contains(r.Reason, "rotation.deadletter") {
		t.Fatalf("rejection = %+v\n%s", r, survivor.Output.String())
	}
	var copied bool
	for _, m := range bus.Payloads() {
		if strings.HasPrefix(m, "rotation.deadletter ") && strings.Contains(m, `"change_id":"CHG-POISON-1"`) {
			copied = true
		}
	}
	if !copied {
		t.Error("the event was not copied to rotation.deadletter")
	}
	if len(bus.Evidence(t, "CHG-POISON-1")) != 0 {
		t.Error("evidence published for a change that never finished")
	}
}
