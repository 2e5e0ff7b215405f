package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/agent"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// The agent logs in with AppRole from a response-wrapped secret id, and keeps working after its
// token reaches its maximum TTL by logging in again.
func TestAppRoleWrappedSecretIDAndRelogin(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	v.AgentToken(t) // writes the agent policy
	if err := v.Root.Sys().EnableAuthWithOptions("approle", &vaultapi.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	const maxTTL = 6 * time.Second
	if _, err := v.Root.Logical().Write("auth/approle/role/rotation-agent", map[string]any{
		"token_policies": "rotation-agent", "token_ttl": "3s", "token_max_ttl": maxTTL.String(),
	}); err != nil {
		t.Fatal(err)
	}
	roleID, err := v.Root.Logical().Read("auth/approle/role/rotation-agent/role-id")
	if err != nil {
		t.Fatal(err)
	}
	wrapper, err := v.Root.Clone()
	if err != nil {
		t.Fatal(err)
	}
	wrapper.SetToken(v.Root.Token())
	wrapper.SetWrappingLookupFunc(func(string, string) string { return "120s" })
	wrapped, err := wrapper.Logical().Write("auth/approle/role/rotation-agent/secret-id", nil)
	if err != nil || wrapped.WrapInfo == nil {
		t.Fatalf("wrapped secret id: %v %+v", err, wrapped)
	}
	secretFile := filepath.Join(t.TempDir(), "secret-id")
	if err := os.WriteFile(secretFile, []byte(wrapped.WrapInfo.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	cfg := harness.AgentConfig(t, v, "", n)
	cfg.Vault.AuthMethod = agent.AuthAppRole
	cfg.Vault.AppRoleRoleID = roleID.Data["role_id"].(string)
	cfg.Vault.AppRoleSecretIDFile = secretFile
	cfg.Vault.AppRoleSecretIDWrapped = true
	v.PutKV(t, "approle/first", map[string]any{"password": "canary-approle-first-01"})
	v.PutKV(t, "approle/second", map[string]any{"password": "canary-approle-second-02"})
	ra := harness.StartAgent(t, cfg)

	bus.Publish(t, harness.ChangeEvent(t, "CHG-AR-1", kvRef("approle/first")), "")
	if ev := bus.WaitEvidence(t, "CHG-AR-1", waitEvidence); ev.Data.Status != events.StatusReconciled {
		t.Fatalf("first change: %+v", ev.Data)
	}
	// Outlive the first token's maximum TTL; the agent must have logged in again.
	deadline := time.Now().Add(4 * maxTTL)
	for !strings.Contains(ra.Log.String(), "vault login renewed") {
		if time.Now().After(deadline) {
			t.Fatalf("agent did not log in again after its token's max TTL; log:\n%s", ra.Log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	bus.Publish(t, harness.ChangeEvent(t, "CHG-AR-2", kvRef("approle/second")), "")
	if ev := bus.WaitEvidence(t, "CHG-AR-2", waitEvidence); ev.Data.Status != events.StatusReconciled {
		t.Fatalf("change after re-login: %+v", ev.Data)
	}
	if got := v.KV(t, "approle/second", 0).VersionMetadata.Version; got != 2 {
		t.Errorf("second secret at version %d, want 2", got)
	}
	ra.Stop(t)
	assertNoLeak(t, map[string]string{"wrapping token": wrapped.WrapInfo.Token},
		map[string][]string{"agent log": {ra.Log.String()}, "bus": bus.Payloads()})
}

// The token auth method reads its token from a file, as written by a Vault Agent sink.
func TestTokenFromFile(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	token := v.AgentToken(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := harness.AgentConfig(t, v, "", n)
	cfg.Vault.TokenFile = tokenFile
	v.PutKV(t, "tokenfile/app", map[string]any{"password": "canary-token-file-03"})
	ra := harness.StartAgent(t, cfg)
	bus.Publish(t, harness.ChangeEvent(t, "CHG-TF-1", kvRef("tokenfile/app")), "")
	if ev := bus.WaitEvidence(t, "CHG-TF-1", waitEvidence); ev.Data.Status != events.StatusReconciled {
		t.Fatalf("evidence: %+v", ev.Data)
	}
	ra.Stop(t)
	assertNoLeak(t, map[string]string{"token": token}, map[string][]string{"agent log": {ra.Log.String()}, "bus": bus.Payloads()})
}
