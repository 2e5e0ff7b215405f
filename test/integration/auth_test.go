package integration

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rotation-agent/rotation-agent/test/harness"
)

// The agent logs in with AppRole from a response-wrapped secret id, and keeps working after its
// token reaches its maximum TTL by logging in again.
func TestAppRoleWrappedSecretIDAndRelogin(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	roleID := appRoleForAgent(t, v, appRoleMaxTTL)
	secretFile := filepath.Join(t.TempDir(), "secret-id")
	wrapped := writeAppRoleSecretID(t, v, secretFile, true, 0)
	cfg := appRoleConfig(t, v, n, roleID, secretFile, true)
	v.PutKV(t, "approle/first", map[string]any{"password": "canary-approle-first-01"})
	v.PutKV(t, "approle/second", map[string]any{"password": "canary-approle-second-02"})
	ra := harness.StartAgent(t, cfg)

	wantKVChangeReconciled(t, bus, "CHG-AR-1", "approle/first", "first change")
	// Outlive the first token's maximum TTL; the agent must have logged in again.
	waitLog(t, ra, 0, "vault login renewed", 4*appRoleMaxTTL)
	wantKVChangeReconciled(t, bus, "CHG-AR-2", "approle/second", "change after re-login")
	if got := v.KV(t, "approle/second", 0).VersionMetadata.Version; got != 2 {
		t.Errorf("second secret at version %d, want 2", got)
	}
	ra.Stop(t)
	assertNoLeak(t, map[string]string{"wrapping token": wrapped},
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
	wantKVChangeReconciled(t, bus, "CHG-TF-1", "tokenfile/app", "evidence")
	ra.Stop(t)
	assertNoLeak(t, map[string]string{"token": token}, map[string][]string{"agent log": {ra.Log.String()}, "bus": bus.Payloads()})
}
