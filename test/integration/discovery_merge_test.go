package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// webCertInventory declares the certificate delivered to secret/certs/web, without its serial.
const webCertInventory = `version: 1
bindings:
  - name: web-cert
    select:
      services: [web]
    credential:
      kind: pki
      mount: pki
      path: web
      options:
        deliver_to: secret/certs/web
`

// A certificate both declared in the inventory and discovered in Vault is one credential: a
// change that matches both bindings rotates it once (one new certificate), as the inventory
// declares it, and the evidence says discovery found it too.
func TestInventoryAndDiscoveryOfOneCertificateRotateItOnce(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	oldSerial := deliverWebCert(t, v)

	dir := t.TempDir()
	cfg := harness.AgentConfig(t, v, v.AgentTokenWithPolicy(t, "discovery", discoveryPolicy), n)
	cfg.InventoryFile = filepath.Join(dir, "inventory.yaml")
	cfg.DiscoveryFile = filepath.Join(dir, "discovery.yaml")
	must(t, os.WriteFile(cfg.InventoryFile, []byte(webCertInventory), 0o600))
	must(t, os.WriteFile(cfg.DiscoveryFile, []byte("pki:\n  - mount: pki\n    role: web\n    deliver_to: secret/certs\ninterval: 1h\n"), 0o600))
	ra := harness.StartAgent(t, cfg)
	before := v.List(t, "pki/certs")

	// The service selects the inventory binding, the host the discovered one.
	bus.Publish(t, targetedChange(t, "CHG-MERGE-1", events.Targets{Services: []string{"web"}, Hosts: []string{"web.example.internal"}}), "")
	got := bus.WaitEvidence(t, "CHG-MERGE-1", waitEvidence).Data
	if got.Status != events.StatusReconciled || len(got.Credentials) != 1 {
		t.Fatalf("evidence = %+v\nlog:\n%s", got, ra.Log.String())
	}
	c := got.Credentials[0]
	wantWhy := "binding web-cert selects services=web; discovery also found it (binding discovery:pki:pki/cert/" + oldSerial + ")"
	if c.Kind != "pki" || c.MatchedBy != wantWhy {
		t.Errorf("credential %s matched by %q, want %q", c.Credential, c.MatchedBy, wantWhy)
	}

	after := v.List(t, "pki/certs")
	if len(after) != len(before)+1 {
		t.Fatalf("%d certificates issued for the change, want exactly one (before %v, after %v)", len(after)-len(before), before, after)
	}
	delivered, _ := v.KV(t, "certs/web", 0).Data["serial"].(string)
	if delivered == oldSerial || !strings.Contains(strings.Join(after, " "), delivered) || strings.Contains(strings.Join(before, " "), delivered) {
		t.Errorf("delivered serial %q is not the one new certificate (old %s)", delivered, oldSerial)
	}
	if v.KV(t, "certs/web", 0).VersionMetadata.Version != 2 {
		t.Errorf("the delivery secret was written %d times, want once", v.KV(t, "certs/web", 0).VersionMetadata.Version-1)
	}
}
