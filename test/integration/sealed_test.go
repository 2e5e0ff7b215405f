package integration

import (
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// A sealed Vault pauses the work without acknowledging it: nothing is lost, nothing is
// reported as failed, and the change is reconciled, once, after the unseal.
func TestSealedVaultPausesWork(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	v.PutKV(t, "sealed/app", map[string]any{"password": "canary-sealed-0000"})
	ra := harness.StartAgent(t, harness.AgentConfig(t, v, v.AgentToken(t), n))

	v.Seal(t)
	bus.Publish(t, harness.ChangeEvent(t, "CHG-SEALED-1", kvRef("sealed/app")), "")
	time.Sleep(4 * time.Second)
	if got := bus.Evidence(t, "CHG-SEALED-1"); len(got) != 0 {
		t.Fatalf("evidence published while Vault was sealed: %+v", got[0].Data)
	}
	v.Unseal(t)
	ev := bus.WaitEvidence(t, "CHG-SEALED-1", 90*time.Second).Data
	if ev.Status != events.StatusReconciled {
		t.Fatalf("after unseal: %+v\n%s", ev, ra.Log.String())
	}
	if got := v.KV(t, "sealed/app", 0).VersionMetadata.Version; got != 2 {
		t.Errorf("secret at version %d after the outage, want 2", got)
	}
}
