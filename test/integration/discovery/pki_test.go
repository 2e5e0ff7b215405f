package discovery

import (
	"reflect"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/discovery"
	"github.com/rotation-agent/rotation-agent/discovery/vaultsource"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators/pki"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

var pkiConfig = vaultsource.Config{PKI: []vaultsource.PKISource{{Mount: "pki", Role: "web", DeliverTo: "secret/certs"}}}

// issued is a certificate as Vault issued it.
type issued struct {
	serial, certificate, privateKey string
	expiration                      time.Time
}

// setupPKI mounts pki/ with a root CA and a role "web" for any name and IP SANs.
func setupPKI(t *testing.T, v *harness.Vault) {
	t.Helper()
	if err := v.Root.Sys().Mount("pki", &vaultapi.MountInput{Type: "pki", Config: vaultapi.MountConfigInput{MaxLeaseTTL: "87600h"}}); err != nil {
		t.Fatalf("mount pki: %v", err)
	}
	write(t, v.Root, "pki/root/generate/internal", map[string]any{"common_name": "Discovery Test Root", "ttl": "8760h"})
	write(t, v.Root, "pki/roles/web", map[string]any{"allow_any_name": true, "allow_ip_sans": true, "max_ttl": "720h", "ttl": "24h"})
}

// issue issues a certificate from role web.
func issue(t *testing.T, v *harness.Vault, cn, altNames, ipSANs, ttl string) issued {
	t.Helper()
	s := write(t, v.Root, "pki/issue/web", map[string]any{"common_name": cn, "alt_names": altNames, "ip_sans": ipSANs, "ttl": ttl})
	exp, _ := s.Data["expiration"].(interface{ Int64() (int64, error) }).Int64()
	return issued{
		serial:      s.Data["serial_number"].(string),
		certificate: s.Data["certificate"].(string),
		privateKey:  s.Data["private_key"].(string),
		expiration:  time.Unix(exp, 0),
	}
}

// deliver writes a certificate where its consumer reads it, as the pki rotator does.
func deliver(t *testing.T, v *harness.Vault, path string, c issued) {
	t.Helper()
	v.PutKV(t, path, map[string]any{"certificate": c.certificate, "private_key": c.privateKey, "serial": c.serial})
}

// Delivered certificates are found by the hosts they name; revoked, expired and undelivered
// ones are not, and the binding is what the pki rotator needs (role, serial, deliver_to).
func TestPKICertificatesFoundByHost(t *testing.T) {
	v := harness.StartVault(t)
	c := discoveryClient(t, v)
	setupPKI(t, v)

	expiring := issue(t, v, "web3.example.com", "", "", "3s")
	deliver(t, v, "certs/web3", expiring)
	live := issue(t, v, "web1.example.com", "web1.internal", "10.0.0.5", "")
	deliver(t, v, "certs/web1", live)
	revoked := issue(t, v, "web2.example.com", "", "", "")
	deliver(t, v, "certs/web2", revoked)
	write(t, v.Root, "pki/revoke", map[string]any{"serial_number": revoked.serial})
	undelivered := issue(t, v, "web4.example.com", "", "", "")
	v.PutKV(t, "certs/notes", map[string]any{"note": "no certificate here"})
	time.Sleep(time.Until(expiring.expiration.Add(1500 * time.Millisecond)))

	bs, errs := discover(t, c, pkiConfig)
	if len(errs) != 0 {
		t.Fatalf("discovery errors: %v", errs)
	}
	b := only(t, bs)
	src := "discovery:pki:pki/cert/" + live.serial
	want := discovery.Binding{
		Name: src, Source: src,
		Selectors: discovery.Selectors{discovery.KeyHost: {"10.0.0.5", "web1.example.com", "web1.internal"}},
		Credential: events.CredentialRef{Kind: pki.Kind, Mount: "pki", Path: "web",
			Options: map[string]string{pki.OptionSerial: live.serial, pki.OptionDeliverTo: "secret/certs/web1"}},
	}
	if !reflect.DeepEqual(b, want) {
		t.Fatalf("binding\n got %s\nwant %s", render(b), render(want))
	}
	if p := plan(t, pki.New(v.Root), b); p.Current["serial"] != live.serial {
		t.Errorf("the pki rotator plans to replace %v, want serial %s", p.Current, live.serial)
	}

	ix := discovery.NewIndex(bs)
	for _, host := range []string{"10.0.0.5", "WEB1.internal", "web1.example.com"} {
		m := ix.Resolve(events.Change{Targets: events.Targets{Hosts: []string{host}}})
		if len(m) != 1 || m[0].Credential.Options[pki.OptionSerial] != live.serial || !strings.Contains(m[0].Reason, src) || m[0].Source != src {
			t.Errorf("host %s resolved to %s", host, render(m))
		}
	}
	for _, host := range []string{"web2.example.com", "web3.example.com", "web4.example.com"} {
		if m := ix.Resolve(events.Change{Targets: events.Targets{Hosts: []string{host}}}); len(m) != 0 {
			t.Errorf("host %s (revoked, expired or undelivered) resolved to %s", host, render(m))
		}
	}
	assertNoLeak(t, map[string]string{"live key": live.privateKey, "revoked key": revoked.privateKey,
		"expiring key": expiring.privateKey, "undelivered key": undelivered.privateKey}, bs, errs)
}
