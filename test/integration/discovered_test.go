package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// Credentials tagged in Vault itself are discovered, and a change that names only its
// targets rotates them, the evidence saying which discovery source matched.
func TestDiscoveredCredentialIsRotated(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	putTaggedKV(t, v, "apps/checkout/db", map[string]any{"user": "checkout", "password": "canary-discovered-checkout-1"},
		map[string]any{"service": "checkout", "environment": "prod", "rotate_fields": "password"})
	v.PutKV(t, "apps/untagged", map[string]any{"password": "canary-discovered-untagged-2"})
	// Discovery reads metadata; the documented policy plus listing for this prefix.
	token := v.AgentTokenWithPolicy(t, "discovery", kvDiscoveryPolicy)
	file := filepath.Join(t.TempDir(), "discovery.yaml")
	if err := os.WriteFile(file, []byte("kv:\n  - mount: secret\n    prefix: apps\ninterval: 1h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := harness.AgentConfig(t, v, token, n)
	cfg.DiscoveryFile = file
	// StartAgent returns once the agent consumes changes: after the first discovery refresh.
	ra := harness.StartAgent(t, cfg)

	bus.Publish(t, targetedChange(t, "CHG-DISC-1", events.Targets{Services: []string{"checkout"}, Environments: []string{"prod"}}), "")
	got := bus.WaitEvidence(t, "CHG-DISC-1", waitEvidence).Data
	if got.Status != events.StatusReconciled || len(got.Credentials) != 1 {
		t.Fatalf("evidence = %+v\nlog:\n%s", got, ra.Log.String())
	}
	c := got.Credentials[0]
	if c.Path != "apps/checkout/db" || !strings.Contains(c.MatchedBy, "discovery:kv-v2:secret/apps/checkout/db") {
		t.Errorf("credential %s matched by %q", c.Credential, c.MatchedBy)
	}
	cur := v.KV(t, "apps/checkout/db", 0)
	if cur.VersionMetadata.Version != 2 || cur.Data["user"] != "checkout" || cur.Data["password"] == "canary-discovered-checkout-1" {
		t.Errorf("tagged secret not rotated as tagged: version %d", cur.VersionMetadata.Version)
	}
	if v.KV(t, "apps/untagged", 0).VersionMetadata.Version != 1 {
		t.Errorf("an untagged secret was rotated")
	}
}
