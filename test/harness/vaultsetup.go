package harness

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"
)

// AgentPolicyFile is the least-privilege policy the project documents for the agent, relative
// to the repository root; every integration test runs the agent under it.
const AgentPolicyFile = "docs/vault-policy.hcl"

// agentPolicyPath locates AgentPolicyFile from this source file, so tests of any package depth
// read the same file.
func agentPolicyPath() string {
	_, self, _, _ := runtime.Caller(0) // test/harness/vaultsetup.go
	return filepath.Join(filepath.Dir(self), "..", "..", AgentPolicyFile)
}

// AgentToken creates the agent's policy from AgentPolicyFile and a token bound to it.
func (v *Vault) AgentToken(t testing.TB) string {
	t.Helper()
	policy, err := os.ReadFile(agentPolicyPath())
	if err != nil {
		t.Fatalf("agent policy: %v", err)
	}
	if err := v.Root.Sys().PutPolicy("rotation-agent", string(policy)); err != nil {
		t.Fatalf("put policy: %v", err)
	}
	secret, err := v.Root.Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: []string{"rotation-agent"}, TTL: "1h", NoDefaultPolicy: true})
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
