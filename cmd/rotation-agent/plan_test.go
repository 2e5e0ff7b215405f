package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rotation-agent/rotation-agent/events"
)

const planInventory = `version: 1
bindings:
  - name: payments-cert
    select:
      services: [payments-api]
    credential:
      kind: pki
      mount: pki
      path: payments
      options:
        deliver_to: secret/payments/tls
  - name: billing-db
    select:
      services: [billing]
    credential:
      kind: kv-v2
      mount: secret
      path: billing/db
`

// offlineEnv sets up an inventory, a discovery file and a Vault that counts every request it
// gets, and returns the event file and the request counter.
func offlineEnv(t *testing.T, withVault bool) (string, *atomic.Int64) {
	t.Helper()
	cleanEnv(t)
	dir := t.TempDir()
	// An overlap window keeps the rotations low impact (with none they would be rated high).
	t.Setenv("ROTATION_AGENT_OVERLAP", "15m")
	var hits atomic.Int64
	if withVault {
		vault := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			hits.Add(1)
			http.Error(w, `{"errors":["not here"]}`, http.StatusServiceUnavailable)
		}))
		t.Cleanup(vault.Close)
		t.Setenv("VAULT_ADDR", vault.URL)
		t.Setenv("VAULT_TOKEN", "canary-offline-plan-token")
	}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("ROTATION_AGENT_INVENTORY_FILE", write("inventory.yaml", planInventory))
	t.Setenv("ROTATION_AGENT_DISCOVERY_FILE", write("discovery.yaml", "kv:\n  - mount: secret\n    prefix: apps\n"))
	raw, err := os.ReadFile("../../events/testdata/change-completed.json")
	if err != nil {
		t.Fatal(err)
	}
	return write("event.json", string(raw)), &hits
}

// `plan --offline` matches the inventory and the event without contacting Vault: no login,
// no discovery, no rotator asked; the table says discovery was skipped.
func TestPlanOfflineTable(t *testing.T) {
	event, hits := offlineEnv(t, true)
	code, stdout, stderr := run(t, "plan", "--event", event, "--offline")
	if code != exitOK {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"kv-v2:secret/payments/db", "named in the event",
		"pki:pki/payments", "binding payments-cert selects services=payments-api",
		"not checked (offline)",
		"identity impact: low",
		"discovery: skipped (offline: only the inventory and the event were matched; Vault was not contacted; not looked in: kv-v2:secret/apps)",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("plan table lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "billing") {
		t.Errorf("a binding of another service is listed:\n%s", stdout)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("an offline plan sent %d requests to Vault", n)
	}
}

// The JSON report of an offline plan has the matched credentials, no current state, and
// discovery status skipped; Vault and NATS need not be configured at all.
func TestPlanOfflineJSONNeedsNoVault(t *testing.T) {
	event, _ := offlineEnv(t, false)
	code, stdout, stderr := run(t, "plan", "--event", event, "--offline", "--output", "json")
	if code != exitOK {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	var impact events.Impact
	if err := json.Unmarshal([]byte(stdout), &impact); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	if len(impact.Credentials) != 2 || impact.ChangeID != "CHG0031337" {
		t.Fatalf("credentials %+v", impact.Credentials)
	}
	for _, c := range impact.Credentials {
		if c.Action != events.ActionRotate || c.Current != nil || c.WouldDo != nil || c.Error != "" {
			t.Errorf("offline plan of %s: %+v", c.Credential, c)
		}
	}
	d := impact.Discovery
	if d == nil || d.Status != events.DiscoverySkipped || len(d.Sources) != 1 || d.Sources[0] != "kv-v2:secret/apps" {
		t.Errorf("discovery = %+v, want skipped with the configured source", d)
	}
}

// Offline, a credential of a kind the agent has no rotator for still fails the plan, and a
// missing inventory is a configuration error.
func TestPlanOfflineErrors(t *testing.T) {
	event, _ := offlineEnv(t, false)
	raw, err := os.ReadFile(event)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(strings.Replace(string(raw), `"kind": "kv-v2"`, `"kind": "no-such-kind"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ := run(t, "plan", "--event", bad, "--offline")
	if code != exitFailed || !strings.Contains(stdout, "cannot: ") || !strings.Contains(stdout, "identity impact: high") {
		t.Errorf("unknown kind offline: exit %d\n%s", code, stdout)
	}

	t.Setenv("ROTATION_AGENT_INVENTORY_FILE", filepath.Join(t.TempDir(), "missing.yaml"))
	code, _, stderr := run(t, "plan", "--event", event, "--offline")
	if code != exitFailed || !strings.Contains(stderr, "ROTATION_AGENT_INVENTORY_FILE") {
		t.Errorf("missing inventory offline: exit %d, stderr %q", code, stderr)
	}
	checkErrorLines(t, stderr)
}
