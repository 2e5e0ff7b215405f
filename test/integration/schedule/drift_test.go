package schedule

import (
	"reflect"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/agent"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/clock"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

const driftInventory = `version: 1
bindings:
  - name: payments-app
    select: {services: [payments]}
    credential: {kind: kv-v2, mount: secret, path: payments/db}
    approved_entitlements:
      - identity: approle:approle/payments
        policies: [payments-read]
`

// The scheduled drift check compares every approved identity with Vault even when no change
// touches it: an AppRole role that gained a policy is published as signed drift evidence of
// its own, naming the extra policy, and nothing is rotated.
func TestScheduledDriftCheckPublishesEvidence(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	v.PutKV(t, "payments/db", map[string]any{"password": "canary-drift-check-5e0d"})
	if err := v.Root.Sys().EnableAuthWithOptions("approle", &vaultapi.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Root.Logical().Write("auth/approle/role/payments", map[string]any{"token_policies": []string{"payments-read", "admin"}}); err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC))
	cfg := config(t, v, n)
	cfg.InventoryFile = writeFile(t, "inventory.yaml", driftInventory)
	cfg.Schedule.DriftCheck = "@hourly"
	harness.StartAgentWith(t, cfg, agent.Options{Clock: clk})
	waitKey(t, n, cfg.NATS.JournalBucket, "sched.>")

	at := time.Date(2026, 12, 1, 11, 0, 5, 0, time.UTC)
	clk.Set(at)
	ev := bus.WaitEvidence(t, "drift-check:2026-12-01T11:00:05Z", waitEvidence).Data
	if ev.Trigger != events.TriggerSchedule || ev.Status != events.StatusDrift || len(ev.Credentials) != 0 {
		t.Fatalf("drift-check evidence = trigger %s, status %s, %d credentials; want schedule, drift, none", ev.Trigger, ev.Status, len(ev.Credentials))
	}
	if len(ev.Entitlements) != 1 || !reflect.DeepEqual(ev.Entitlements[0].ExtraPolicies, []string{"admin"}) ||
		ev.Entitlements[0].Source != "binding payments-app" {
		t.Errorf("entitlements = %+v, want the binding's identity with extra [admin]", ev.Entitlements)
	}
	if ev.Signature == nil || ev.Chain == nil {
		t.Errorf("drift-check evidence is not signed and chained: %+v %+v", ev.Signature, ev.Chain)
	}
	if got := v.KV(t, "payments/db", 0).VersionMetadata.Version; got != 1 {
		t.Errorf("the drift check rotated payments/db (version %d)", got)
	}
}
