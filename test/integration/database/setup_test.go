// Package database drives the database rotators against a real in-process Vault whose
// database secrets engine manages a real PostgreSQL server, and asserts on what a user would
// check: which passwords the database accepts, Vault's last_vault_rotation, the marker secret.
package database

import (
	"context"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/test/harness"
	"github.com/rotation-agent/rotation-agent/test/harness/drive"
	"github.com/rotation-agent/rotation-agent/test/harness/postgres"
)

// agentPolicy is the least-privilege policy the database kinds need, as documented for
// docs/vault-policy.hcl; the rotators run under a token bound to it.
const agentPolicy = `
path "database/config/*"        { capabilities = ["read"] }
path "database/static-roles/*"  { capabilities = ["read"] }
path "database/static-creds/*"  { capabilities = ["read"] }
path "database/rotate-role/*"   { capabilities = ["update"] }
path "database/rotate-root/*"   { capabilities = ["update"] }
path "database/reset/*"         { capabilities = ["update"] }
path "database/roles/rotation-agent-verify*" { capabilities = ["read"] }
path "database/creds/rotation-agent-verify*" { capabilities = ["read"] }
path "sys/leases/revoke/database/creds/rotation-agent-verify*" { capabilities = ["update"] }
path "secret/data/db/*"         { capabilities = ["read", "create", "update"] }
`

// verifyRole is the dynamic role the root rotation logs in with.
const verifyRole = "rotation-agent-verify"

// env is a Vault with the database engine mounted at database/, configured for a PostgreSQL
// server, and a client for the agent that counts the requests Vault answered.
type env struct {
	v      *harness.Vault
	pg     *postgres.Server
	client *vaultapi.Client
	calls  *drive.Calls
}

func setup(t *testing.T) *env {
	t.Helper()
	e := &env{v: harness.StartVault(t), pg: postgres.Start(t)}
	if err := e.v.Root.Sys().Mount("database", &vaultapi.MountInput{Type: "database"}); err != nil {
		t.Fatalf("mount database: %v", err)
	}
	e.configure(t, "pg", e.pg.Superuser, e.pg.Password)
	e.client, e.calls = drive.CountingClient(t, e.v, drive.PolicyToken(t, e.v, "rotation-agent-db", agentPolicy, "1h"))
	return e
}

// configure writes database/config/<name> for the PostgreSQL server with a root user.
func (e *env) configure(t *testing.T, name, user, password string) {
	t.Helper()
	if _, err := e.v.Root.Logical().Write("database/config/"+name, map[string]any{
		"plugin_name":       "postgresql-database-plugin",
		"connection_url":    e.pg.VaultConnectionURL(),
		"username":          user,
		"password":          password,
		"allowed_roles":     "*",
		"verify_connection": true,
	}); err != nil {
		t.Fatalf("configure database/config/%s: %v", name, err)
	}
}

// staticRole creates a PostgreSQL login role and a Vault static role managing it (Vault rotates
// it once on creation); rotation_period is long enough never to fire during a test.
func (e *env) staticRole(t *testing.T, name, user string) {
	t.Helper()
	e.pg.CreateLoginRole(t, user, "initial-"+user, false)
	if _, err := e.v.Root.Logical().Write("database/static-roles/"+name, map[string]any{
		"db_name": "pg", "username": user, "rotation_period": "720h",
	}); err != nil {
		t.Fatalf("create static role %s: %v", name, err)
	}
}

// creds reads a static role's password and last_vault_rotation as a consumer would.
func (e *env) creds(t *testing.T, role string) (string, time.Time) {
	t.Helper()
	s, err := e.v.Root.Logical().Read("database/static-creds/" + role)
	if err != nil || s == nil {
		t.Fatalf("read static-creds/%s: %v", role, err)
	}
	pw, _ := s.Data["password"].(string)
	lvr, err := time.Parse(time.RFC3339Nano, s.Data["last_vault_rotation"].(string))
	if err != nil || pw == "" {
		t.Fatalf("static-creds/%s: password %t, last_vault_rotation: %v", role, pw != "", err)
	}
	return pw, lvr
}

// mustLogin fails the test unless user logs in to the database with password.
func (e *env) mustLogin(t *testing.T, what, user, password string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.pg.CanLogin(ctx, user, password); err != nil {
		t.Errorf("%s: login as %s failed: %v", what, user, err)
	}
}

// mustBeRefused fails the test unless the database refuses user with password.
func (e *env) mustBeRefused(t *testing.T, what, user, password string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.pg.CanLogin(ctx, user, password); !postgres.IsAuthFailure(err) {
		t.Errorf("%s: login as %s = %v, want the database to refuse the password", what, user, err)
	}
}
