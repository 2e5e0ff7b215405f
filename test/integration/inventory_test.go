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

const inventoryV1 = `version: 1
bindings:
  - name: payments-db
    owner: team-payments
    select:
      services: [Payments]
      environments: [prod]
    credential:
      kind: kv-v2
      mount: secret
      path: inventory/payments-db
      fields: [password]
`

const inventoryV2 = inventoryV1 + `  - name: billing-api
    select:
      hosts: [billing-1.example.internal]
    credential:
      kind: kv-v2
      mount: secret
      path: inventory/billing-api
`

// A change that names only its targets gets the credentials the inventory binds to them, with
// the reason in the evidence; the inventory is reloaded when its file changes, and a broken
// file keeps the last good inventory.
func TestInventoryMatchesAndReloads(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	v.PutKV(t, "inventory/payments-db", map[string]any{"user": "p", "password": "canary-inventory-payments-1"})
	v.PutKV(t, "inventory/billing-api", map[string]any{"key": "canary-inventory-billing-2"})
	file := filepath.Join(t.TempDir(), "inventory.yaml")
	if err := os.WriteFile(file, []byte(inventoryV1), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := harness.AgentConfig(t, v, v.AgentToken(t), n)
	cfg.InventoryFile = file
	cfg.InventoryReloadInterval = time.Second
	ra := harness.StartAgent(t, cfg)

	bus.Publish(t, targetedChange(t, "CHG-INV-1", events.Targets{Services: []string{"payments"}, Environments: []string{"prod"}}), "")
	ev := bus.WaitEvidence(t, "CHG-INV-1", waitEvidence)
	if ev.Data.Status != events.StatusReconciled || len(ev.Data.Credentials) != 1 ||
		!strings.Contains(ev.Data.Credentials[0].MatchedBy, "binding payments-db selects services=payments environments=prod") {
		t.Fatalf("evidence = %+v", ev.Data)
	}
	// The binding starts on line 3 of the file.
	if got, want := ev.Data.Credentials[0].Source, "inventory:"+file+":3"; got != want {
		t.Errorf("evidence source = %q, want %q", got, want)
	}
	if got := v.KV(t, "inventory/payments-db", 0).VersionMetadata.Version; got != 2 {
		t.Errorf("bound secret at version %d, want 2", got)
	}
	bus.Publish(t, targetedChange(t, "CHG-INV-2", events.Targets{Services: []string{"payments"}, Environments: []string{"staging"}}), "")
	if ev := bus.WaitEvidence(t, "CHG-INV-2", waitEvidence); ev.Data.Status != events.StatusNoCredentials {
		t.Errorf("a change in staging matched the prod binding: %+v", ev.Data)
	}

	writeAndWait := func(content, logLine string) {
		t.Helper()
		before := strings.Count(ra.Log.String(), logLine)
		time.Sleep(1100 * time.Millisecond) // a new modification time, whatever the file system's resolution
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(15 * time.Second)
		for strings.Count(ra.Log.String(), logLine) == before {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log after the inventory changed", logLine)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	writeAndWait(inventoryV2, "inventory loaded")
	bus.Publish(t, targetedChange(t, "CHG-INV-3", events.Targets{Hosts: []string{"billing-1.example.internal"}}), "")
	if ev := bus.WaitEvidence(t, "CHG-INV-3", waitEvidence); len(ev.Data.Credentials) != 1 || ev.Data.Credentials[0].Path != "inventory/billing-api" ||
		ev.Data.Credentials[0].Source != "inventory:"+file+":13" {
		t.Fatalf("after reload (billing-api is bound at line 13): %+v", ev.Data)
	}

	writeAndWait("version: 1\nbindings:\n  - name: broken\n    credential: {kind: kv-v2}\n", "inventory reload failed")
	if log := ra.Log.String(); !strings.Contains(log, "inventory.yaml:3: bindings[0] (broken): select is required") {
		t.Errorf("the reload failure does not name the file, line and problem:\n%s", log)
	}
	bus.Publish(t, targetedChange(t, "CHG-INV-4", events.Targets{Hosts: []string{"billing-1.example.internal"}}), "")
	if ev := bus.WaitEvidence(t, "CHG-INV-4", waitEvidence); len(ev.Data.Credentials) != 1 || ev.Data.Status != events.StatusReconciled {
		t.Errorf("after a bad reload the last good inventory was not kept: %+v", ev.Data)
	}
}

// An inventory that does not validate stops the start-up with every problem and its line.
func TestBadInventoryStopsStartup(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	file := filepath.Join(t.TempDir(), "inventory.yaml")
	bad := "version: 1\nbindings:\n  - name: a\n    select: {services: [x]}\n    credential: {kind: no-such-kind, mount: m, path: p}\n  - name: a\n    select: {colour: [red]}\n    credential: {kind: kv-v2, mount: m, path: p}\n"
	if err := os.WriteFile(file, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	p := harness.StartProcess(t, agentBinary, processEnv(v, v.AgentToken(t), n, "ROTATION_AGENT_INVENTORY_FILE="+file))
	if code := p.Wait(t, 30*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1; output:\n%s", code, p.Output.String())
	}
	out := p.Output.String()
	for _, want := range []string{"inventory.yaml:5: bindings[0] (a).credential.kind: unknown credential kind \"no-such-kind\"", "inventory.yaml:7: bindings[1] (a).select: unknown field \"colour\""} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
