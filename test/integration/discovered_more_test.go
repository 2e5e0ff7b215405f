package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// discoveryPolicy is the read access docs/inventory.md tells operators to add for the pki and
// approle sources configured below.
const discoveryPolicy = `
path "secret/metadata/certs/*" { capabilities = ["list", "read"] }
path "secret/metadata/certs" { capabilities = ["list"] }
path "secret/data/certs/*"     { capabilities = ["read", "create", "update"] }
path "pki/cert/*"              { capabilities = ["read"] }
path "auth/approle/role"                             { capabilities = ["list"] }
path "auth/approle/role/+/secret-id"                 { capabilities = ["list"] }
path "auth/approle/role/+/secret-id-accessor/lookup" { capabilities = ["update"] }
`

// A certificate found by its host and an AppRole secret id found by its metadata are
// rotated by changes that name only a host and a service.
func TestDiscoveredCertificateAndSecretIDAreRotated(t *testing.T) {
	ctx := context.Background()
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	root := v.Root

	// A certificate of web.example.internal delivered where its consumer reads it.
	oldSerial := deliverWebCert(t, v)
	// A secret id whose metadata names its service and where it is delivered.
	sid := deliverCISecretID(t, v)

	token := v.AgentTokenWithPolicy(t, "discovery", discoveryPolicy)
	file := filepath.Join(t.TempDir(), "discovery.yaml")
	must(t, os.WriteFile(file, []byte("pki:\n  - mount: pki\n    role: web\n    deliver_to: secret/certs\napprole:\n  - mount: approle\ninterval: 1h\n"), 0o600))
	cfg := harness.AgentConfig(t, v, token, n)
	cfg.DiscoveryFile = file
	// StartAgent returns once the agent consumes changes: after the first discovery refresh.
	ra := harness.StartAgent(t, cfg)

	bus.Publish(t, targetedChange(t, "CHG-DISC-PKI", events.Targets{Hosts: []string{"web.example.internal"}}), "")
	bus.Publish(t, targetedChange(t, "CHG-DISC-AR", events.Targets{Services: []string{"ci"}}), "")
	for id, kind := range map[string]string{"CHG-DISC-PKI": "pki", "CHG-DISC-AR": "approle-secret-id"} {
		ev := bus.WaitEvidence(t, id, waitEvidence).Data
		if ev.Status != events.StatusReconciled || len(ev.Credentials) != 1 || ev.Credentials[0].Kind != kind ||
			!strings.HasPrefix(ev.Credentials[0].MatchedBy, "binding discovery:") {
			t.Fatalf("%s: %+v\n%s", id, ev, ra.Log.String())
		}
	}
	if serial := v.KV(t, "certs/web", 0).Data["serial"]; serial == oldSerial {
		t.Error("the discovered certificate was not replaced")
	}
	newSID, _ := v.KV(t, "ci/approle", 0).Data["secret_id"].(string)
	if newSID == "" || newSID == sid.Data["secret_id"] {
		t.Fatal("the discovered secret id was not replaced")
	}
	roleID, err := root.Logical().ReadWithContext(ctx, "auth/approle/role/ci/role-id")
	must(t, err)
	login, err := root.Clone()
	must(t, err)
	login.ClearToken()
	if _, err := login.Logical().Write("auth/approle/login", map[string]any{"role_id": roleID.Data["role_id"], "secret_id": newSID}); err != nil {
		t.Errorf("the delivered secret id does not log in: %v", err)
	}
}
