package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// A planned change gets an identity impact report before it is implemented — the credentials
// tied to it, the action each would get, and the impact level — and nothing is changed.
func TestPlannedChangeImpactReport(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	v.PutKV(t, "inventory/payments-db", map[string]any{"user": "p", "password": "canary-impact-payments-1"})
	file := filepath.Join(t.TempDir(), "inventory.yaml")
	if err := os.WriteFile(file, []byte(inventoryV1), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := harness.AgentConfig(t, v, v.AgentToken(t), n)
	cfg.InventoryFile = file
	cfg.Overlap = 15 * time.Minute // ordinary rotations keep a window; an exposure cuts off at once
	harness.StartAgent(t, cfg)

	planned := func(id, category string, targets events.Targets) []byte {
		var ev events.ChangeEvent
		mustUnmarshal(t, harness.ChangeEvent(t, id), &ev)
		ev.Type = events.TypeChangePlanned
		ev.Data.State = "approved"
		ev.Data.Category = category
		ev.Data.Targets = targets
		return mustMarshal(t, ev)
	}
	prod := events.Targets{Services: []string{"payments"}, Environments: []string{"prod"}}
	subject := "rotation.changes.planned"
	bus.PublishTo(t, subject, planned("CHG-PLAN-LOW", "", prod), "")
	bus.PublishTo(t, subject, planned("CHG-PLAN-HIGH", "decommission", prod), "")
	bus.PublishTo(t, subject, planned("CHG-PLAN-EXPOSURE", "exposure", prod), "")
	bus.PublishTo(t, subject, planned("CHG-PLAN-NONE", "", events.Targets{Services: []string{"unrelated"}}), "")

	low := bus.WaitImpact(t, "CHG-PLAN-LOW", waitEvidence).Data
	if low.Level != events.ImpactLow || len(low.Credentials) != 1 || low.Credentials[0].Action != events.ActionRotate ||
		!strings.Contains(low.Credentials[0].MatchedBy, "binding payments-db") || len(low.Credentials[0].WouldDo) == 0 {
		t.Errorf("ordinary planned change: %+v", low)
	}
	if len(low.Credentials) == 1 && low.Credentials[0].Source != "inventory:"+file+":3" {
		t.Errorf("impact source = %q, want the binding's file and line", low.Credentials[0].Source)
	}
	if len(low.Credentials) == 1 && (low.Credentials[0].Overlap != "15m0s" || len(low.Reasons) != 1 ||
		low.Reasons[0] != "kv-v2:secret/inventory/payments-db will be rotated with a 15m0s overlap window before the old credential is retired") {
		t.Errorf("ordinary planned change: overlap %q, reasons %q", low.Credentials[0].Overlap, low.Reasons)
	}
	// An exposure rotates with no overlap window: the old value is cut off at once.
	exposure := bus.WaitImpact(t, "CHG-PLAN-EXPOSURE", waitEvidence).Data
	if exposure.Level != events.ImpactHigh || len(exposure.Credentials) != 1 || exposure.Credentials[0].Action != events.ActionRotate ||
		exposure.Credentials[0].Overlap != "0s" || len(exposure.Reasons) != 1 ||
		!strings.HasPrefix(exposure.Reasons[0], "kv-v2:secret/inventory/payments-db will be rotated with no overlap window") {
		t.Errorf("exposure planned: %+v", exposure)
	}
	high := bus.WaitImpact(t, "CHG-PLAN-HIGH", waitEvidence).Data
	// A decommission revokes; a KV v2 secret cannot be revoked, which the board must see too.
	if high.Level != events.ImpactHigh || high.Credentials[0].Action != events.ActionRevoke ||
		!strings.Contains(strings.Join(high.Reasons, " "), "kv-v2:secret/inventory/payments-db cannot be acted on") {
		t.Errorf("decommission planned: %+v", high)
	}
	if none := bus.WaitImpact(t, "CHG-PLAN-NONE", waitEvidence).Data; none.Level != events.ImpactNone || len(none.Credentials) != 0 {
		t.Errorf("unrelated planned change: %+v", none)
	}
	if got := v.KV(t, "inventory/payments-db", 0).VersionMetadata.Version; got != 1 {
		t.Errorf("a planned change wrote to Vault: version %d", got)
	}
	if len(bus.Evidence(t, "CHG-PLAN-LOW")) != 0 {
		t.Errorf("a planned change produced reconciliation evidence")
	}
}
