package integration

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// waitLogCount waits until the process output holds line more than before times.
func waitLogCount(t *testing.T, p *harness.Process, line string, before int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(p.Output.String(), line) <= before {
		if time.Now().After(deadline) || p.Done() {
			t.Fatalf("no new %q in the agent output:\n%s", line, p.Output.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SIGHUP makes the running agent read its inventory again, when the file check would not see
// the edit: the check runs once an hour and the file keeps its modification time. The next
// change uses the new binding; a bad file sent with SIGHUP keeps the last good inventory.
func TestSighupReloadsTheInventory(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	v.PutKV(t, "inventory/payments-db", map[string]any{"user": "p", "password": "canary-sighup-payments-1"})
	v.PutKV(t, "inventory/billing-api", map[string]any{"key": "canary-sighup-billing-2"})
	file := filepath.Join(t.TempDir(), "inventory.yaml")
	mtime := time.Now().Add(-time.Hour)
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(file, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	write(inventoryV1)
	p := harness.StartProcess(t, agentBinary, processEnv(v, v.AgentToken(t), n,
		"ROTATION_AGENT_INVENTORY_FILE="+file, "ROTATION_AGENT_INVENTORY_RELOAD_INTERVAL=1h"))
	p.WaitReady(t, 30*time.Second)
	billing := events.Targets{Hosts: []string{"billing-1.example.internal"}}

	bus.Publish(t, targetedChange(t, "CHG-HUP-1", billing), "")
	if ev := bus.WaitEvidence(t, "CHG-HUP-1", waitEvidence); ev.Data.Status != events.StatusNoCredentials {
		t.Fatalf("before the reload billing matched %+v", ev.Data.Credentials)
	}

	write(inventoryV2)
	loaded := strings.Count(p.Output.String(), "inventory loaded")
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLogCount(t, p, "inventory loaded", loaded)
	bus.Publish(t, targetedChange(t, "CHG-HUP-2", billing), "")
	ev := bus.WaitEvidence(t, "CHG-HUP-2", waitEvidence)
	if ev.Data.Status != events.StatusReconciled || len(ev.Data.Credentials) != 1 || ev.Data.Credentials[0].Path != "inventory/billing-api" ||
		!strings.Contains(ev.Data.Credentials[0].MatchedBy, "binding billing-api") {
		t.Fatalf("after SIGHUP: %+v", ev.Data)
	}
	if got := v.KV(t, "inventory/billing-api", 0).VersionMetadata.Version; got != 2 {
		t.Errorf("the newly bound secret is at version %d, want 2", got)
	}

	write("version: 1\nbindings:\n  - name: broken\n    credential: {kind: kv-v2}\n")
	failed := strings.Count(p.Output.String(), "inventory reload failed")
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLogCount(t, p, "inventory reload failed", failed)
	bus.Publish(t, targetedChange(t, "CHG-HUP-3", billing), "")
	if ev := bus.WaitEvidence(t, "CHG-HUP-3", waitEvidence); ev.Data.Status != events.StatusReconciled || len(ev.Data.Credentials) != 1 {
		t.Errorf("after a bad SIGHUP reload the last good inventory was not kept: %+v", ev.Data)
	}
	out := p.Output.String()
	if !strings.Contains(out, "inventory.yaml:3: bindings[0] (broken): select is required") || !strings.Contains(out, "signal") {
		t.Errorf("the failed reload does not name the problem and its trigger:\n%s", out)
	}
	if p.Done() {
		t.Errorf("SIGHUP ended the agent:\n%s", out)
	}
}
