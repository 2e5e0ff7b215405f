package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"

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

// deliverWebCert mounts pki with role web, issues a certificate of web.example.internal and
// delivers it to secret/certs/web as the pki rotator does; it returns the serial.
func deliverWebCert(t *testing.T, v *harness.Vault) string {
	t.Helper()
	root := v.Root
	must(t, root.Sys().Mount("pki", &vaultapi.MountInput{Type: "pki", Config: vaultapi.MountConfigInput{MaxLeaseTTL: "87600h"}}))
	write(t, root, "pki/root/generate/internal", map[string]any{"common_name": "Test Root", "ttl": "87600h"})
	write(t, root, "pki/roles/web", map[string]any{"allowed_domains": "example.internal", "allow_subdomains": true, "max_ttl": "72h"})
	issued := write(t, root, "pki/issue/web", map[string]any{"common_name": "web.example.internal", "ttl": "24h"})
	serial := issued.Data["serial_number"].(string)
	v.PutKV(t, "certs/web", map[string]any{"certificate": issued.Data["certificate"], "private_key": issued.Data["private_key"],
		"issuing_ca": issued.Data["issuing_ca"], "serial": serial})
	return serial
}

// A certificate both declared in the inventory and discovered in Vault is one credential: a
// change that matches both bindings rotates it once (one new certificate), as the inventory
// declares it, and the evidence says discovery found it too.
func TestInventoryAndDiscoveryOfOneCertificateRotateItOnce(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	root := v.Root
	oldSerial := deliverWebCert(t, v)

	v.AgentToken(t)
	must(t, root.Sys().PutPolicy("discovery", discoveryPolicy))
	tok, err := root.Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: []string{"rotation-agent", "discovery"}, NoDefaultPolicy: true})
	must(t, err)
	dir := t.TempDir()
	cfg := harness.AgentConfig(t, v, tok.Auth.ClientToken, n)
	cfg.InventoryFile = filepath.Join(dir, "inventory.yaml")
	cfg.DiscoveryFile = filepath.Join(dir, "discovery.yaml")
	must(t, os.WriteFile(cfg.InventoryFile, []byte(webCertInventory), 0o600))
	must(t, os.WriteFile(cfg.DiscoveryFile, []byte("pki:\n  - mount: pki\n    role: web\n    deliver_to: secret/certs\ninterval: 1h\n"), 0o600))
	ra := harness.StartAgent(t, cfg)
	before := v.List(t, "pki/certs")

	// The service selects the inventory binding, the host the discovered one.
	var ev events.ChangeEvent
	mustUnmarshal(t, harness.ChangeEvent(t, "CHG-MERGE-1"), &ev)
	ev.Data.Targets = events.Targets{Services: []string{"web"}, Hosts: []string{"web.example.internal"}}
	bus.Publish(t, mustMarshal(t, ev), "")
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
