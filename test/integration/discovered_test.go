package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// Credentials tagged in Vault itself are discovered, and a change that names only its
// targets rotates them, the evidence saying which discovery source matched.
func TestDiscoveredCredentialIsRotated(t *testing.T) {
	ctx := context.Background()
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	v.PutKV(t, "apps/checkout/db", map[string]any{"user": "checkout", "password": "canary-discovered-checkout-1"})
	if err := v.Root.KVv2("secret").PutMetadata(ctx, "apps/checkout/db", vaultapi.KVMetadataPutInput{
		CustomMetadata: map[string]any{"service": "checkout", "environment": "prod", "rotate_fields": "password"},
	}); err != nil {
		t.Fatal(err)
	}
	v.PutKV(t, "apps/untagged", map[string]any{"password": "canary-discovered-untagged-2"})
	// Discovery reads metadata; the documented policy plus listing for this prefix.
	if err := v.Root.Sys().PutPolicy("discovery", `path "secret/metadata/apps" { capabilities = ["list"] }
path "secret/metadata/apps/*" { capabilities = ["list", "read"] }`); err != nil {
		t.Fatal(err)
	}
	v.AgentToken(t)
	tok, err := v.Root.Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: []string{"rotation-agent", "discovery"}, NoDefaultPolicy: true})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "discovery.yaml")
	if err := os.WriteFile(file, []byte("kv:\n  - mount: secret\n    prefix: apps\ninterval: 1h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := harness.AgentConfig(t, v, tok.Auth.ClientToken, n)
	cfg.DiscoveryFile = file
	// StartAgent returns once the agent consumes changes: after the first discovery refresh.
	ra := harness.StartAgent(t, cfg)

	var ev events.ChangeEvent
	mustUnmarshal(t, harness.ChangeEvent(t, "CHG-DISC-1"), &ev)
	ev.Data.Targets = events.Targets{Services: []string{"checkout"}, Environments: []string{"prod"}}
	bus.Publish(t, mustMarshal(t, ev), "")
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
