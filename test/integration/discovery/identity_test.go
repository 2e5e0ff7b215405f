package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/discovery"
	"github.com/rotation-agent/rotation-agent/discovery/vaultsource"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
	"github.com/rotation-agent/rotation-agent/rotators/approle"
	"github.com/rotation-agent/rotation-agent/rotators/token"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

var appRoleConfig = vaultsource.Config{AppRole: []vaultsource.AppRoleSource{{Mount: "approle"}}}

// setupAppRole enables AppRole at auth/approle with roles web, batch and idle.
func setupAppRole(t *testing.T, v *harness.Vault) {
	t.Helper()
	if err := v.Root.Sys().EnableAuthWithOptions("approle", &vaultapi.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatalf("enable approle: %v", err)
	}
	for _, role := range []string{"web", "batch", "idle"} {
		write(t, v.Root, "auth/approle/role/"+role, map[string]any{"token_policies": "default", "token_ttl": "1h", "secret_id_ttl": "24h"})
	}
}

// secretID generates a secret id for role with metadata and returns it and its accessor.
func secretID(t *testing.T, v *harness.Vault, role string, meta map[string]string) (string, string) {
	t.Helper()
	body := map[string]any{}
	if meta != nil {
		raw, _ := json.Marshal(meta)
		body["metadata"] = string(raw)
	}
	s := write(t, v.Root, "auth/approle/role/"+role+"/secret-id", body)
	return s.Data["secret_id"].(string), s.Data["secret_id_accessor"].(string)
}

// login logs in to role with secretID and returns the token.
func login(t *testing.T, v *harness.Vault, role, secretID string) *vaultapi.SecretAuth {
	t.Helper()
	rid, err := v.Root.Logical().Read("auth/approle/role/" + role + "/role-id")
	if err != nil {
		t.Fatal(err)
	}
	s := write(t, v.Root, "auth/approle/login", map[string]any{"role_id": rid.Data["role_id"], "secret_id": secretID})
	return s.Auth
}

// AppRole roles are found by the metadata of their secret ids; the binding carries the tags
// forward, so after a rotation the replacement secret id is found in turn.
func TestAppRoleRolesBySecretIDMetadata(t *testing.T) {
	v := harness.StartVault(t)
	c := discoveryClient(t, v)
	setupAppRole(t, v)
	meta := map[string]string{"service": "web", "environment": "prod", "deliver_to": "secret/approle/web", "rotation_overlap": "0s"}
	oldID, oldAcc := secretID(t, v, "web", meta)
	v.PutKV(t, "approle/web", map[string]any{approle.FieldSecretID: oldID, approle.FieldAccessor: oldAcc})
	batchID, _ := secretID(t, v, "batch", nil)
	otherID, _ := secretID(t, v, "batch", map[string]string{"team": "batch"})

	bs, errs := discover(t, c, appRoleConfig)
	if len(errs) != 0 {
		t.Fatalf("discovery errors: %v", errs)
	}
	b := only(t, bs)
	if b.Source != "discovery:approle:approle/role/web" || b.Name != b.Source {
		t.Errorf("source %q name %q", b.Source, b.Name)
	}
	if want := (discovery.Selectors{discovery.KeyService: {"web"}, discovery.KeyEnvironment: {"prod"}}); !reflect.DeepEqual(b.Selectors, want) {
		t.Errorf("selectors %v, want %v", b.Selectors, want)
	}
	ref := b.Credential
	if ref.Kind != approle.Kind || ref.Mount != "approle" || ref.Path != "web" || ref.Options[approle.OptionDeliverTo] != "secret/approle/web" ||
		ref.Options[approle.OptionAccessor] != oldAcc || ref.Options["overlap"] != "0s" {
		t.Fatalf("credential %s", render(ref))
	}
	var carried map[string]string
	if err := json.Unmarshal([]byte(ref.Options[approle.OptionMetadata]), &carried); err != nil || !reflect.DeepEqual(carried, meta) {
		t.Errorf("option metadata %q, want the secret id's metadata %v", ref.Options[approle.OptionMetadata], meta)
	}
	plan(t, approle.New(v.Root), b)

	// Rotate what discovery found; the replacement carries the tags, the old one is gone.
	m := discovery.NewIndex(bs).Resolve(events.Change{ID: "CHG-AR", Targets: events.Targets{Services: []string{"web"}, Environments: []string{"prod"}}})
	if len(m) != 1 || !strings.Contains(m[0].Reason, b.Source) {
		t.Fatalf("change resolved to %s", render(m))
	}
	var st rotators.State
	var mu sync.Mutex
	req := rotators.Request{ChangeID: "CHG-AR", Credential: m[0].Credential, Now: time.Now,
		Save:     func(context.Context, *rotators.State) error { mu.Lock(); defer mu.Unlock(); return nil },
		Generate: func(context.Context) (string, error) { return "", errors.New("vault generates secret ids") },
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := rotators.Drive(ctx, approle.New(v.Root), req, &st, 0)
	if err != nil || !out.Retired {
		t.Fatalf("rotation of the discovered role: %+v, %v", out, err)
	}
	delivered := v.KV(t, "approle/web", 0).Data
	newID, newAcc := delivered[approle.FieldSecretID].(string), delivered[approle.FieldAccessor].(string)
	if newAcc == "" || newAcc == oldAcc {
		t.Fatalf("delivered accessor %q", newAcc)
	}
	again, errs := discover(t, c, appRoleConfig)
	if len(errs) != 0 {
		t.Fatalf("rediscovery errors: %v", errs)
	}
	b2 := only(t, again)
	if b2.Credential.Options[approle.OptionAccessor] != newAcc || !reflect.DeepEqual(b2.Selectors, b.Selectors) {
		t.Errorf("after the rotation discovery found %s, want the new secret id %s with the same tags", render(b2), newAcc)
	}
	assertNoLeak(t, map[string]string{"old secret id": oldID, "new secret id": newID, "batch secret id": batchID, "other secret id": otherID}, bs, again, errs, m)
}

// Tokens are found by their metadata (accessors only, default action revoke); login tokens
// are left alone unless the configuration asks for them.
func TestTokensByMeta(t *testing.T) {
	v := harness.StartVault(t)
	c := discoveryClient(t, v)
	setupAppRole(t, v)
	tagged, err := v.Root.Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: []string{"default"}, TTL: "1h",
		Metadata: map[string]string{"service": "reports", "host": "Batch1", "owner": "team-data"}})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := v.Root.Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: []string{"default"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	sid, _ := secretID(t, v, "web", map[string]string{"service": "reports"})
	loginAuth := login(t, v, "web", sid)

	cfg := vaultsource.Config{Tokens: true}
	bs, errs := discover(t, c, cfg)
	if len(errs) != 0 {
		t.Fatalf("discovery errors: %v", errs)
	}
	b := only(t, bs)
	acc := tagged.Auth.Accessor
	wantRef := events.CredentialRef{Kind: token.Kind, Mount: "token", Path: acc, Action: events.ActionRevoke}
	if !reflect.DeepEqual(b.Credential, wantRef) || b.Source != "discovery:token:token/accessors/"+acc || b.Owner != "team-data" {
		t.Errorf("token binding %s, want credential %s", render(b), render(wantRef))
	}
	if p := plan(t, token.New(v.Root), b); p.Action != events.ActionRevoke {
		t.Errorf("token plan %+v, want revoke", p)
	}
	m := discovery.NewIndex(bs).Resolve(events.Change{Targets: events.Targets{Services: []string{"reports"}, Hosts: []string{"batch1"}, Owners: []string{"Team-Data"}}})
	if len(m) != 1 || m[0].Credential.Path != acc || !strings.Contains(m[0].Reason, b.Source) {
		t.Errorf("change resolved to %s", render(m))
	}

	cfg.TokenPaths = []string{"auth/"}
	all := mustDiscover(t, c, cfg)
	if got, want := ids(all), ids([]discovery.Binding{b, {Credential: events.CredentialRef{Kind: token.Kind, Mount: "token", Path: loginAuth.Accessor}}}); !reflect.DeepEqual(got, want) {
		t.Errorf("with token_paths [auth/]: %v, want %v", got, want)
	}
	assertNoLeak(t, map[string]string{"tagged token": tagged.Auth.ClientToken, "plain token": plain.Auth.ClientToken,
		"login token": loginAuth.ClientToken, "secret id": sid}, bs, all, errs, m)
}
