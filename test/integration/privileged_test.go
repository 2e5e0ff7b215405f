package integration

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators/leases"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// appRoleLoginTokens enables AppRole at mount, creates a role and logs in n times; each
// login's token is a lease under auth/<mount>/login.
func appRoleLoginTokens(t *testing.T, v *harness.Vault, mount string, n int) []string {
	t.Helper()
	if err := v.Root.Sys().EnableAuthWithOptions(mount, &vaultapi.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatalf("enable approle at %s: %v", mount, err)
	}
	role := "auth/" + mount + "/role/batch"
	if _, err := v.Root.Logical().Write(role, map[string]any{"token_policies": "default", "token_ttl": "1h"}); err != nil {
		t.Fatal(err)
	}
	rid, err := v.Root.Logical().Read(role + "/role-id")
	if err != nil {
		t.Fatal(err)
	}
	var tokens []string
	for range n {
		sid, err := v.Root.Logical().Write(role+"/secret-id", nil)
		if err != nil {
			t.Fatal(err)
		}
		login, err := v.Root.Logical().Write("auth/"+mount+"/login", map[string]any{"role_id": rid.Data["role_id"], "secret_id": sid.Data["secret_id"]})
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, login.Auth.ClientToken)
	}
	return tokens
}

// liveTokens counts the tokens Vault still accepts.
func liveTokens(t *testing.T, v *harness.Vault, tokens []string) int {
	t.Helper()
	live := 0
	for _, tok := range tokens {
		c, err := v.Root.Clone()
		if err != nil {
			t.Fatal(err)
		}
		c.SetToken(tok)
		_, err = c.Auth().Token().LookupSelf()
		var re *vaultapi.ResponseError
		switch {
		case err == nil:
			live++
		case errors.As(err, &re) && re.StatusCode == 403:
		default:
			t.Fatalf("lookup-self: %v", err)
		}
	}
	return live
}

// A change event may not ask for sys/leases/revoke-force on its own: the credential is
// refused, with the reason in the evidence, and its leases stay. The same option declared by
// an inventory binding is honoured, and the evidence says which binding it came from.
func TestRevokeForceOnlyFromTheInventory(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	bound := appRoleLoginTokens(t, v, "approle", 2)
	other := appRoleLoginTokens(t, v, "other", 2)
	file := filepath.Join(t.TempDir(), "inventory.yaml")
	inventory := `version: 1
bindings:
  - name: batch-logins
    select: {services: [batch]}
    credential:
      kind: lease-prefix
      mount: auth
      path: approle/login
      options: {force: "true"}
`
	if err := os.WriteFile(file, []byte(inventory), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := harness.AgentConfig(t, v, v.AgentToken(t), n)
	cfg.InventoryFile = file
	harness.StartAgent(t, cfg)

	forced := events.CredentialRef{Kind: leases.Kind, Mount: "auth", Path: "other/login", Options: map[string]string{leases.OptionForce: "true"}}
	bus.Publish(t, harness.ChangeEvent(t, "CHG-FORCE-EVENT", forced), "")
	ev := bus.WaitEvidence(t, "CHG-FORCE-EVENT", waitEvidence).Data
	if ev.Status != events.StatusFailed || len(ev.Credentials) != 1 {
		t.Fatalf("evidence = %+v, want the one credential failed", ev)
	}
	c := ev.Credentials[0]
	if c.Outcome != events.OutcomeFailed || c.Action != events.ActionRevoke || c.Source != "event" ||
		!strings.Contains(c.Error, "option force=true refused: it asks for sys/leases/revoke-force") ||
		!strings.Contains(c.Error, "only an inventory binding (or discovery) of lease-prefix:auth/other/login may set it, not a change event") {
		t.Errorf("refused credential = %+v", c)
	}
	if live := liveTokens(t, v, other); live != len(other) {
		t.Errorf("%d of %d tokens under the refused prefix still work; nothing should have been revoked", live, len(other))
	}

	bus.Publish(t, targetedChange(t, "CHG-FORCE-INVENTORY", events.Targets{Services: []string{"batch"}}), "")
	ev = bus.WaitEvidence(t, "CHG-FORCE-INVENTORY", waitEvidence).Data
	if ev.Status != events.StatusReconciled || len(ev.Credentials) != 1 {
		t.Fatalf("evidence = %+v, want the bound prefix revoked", ev)
	}
	c = ev.Credentials[0]
	if c.Outcome != events.OutcomeRevoked || c.After["revoked_with"] != "revoke-force" || c.Source != "inventory:"+file+":3" {
		t.Errorf("bound credential = %+v, want revoked with revoke-force, from the binding at line 3", c)
	}
	if live := liveTokens(t, v, bound); live != 0 {
		t.Errorf("%d tokens under the bound prefix still work", live)
	}
	if live := liveTokens(t, v, other); live != len(other) {
		t.Errorf("the inventory's revocation reached another prefix: %d of %d tokens left", live, len(other))
	}
}
