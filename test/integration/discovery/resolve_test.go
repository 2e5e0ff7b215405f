package discovery

import (
	"reflect"
	"strings"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/discovery"
	"github.com/rotation-agent/rotation-agent/discovery/vaultsource"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// A change's targets resolve through the discovered bindings of every source to the right
// credentials, each with a reason naming the discovery source; the action policy of the
// change category applies to discovered bindings as to inventory ones.
func TestChangeResolvesThroughDiscoveredBindings(t *testing.T) {
	v := harness.StartVault(t)
	c := discoveryClient(t, v)
	setupPKI(t, v)
	setupAppRole(t, v)

	putTagged(t, v, "apps/web/db", map[string]any{"password": "pw-web-db-6e1f0a93"}, map[string]any{"service": "web", "environment": "prod", "rotate_fields": "password"})
	putTagged(t, v, "apps/web/staging-db", map[string]any{"password": "pw-web-stg-1b7c44d0"}, map[string]any{"service": "web", "environment": "staging"})
	putTagged(t, v, "apps/billing/db", map[string]any{"password": "pw-billing-9d3e2f17"}, map[string]any{"service": "billing"})
	cert := issue(t, v, "web1.example.com", "", "", "")
	deliver(t, v, "certs/web1", cert)
	other := issue(t, v, "db9.example.com", "", "", "")
	deliver(t, v, "certs/db9", other)
	sid, acc := secretID(t, v, "web", map[string]string{"service": "web", "deliver_to": "secret/approle/web"})
	tok, err := v.Root.Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: []string{"default"}, TTL: "1h", Metadata: map[string]string{"host": "web1.example.com"}})
	if err != nil {
		t.Fatal(err)
	}

	cfg := vaultsource.Config{
		KV:      kvConfig.KV,
		PKI:     pkiConfig.PKI,
		AppRole: appRoleConfig.AppRole,
		Tokens:  true,
	}
	bs := mustDiscover(t, c, cfg)
	if len(bs) != 7 {
		t.Fatalf("want 3 KV secrets, 2 certificates, 1 role and 1 token, got %s", render(bs))
	}
	named := events.CredentialRef{Kind: "kv-v2", Mount: "secret", Path: "apps/manual"}
	change := events.Change{
		ID:          "CHG-RESOLVE",
		Targets:     events.Targets{Services: []string{"web"}, Environments: []string{"prod"}, Hosts: []string{"web1.example.com"}},
		Credentials: []events.CredentialRef{named},
	}
	ix := discovery.NewIndex(bs)
	matches := ix.Resolve(change)
	wantSources := map[string]string{
		named.ID():                         "event",
		"kv-v2:secret/apps/web/db":         "discovery:kv-v2:secret/apps/web/db",
		"pki:pki/web":                      "discovery:pki:pki/cert/" + cert.serial,
		"approle-secret-id:approle/web":    "discovery:approle:approle/role/web",
		"token:token/" + tok.Auth.Accessor: "discovery:token:token/accessors/" + tok.Auth.Accessor,
	}
	got := map[string]string{}
	for _, m := range matches {
		got[m.Credential.ID()] = m.Source
		if m.Source != "event" && !strings.Contains(m.Reason, m.Source) {
			t.Errorf("%s: reason %q does not name its source %s", m.Credential.ID(), m.Reason, m.Source)
		}
		switch m.Credential.Kind {
		case "pki":
			if m.Credential.Options["serial"] != cert.serial || m.Credential.Options["deliver_to"] != "secret/certs/web1" {
				t.Errorf("certificate match %s", render(m))
			}
		case "approle-secret-id":
			if m.Credential.Options["accessor"] != acc {
				t.Errorf("secret id match %s", render(m))
			}
		case "token":
			if m.Credential.EffectiveAction() != events.ActionRevoke {
				t.Errorf("token match %s, want revoke", render(m))
			}
		}
	}
	if !reflect.DeepEqual(got, wantSources) {
		t.Errorf("resolved\n got %v\nwant %v", got, wantSources)
	}
	if matches[0].Source != "event" {
		t.Errorf("the credential named in the event comes first: %s", render(matches))
	}

	// A decommission of the same targets revokes what it touches.
	change.Category = discovery.CategoryDecommission
	for _, m := range ix.Resolve(change) {
		if m.Source != "event" && m.Credential.Action != events.ActionRevoke {
			t.Errorf("decommission: %s has action %q, want revoke", m.Credential.ID(), m.Credential.Action)
		}
	}
	// Targets nothing was discovered for resolve to the named credential only.
	if m := ix.Resolve(events.Change{Targets: events.Targets{Services: []string{"unknown"}}, Credentials: []events.CredentialRef{named}}); len(m) != 1 {
		t.Errorf("unknown service resolved to %s", render(m))
	}
	assertNoLeak(t, map[string]string{"secret id": sid, "token": tok.Auth.ClientToken, "certificate key": cert.privateKey,
		"web password": "pw-web-db-6e1f0a93", "billing password": "pw-billing-9d3e2f17"}, bs, matches)
}
