package ops

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators/leases"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// After a real rotation and a refused message, /metrics counts them under the conventional
// names, the journal gauge sees the credential waiting to retire its old value, and no secret
// value appears in the exposition.
func TestMetricsCountRealWork(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	const oldPassword = "canary-metrics-old-7d1e"
	v.PutKV(t, "ops/app", map[string]any{"password": oldPassword})
	v.PutKV(t, "ops/blackout", map[string]any{"password": "canary-metrics-blackout-2c4a"})
	cfg := harness.AgentConfig(t, v, v.AgentToken(t), n)
	cfg.RetireInterval = time.Second
	// A binding in a blackout: a change matching it is deferred.
	now := time.Now().UTC()
	inventory := filepath.Join(t.TempDir(), "inventory.yaml")
	if err := os.WriteFile(inventory, []byte(fmt.Sprintf(`version: 1
bindings:
  - name: ops-blackout
    select: {services: [ops-blackout]}
    credential: {kind: kv-v2, mount: secret, path: ops/blackout}
    blackouts:
      - {from: %q, to: %q}
`, now.Add(-time.Hour).Format(time.RFC3339), now.Add(48*time.Hour).Format(time.RFC3339))), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.InventoryFile = inventory
	ra := harness.StartAgent(t, cfg)
	metricsURL := "http://" + ra.MetricsAddr + "/metrics"

	// Before any work: the series a dashboard needs exist, at zero.
	_, before := get(t, metricsURL)
	for _, want := range []string{"rotation_agent_reviews_open 0", "rotation_agent_reviews_overdue 0", "rotation_agent_journal_records_not_final 0"} {
		if !strings.Contains(before, want) {
			t.Errorf("/metrics before any work lacks %q", want)
		}
	}

	ref := events.CredentialRef{Kind: "kv-v2", Mount: "secret", Path: "ops/app", Fields: []string{"password"}, Options: map[string]string{"overlap": "1h"}}
	bus.Publish(t, harness.ChangeEvent(t, "CHG-OPS-1", ref), "evt-CHG-OPS-1")
	ev := bus.WaitEvidence(t, "CHG-OPS-1", 30*time.Second)
	if ev.Data.Status != events.StatusReconciled {
		t.Fatalf("evidence status %s, want reconciled: %+v", ev.Data.Status, ev.Data)
	}
	bus.Publish(t, []byte("{not json"), "")
	bus.WaitRejections(t, 1, 30*time.Second)
	// A credential asking for a privileged option no binding declares is refused (failed).
	force := events.CredentialRef{Kind: leases.Kind, Mount: "sys", Path: "database/creds/ops", Options: map[string]string{leases.OptionForce: "true"}}
	bus.Publish(t, harness.ChangeEvent(t, "CHG-OPS-2", force), "evt-CHG-OPS-2")
	if ev := bus.WaitEvidence(t, "CHG-OPS-2", 30*time.Second); ev.Data.Credentials[0].Outcome != events.OutcomeFailed {
		t.Fatalf("privileged option evidence = %+v, want failed", ev.Data)
	}
	// A credential in a blackout is deferred.
	blackout := targetedChange(t, "CHG-OPS-3", "ops-blackout")
	bus.Publish(t, blackout, "evt-CHG-OPS-3")
	if ev := bus.WaitEvidence(t, "CHG-OPS-3", 30*time.Second); ev.Data.Status != events.StatusDeferred {
		t.Fatalf("blackout evidence = %+v, want deferred", ev.Data)
	}

	var body string
	waitFor(t, metricsURL, "counters after the rotation", 30*time.Second, func(code int, b string) bool {
		body = b
		return code == http.StatusOK && strings.Contains(b, "rotation_agent_journal_records_not_final 1") &&
			strings.Contains(b, `rotation_agent_rejections_total{reason="malformed_json"} 1`)
	})
	for _, want := range []string{
		`rotation_agent_rotations_total{kind="kv-v2",outcome="rotated"} 1`,
		`rotation_agent_rotation_duration_seconds_count{kind="kv-v2",outcome="rotated"} 1`,
		`rotation_agent_rotations_total{kind="lease-prefix",outcome="failed"} 1`,
		`rotation_agent_rotations_total{kind="kv-v2",outcome="deferred"} 1`,
		`rotation_agent_events_consumed_total{type="` + events.TypeChangeCompleted + `"} 3`,
		`rotation_agent_events_consumed_total{type="invalid"} 1`,
		"# TYPE rotation_agent_rotation_duration_seconds histogram",
		"# TYPE rotation_agent_rotations_total counter",
		"process_resident_memory_bytes",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	newPassword, _ := v.KV(t, "ops/app", 0).Data["password"].(string)
	for _, secret := range []string{oldPassword, newPassword} {
		if secret != "" && strings.Contains(body, secret) {
			t.Fatal("a secret value appears in /metrics")
		}
	}
}

// targetedChange is a change-completed event naming no credential, touching service.
func targetedChange(t *testing.T, changeID, service string) []byte {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(harness.ChangeEvent(t, changeID), &ev); err != nil {
		t.Fatal(err)
	}
	data := ev["data"].(map[string]any)
	delete(data, "credentials")
	data["targets"] = map[string]any{"services": []string{service}}
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
