package harness

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"
)

// AgentPolicyFile is the least-privilege policy the project documents for the agent, relative
// to the repository root; every integration test runs the agent under it.
const AgentPolicyFile = "docs/vault-policy.hcl"

// RemediationPolicyFile is the documented policy an operator adds for the agent to remediate
// entitlements, relative to the repository root.
const RemediationPolicyFile = "docs/vault-policy-remediation.hcl"

// repoPath locates a file given relative to the repository root from this source file, so
// tests of any package depth read the same file.
func repoPath(rel string) string {
	_, self, _, _ := runtime.Caller(0) // test/harness/vaultsetup.go
	return filepath.Join(filepath.Dir(self), "..", "..", rel)
}

// AgentToken creates the agent's policy from AgentPolicyFile and a token bound to it.
func (v *Vault) AgentToken(t testing.TB) string {
	t.Helper()
	return v.agentToken(t, nil)
}

// AgentTokenWith is AgentToken with more of the project's documented policies, named by their
// paths relative to the repository root (RemediationPolicyFile, say), as an operator grants
// them: the token is bound to the agent's policy and to each of these.
func (v *Vault) AgentTokenWith(t testing.TB, docFiles ...string) string {
	t.Helper()
	extra := map[string]string{}
	for _, f := range docFiles {
		raw, err := os.ReadFile(repoPath(f))
		if err != nil {
			t.Fatalf("policy %s: %v", f, err)
		}
		extra[strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))] = string(raw)
	}
	return v.agentToken(t, extra)
}

// AgentTokenWithPolicy is AgentToken with one more policy, given as text under name, as an
// operator grants the agent one more permission.
func (v *Vault) AgentTokenWithPolicy(t testing.TB, name, policy string) string {
	t.Helper()
	return v.agentToken(t, map[string]string{name: policy})
}

// agentToken writes the agent's policy and the extra ones (name to text) and returns a token
// bound to all of them and nothing else.
func (v *Vault) agentToken(t testing.TB, extra map[string]string) string {
	t.Helper()
	policy, err := os.ReadFile(repoPath(AgentPolicyFile))
	if err != nil {
		t.Fatalf("agent policy: %v", err)
	}
	policies := map[string]string{"rotation-agent": string(policy)}
	for name, text := range extra {
		policies[name] = text
	}
	names := make([]string, 0, len(policies))
	for name, text := range policies {
		if err := v.Root.Sys().PutPolicy(name, text); err != nil {
			t.Fatalf("put policy %s: %v", name, err)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	secret, err := v.Root.Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: names, TTL: "1h", NoDefaultPolicy: true})
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	return secret.Auth.ClientToken
}

// PutKV writes a KV v2 secret and returns its new version.
func (v *Vault) PutKV(t testing.TB, path string, data map[string]any) int {
	t.Helper()
	s, err := v.Root.KVv2("secret").Put(context.Background(), path, data)
	if err != nil {
		t.Fatalf("put secret/%s: %v", path, err)
	}
	return s.VersionMetadata.Version
}

// KV reads a KV v2 secret: version 0 reads the current one.
func (v *Vault) KV(t testing.TB, path string, version int) *vaultapi.KVSecret {
	t.Helper()
	kv := v.Root.KVv2("secret")
	var s *vaultapi.KVSecret
	var err error
	if version == 0 {
		s, err = kv.Get(context.Background(), path)
	} else {
		s, err = kv.GetVersion(context.Background(), path, version)
	}
	if err != nil {
		t.Fatalf("read secret/%s version %d: %v", path, version, err)
	}
	return s
}

// List lists path as root and returns the keys, sorted; none when Vault has nothing there.
func (v *Vault) List(t testing.TB, path string) []string {
	t.Helper()
	s, err := v.Root.Logical().List(path)
	if err != nil {
		t.Fatalf("list %s: %v", path, err)
	}
	if s == nil {
		return nil
	}
	keys, _ := s.Data["keys"].([]any)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k.(string))
	}
	sort.Strings(out)
	return out
}
