package discovery

import (
	"reflect"
	"strings"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/discovery"
	"github.com/rotation-agent/rotation-agent/discovery/vaultsource"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators/database"
	"github.com/rotation-agent/rotation-agent/test/harness"
	"github.com/rotation-agent/rotation-agent/test/harness/postgres"
)

// Database static roles are found by the user they manage, their connection and its host.
func TestDatabaseStaticRolesByUsername(t *testing.T) {
	v := harness.StartVault(t)
	pg := postgres.Start(t)
	c := discoveryClient(t, v)
	if err := v.Root.Sys().Mount("database", &vaultapi.MountInput{Type: "database"}); err != nil {
		t.Fatalf("mount database: %v", err)
	}
	write(t, v.Root, "database/config/pg", map[string]any{
		"plugin_name":       "postgresql-database-plugin",
		"connection_url":    pg.VaultConnectionURL(),
		"username":          pg.Superuser,
		"password":          pg.Password,
		"allowed_roles":     "*",
		"verify_connection": true,
	})
	for role, user := range map[string]string{"app": "app_user", "report": "report_user"} {
		pg.CreateLoginRole(t, user, "initial-"+user, false)
		write(t, v.Root, "database/static-roles/"+role, map[string]any{"db_name": "pg", "username": user, "rotation_period": "720h"})
	}

	bs := mustDiscover(t, c, vaultsource.Config{Database: []vaultsource.DatabaseSource{{Mount: "database"}}})
	if len(bs) != 6 {
		t.Fatalf("want 3 bindings per static role (identity, connection, host), got %s", render(bs))
	}
	ix := discovery.NewIndex(bs)
	resolve := func(targets events.Targets) []string {
		var out []string
		for _, m := range ix.Resolve(events.Change{Targets: targets}) {
			out = append(out, m.Credential.ID())
			if want := "discovery:database:database/static-roles/" + m.Credential.Path; m.Source != want || !strings.Contains(m.Reason, want) {
				t.Errorf("match %s: source %q reason %q, want them to name %s", m.Credential.ID(), m.Source, m.Reason, want)
			}
		}
		return out
	}
	both := []string{"database-static-role:database/app", "database-static-role:database/report"}
	for _, tc := range []struct {
		name    string
		targets events.Targets
		want    []string
	}{
		{"identity", events.Targets{Identities: []string{"APP_USER"}}, []string{"database-static-role:database/app"}},
		{"connection", events.Targets{ConfigurationItems: []string{"pg"}}, both},
		{"host", events.Targets{Hosts: []string{pg.Host}}, both},
		{"other identity", events.Targets{Identities: []string{"someone_else"}}, nil},
	} {
		if got := resolve(tc.targets); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: resolved %v, want %v", tc.name, got, tc.want)
		}
	}
	var app discovery.Binding
	for _, b := range bs {
		if b.Credential.Path == "app" {
			app = b
		}
	}
	if want := (events.CredentialRef{Kind: database.KindStaticRole, Mount: "database", Path: "app"}); !reflect.DeepEqual(app.Credential, want) {
		t.Errorf("credential %s", render(app.Credential))
	}
	plan(t, database.NewStaticRole(v.Root), app)

	creds, err := v.Root.Logical().Read("database/static-creds/app")
	if err != nil || creds == nil {
		t.Fatalf("static-creds/app: %v", err)
	}
	assertNoLeak(t, map[string]string{"superuser password": pg.Password, "app password": creds.Data["password"].(string)}, bs)
}
