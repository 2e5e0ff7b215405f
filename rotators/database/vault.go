package database

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// staticRole is the non-secret part of <mount>/static-roles/<name>.
type staticRole struct {
	name     string
	username string
	dbName   string
	// lastRotation is last_vault_rotation; zero when Vault never rotated the role.
	lastRotation time.Time
}

// connConfig is the non-secret part of <mount>/config/<name>; Vault never returns the password.
type connConfig struct {
	name             string
	pluginName       string
	connectionURL    string
	username         string
	verifyConnection bool
}

// vaultReader reads the database engine's state.
type vaultReader struct {
	client *vault.Client
}

func (v vaultReader) read(ctx context.Context, ref events.CredentialRef, what, path string) (*vault.Secret, error) {
	sec, err := v.client.Logical().ReadWithContext(ctx, path)
	if err != nil {
		return nil, classify("read "+what+" "+path, ref, err)
	}
	if sec == nil || sec.Data == nil {
		return nil, rotators.Permanent(fmt.Errorf("%s %s not found (for %s)", what, path, ref.ID()))
	}
	return sec, nil
}

// staticRole reads a static role.
func (v vaultReader) staticRole(ctx context.Context, ref events.CredentialRef, name string) (staticRole, error) {
	sec, err := v.read(ctx, ref, "static role", mountOf(ref)+"/static-roles/"+name)
	if err != nil {
		return staticRole{}, err
	}
	r := staticRole{name: name, username: str(sec.Data["username"]), dbName: str(sec.Data["db_name"])}
	if r.username == "" || r.dbName == "" {
		return staticRole{}, rotators.Permanent(fmt.Errorf("static role %s/static-roles/%s has no username or db_name", mountOf(ref), name))
	}
	if raw := str(sec.Data["last_vault_rotation"]); raw != "" {
		t, err := time.Parse(time.RFC3339Nano, raw)
		if err != nil {
			return staticRole{}, rotators.Permanent(fmt.Errorf("static role %s/static-roles/%s: last_vault_rotation %q: %w", mountOf(ref), name, raw, err))
		}
		r.lastRotation = t
	}
	return r, nil
}

// staticPassword reads the current password of a static role from <mount>/static-creds/<name>.
// The value is a secret: callers keep it in memory only.
func (v vaultReader) staticPassword(ctx context.Context, ref events.CredentialRef, name string) (username, password string, err error) {
	sec, err := v.read(ctx, ref, "static credentials", mountOf(ref)+"/static-creds/"+name)
	if err != nil {
		return "", "", err
	}
	username, password = str(sec.Data["username"]), str(sec.Data["password"])
	if password == "" {
		return "", "", rotators.Permanent(fmt.Errorf("static credentials of %s/static-creds/%s hold no password (only password credentials are supported)", mountOf(ref), name))
	}
	return username, password, nil
}

// config reads a connection's configuration.
func (v vaultReader) config(ctx context.Context, ref events.CredentialRef, name string) (connConfig, error) {
	sec, err := v.read(ctx, ref, "connection", mountOf(ref)+"/config/"+name)
	if err != nil {
		return connConfig{}, err
	}
	c := connConfig{name: name, pluginName: str(sec.Data["plugin_name"])}
	if b, ok := sec.Data["verify_connection"].(bool); ok {
		c.verifyConnection = b
	}
	if details, ok := sec.Data["connection_details"].(map[string]any); ok {
		c.connectionURL = str(details["connection_url"])
		c.username = str(details["username"])
	}
	return c, nil
}

// dynamicRoleDB reads which connection a dynamic role belongs to.
func (v vaultReader) dynamicRoleDB(ctx context.Context, ref events.CredentialRef, role string) (string, error) {
	sec, err := v.read(ctx, ref, "role", mountOf(ref)+"/roles/"+role)
	if err != nil {
		return "", err
	}
	return str(sec.Data["db_name"]), nil
}

// str renders a JSON value Vault returned as a string (numbers arrive as json.Number).
func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	default:
		return fmt.Sprint(x)
	}
}
