package discovery

import (
	"reflect"
	"testing"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators/approle"
	"github.com/rotation-agent/rotation-agent/rotators/pki"
	"github.com/rotation-agent/rotation-agent/rotators/token"
)

func TestIdentityKindNamesMatchTheRotators(t *testing.T) {
	for _, p := range [][2]string{{kindPKI, pki.Kind}, {kindAppRole, approle.Kind}, {kindToken, token.Kind},
		{optDeliverTo, pki.OptionDeliverTo}, {optDeliverTo, approle.OptionDeliverTo}} {
		if p[0] != p[1] {
			t.Errorf("discovery uses %q where the rotator says %q", p[0], p[1])
		}
	}
}

func TestIdentity(t *testing.T) {
	ref := func(kind, mount, path string, opts map[string]string) events.CredentialRef {
		return events.CredentialRef{Kind: kind, Mount: mount, Path: path, Options: opts}
	}
	tests := []struct {
		name string
		a, b events.CredentialRef
		same bool
	}{
		{"pki: declared without serial, discovered with it",
			ref("pki", "pki", "web", map[string]string{"deliver_to": "secret/certs/web"}),
			ref("pki", "pki", "web", map[string]string{"deliver_to": "secret/certs/web", "serial": "aa:bb"}), true},
		{"pki: the delivery path decides, not the role or the slashes",
			ref("pki", "pki", "web", map[string]string{"deliver_to": "secret/certs/web"}),
			ref("pki", "pki-int", "edge", map[string]string{"deliver_to": "/secret/certs/web/", "ttl": "24h"}), true},
		{"pki: two delivery secrets are two certificates",
			ref("pki", "pki", "web", map[string]string{"deliver_to": "secret/certs/web"}),
			ref("pki", "pki", "web", map[string]string{"deliver_to": "secret/certs/api"}), false},
		{"pki: without deliver_to the serial still tells certificates apart",
			ref("pki", "pki", "web", map[string]string{"serial": "aa"}),
			ref("pki", "pki", "web", map[string]string{"serial": "bb"}), false},
		{"approle: the accessor found by discovery does not make another secret id",
			ref("approle-secret-id", "approle", "ci", map[string]string{"deliver_to": "secret/ci/approle"}),
			ref("approle-secret-id", "approle", "ci", map[string]string{"deliver_to": "secret/ci/approle", "accessor": "acc-1", "metadata": "{}"}), true},
		{"approle: two delivery secrets of one role are two secret ids",
			ref("approle-secret-id", "approle", "ci", map[string]string{"deliver_to": "secret/ci/a"}),
			ref("approle-secret-id", "approle", "ci", map[string]string{"deliver_to": "secret/ci/b"}), false},
		{"token: the accessor, with or without deliver_to",
			ref("token", "token", "acc-1", nil),
			ref("token", "token", "acc-1", map[string]string{"deliver_to": "secret/t"}), true},
		{"token: two accessors",
			ref("token", "token", "acc-1", nil), ref("token", "token", "acc-2", nil), false},
		{"kv-v2: fields and options do not make another secret",
			events.CredentialRef{Kind: "kv-v2", Mount: "secret", Path: "apps/db", Fields: []string{"password"}},
			events.CredentialRef{Kind: "kv-v2", Mount: "secret", Path: "apps/db", Options: map[string]string{"overlap": "1h"}}, true},
		{"kv-v2: two paths",
			ref("kv-v2", "secret", "apps/db", nil), ref("kv-v2", "secret", "apps/db2", nil), false},
		{"database static role: one role, whatever the action",
			ref("database-static-role", "database", "app", nil),
			events.CredentialRef{Kind: "database-static-role", Mount: "database", Path: "app", Action: events.ActionVerify}, true},
		{"one path, two kinds", ref("kv-v2", "secret", "x", nil), ref("transit", "secret", "x", nil), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := identity(tt.a) == identity(tt.b); got != tt.same {
				t.Errorf("identity(%+v) = %q, identity(%+v) = %q; same = %v, want %v", tt.a, identity(tt.a), tt.b, identity(tt.b), got, tt.same)
			}
		})
	}
}

// An inventory binding and the discovered binding of one certificate resolve to one
// credential: the inventory's, its reason saying discovery found it too.
func TestResolveMergesInventoryAndDiscovery(t *testing.T) {
	declared := Binding{
		Name: "web-cert", Source: "inventory:inv.yaml:3", Selectors: Selectors{KeyService: {"web"}},
		Credential: events.CredentialRef{Kind: "pki", Mount: "pki", Path: "web", Options: map[string]string{"deliver_to": "secret/certs/web", "ttl": "24h"}},
	}
	found := Binding{
		Name: "discovery:pki:pki/cert/aa-bb", Source: "discovery:pki:pki/cert/aa-bb", Selectors: Selectors{KeyHost: {"web.example.internal"}},
		Credential: events.CredentialRef{Kind: "pki", Mount: "pki", Path: "web", Options: map[string]string{"deliver_to": "secret/certs/web", "serial": "aa-bb"}},
	}
	kvDeclared := bind("db", Selectors{KeyService: {"web"}}, kv("apps/web/db"), nil)
	kvFound := Binding{Name: "discovery:kv-v2:secret/apps/web/db", Source: "discovery:kv-v2:secret/apps/web/db",
		Selectors: Selectors{KeyService: {"web"}}, Credential: events.CredentialRef{Kind: "kv-v2", Mount: "secret", Path: "apps/web/db", Fields: []string{"password"}}}
	tokFound := Binding{Name: "discovery:token:token/accessors/acc-1", Source: "discovery:token:token/accessors/acc-1",
		Selectors: Selectors{KeyService: {"web"}}, Credential: events.CredentialRef{Kind: "token", Mount: "token", Path: "acc-1", Action: events.ActionRevoke,
			Options: map[string]string{"deliver_to": "secret/apps/web/token"}}}
	ix := NewIndex([]Binding{declared, kvDeclared, found, kvFound, tokFound})

	named := events.CredentialRef{Kind: "token", Mount: "token", Path: "acc-1", Action: events.ActionRevoke}
	ch := events.Change{
		Targets:     events.Targets{Services: []string{"web"}, Hosts: []string{"web.example.internal"}},
		Credentials: []events.CredentialRef{named},
	}
	got := ix.Resolve(ch)
	want := []Match{
		{Credential: named, Source: "event", Binding: tokFound.Name, Reason: "named in the event; discovery also found it (binding discovery:token:token/accessors/acc-1)"},
		{Credential: declared.Credential, Source: declared.Source, Binding: "web-cert",
			Reason: "binding web-cert selects services=web; discovery also found it (binding discovery:pki:pki/cert/aa-bb)"},
		{Credential: kvDeclared.Credential, Source: kvDeclared.Source, Binding: "db",
			Reason: "binding db selects services=web; discovery also found it (binding discovery:kv-v2:secret/apps/web/db)"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Resolve:\n got %+v\nwant %+v", got, want)
	}

	// Only the discovered binding matches: it is used as it is.
	got = ix.Resolve(events.Change{Targets: events.Targets{Hosts: []string{"web.example.internal"}}})
	if len(got) != 1 || got[0].Binding != found.Name || got[0].Credential.Options["serial"] != "aa-bb" || got[0].Reason != "binding "+found.Name+" selects hosts=web.example.internal" {
		t.Errorf("discovery alone: %+v", got)
	}

	// Two discovered bindings of one credential (a database role by user and by connection)
	// add no note.
	role := events.CredentialRef{Kind: "database-static-role", Mount: "database", Path: "app"}
	ix = NewIndex([]Binding{
		{Name: "discovery:database:database/static-roles/app #identities", Source: "discovery:database:database/static-roles/app", Selectors: Selectors{KeyIdentity: {"app_user"}}, Credential: role},
		{Name: "discovery:database:database/static-roles/app #hosts", Source: "discovery:database:database/static-roles/app", Selectors: Selectors{KeyHost: {"db1"}}, Credential: role},
	})
	got = ix.Resolve(events.Change{Targets: events.Targets{Identities: []string{"app_user"}, Hosts: []string{"db1"}}})
	if len(got) != 1 || got[0].Reason != "binding discovery:database:database/static-roles/app #identities selects identities=app_user" {
		t.Errorf("two discovered bindings of one role: %+v", got)
	}
}
