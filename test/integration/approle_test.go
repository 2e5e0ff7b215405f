package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/agent"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// appRoleMaxTTL is the maximum TTL of the agent's AppRole tokens: short, so the agent must log
// in again (and read the secret id file again) within the test.
const appRoleMaxTTL = 6 * time.Second

// The agent logs in with AppRole from a plain or a response-wrapped secret id. When its
// secret id is spent (single use here) the next login fails and the log says why and what to
// do; once an operator writes a fresh secret id (or wrapping token) into the file, the agent
// logs in again by itself and rotates.
func TestAppRoleSecretIDReplacedInFile(t *testing.T) {
	for _, wrapped := range []bool{false, true} {
		name := "plain"
		if wrapped {
			name = "wrapped"
		}
		t.Run(name, func(t *testing.T) {
			v := harness.StartVault(t)
			n := harness.StartNATS(t)
			bus := harness.WatchBus(t, n)
			roleID := appRoleForAgent(t, v, appRoleMaxTTL)
			secretFile := filepath.Join(t.TempDir(), "secret-id")
			// The first secret id works once: the agent's first login spends it.
			first := writeAppRoleSecretID(t, v, secretFile, wrapped, 1)

			cfg := appRoleConfig(t, v, n, roleID, secretFile, wrapped)
			v.PutKV(t, "approle/before", map[string]any{"password": "canary-approle-before-04"})
			v.PutKV(t, "approle/after", map[string]any{"password": "canary-approle-after-05"})
			ra := harness.StartAgent(t, cfg)

			wantKVChangeReconciled(t, bus, "CHG-ARF-1", "approle/before", "change before the secret id was spent")

			// At the token's maximum TTL the agent logs in again with the spent secret id.
			refused := waitLog(t, ra, 0, "vault refused the secret id: it is spent (used up or expired)", 10*appRoleMaxTTL)
			if line := logLineAt(ra.Log.String(), refused); !strings.Contains(line, `"msg":"vault login failed"`) || !strings.Contains(line, secretFile) {
				t.Errorf("the refusal is not a login failure naming the secret id file:\n%s", line)
			}

			second := writeAppRoleSecretID(t, v, secretFile, wrapped, 0)
			// The login backoff is at most a minute.
			waitLog(t, ra, refused, "vault login renewed", 3*time.Minute)
			wantKVChangeReconciled(t, bus, "CHG-ARF-2", "approle/after", "change after the secret id was replaced")
			if got := v.KV(t, "approle/after", 0).VersionMetadata.Version; got != 2 {
				t.Errorf("secret written after the recovery at version %d, want 2", got)
			}
			ra.Stop(t)
			assertNoLeak(t, map[string]string{"first secret id file content": first, "second secret id file content": second},
				map[string][]string{"agent log": {ra.Log.String()}, "bus": bus.Payloads()})
		})
	}
}

// appRoleForAgent writes the agent's documented policy, enables AppRole and creates the role
// rotation-agent bound to that policy, whose tokens live 3s and at most maxTTL, so that the
// agent logs in again within a test. It returns the role id.
func appRoleForAgent(t *testing.T, v *harness.Vault, maxTTL time.Duration) string {
	t.Helper()
	v.AgentToken(t) // writes the agent policy
	if err := v.Root.Sys().EnableAuthWithOptions("approle", &vaultapi.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Root.Logical().Write("auth/approle/role/rotation-agent", map[string]any{
		"token_policies": "rotation-agent", "token_ttl": "3s", "token_max_ttl": maxTTL.String(),
	}); err != nil {
		t.Fatal(err)
	}
	roleID, err := v.Root.Logical().Read("auth/approle/role/rotation-agent/role-id")
	if err != nil {
		t.Fatal(err)
	}
	return roleID.Data["role_id"].(string)
}

// appRoleConfig is the agent's configuration for logging in with AppRole as roleID, with the
// secret id (a response-wrapping token of it when wrapped) read from secretFile.
func appRoleConfig(t *testing.T, v *harness.Vault, n *harness.NATS, roleID, secretFile string, wrapped bool) agent.Config {
	t.Helper()
	cfg := harness.AgentConfig(t, v, "", n)
	cfg.Vault.AuthMethod = agent.AuthAppRole
	cfg.Vault.AppRoleRoleID = roleID
	cfg.Vault.AppRoleSecretIDFile = secretFile
	cfg.Vault.AppRoleSecretIDWrapped = wrapped
	return cfg
}

// writeAppRoleSecretID creates a secret id for the agent's role that works uses times (0: no
// limit), response-wrapped when wrapped, and replaces the file with it the way an operator
// would (write aside, then rename). It returns what the file holds.
func writeAppRoleSecretID(t *testing.T, v *harness.Vault, path string, wrapped bool, uses int) string {
	t.Helper()
	client, err := v.Root.Clone()
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken(v.Root.Token())
	if wrapped {
		client.SetWrappingLookupFunc(func(string, string) string { return "120s" })
	}
	resp, err := client.Logical().Write("auth/approle/role/rotation-agent/secret-id", map[string]any{"num_uses": uses})
	if err != nil {
		t.Fatalf("secret id: %v", err)
	}
	var content string
	switch {
	case wrapped && resp.WrapInfo != nil:
		content = resp.WrapInfo.Token
	case !wrapped && resp.Data != nil:
		content, _ = resp.Data["secret_id"].(string)
	}
	if content == "" {
		t.Fatalf("no secret id in %+v", resp)
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return content
}

// waitLog waits until the agent's log, from byte offset from on, contains text, and returns
// the offset where it starts. It fails the test after limit.
func waitLog(t *testing.T, ra *harness.RunningAgent, from int, text string, limit time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if i := strings.Index(ra.Log.String()[from:], text); i >= 0 {
			return from + i
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not log %q within %s; log:\n%s", text, limit, ra.Log.String()[from:])
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// logLineAt returns the line of log that holds byte offset i.
func logLineAt(log string, i int) string {
	start := strings.LastIndex(log[:i], "\n") + 1
	end := strings.Index(log[i:], "\n")
	if end < 0 {
		return log[start:]
	}
	return log[start : i+end]
}
