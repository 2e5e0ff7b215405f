package ops

import (
	"context"
	"errors"
	"net/http"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/test/harness"
)

// docs/vault-policy.hcl grants only what the agent needs: requests beside the agent's work
// (changing policies, mounts or auth roles, minting unrestricted tokens, destroying a secret's
// whole history, creating CAs or deleting keys) are denied with 403. Every other integration
// test shows the agent does its work under the same policy.
func TestPolicyDeniesRequestsOutsideIt(t *testing.T) {
	v := harness.StartVault(t)
	if err := v.Root.Sys().MountWithContext(context.Background(), "transit", &vaultapi.MountInput{Type: "transit"}); err != nil {
		t.Fatalf("mount transit: %v", err)
	}
	client, err := v.Root.Clone()
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken(v.AgentToken(t))
	v.PutKV(t, "ops/policy", map[string]any{"password": "canary-policy-0000"})

	// One request inside the policy first, so a denial below is the policy's doing.
	if _, err := client.KVv2("secret").Get(context.Background(), "ops/policy"); err != nil {
		t.Fatalf("reading a KV secret inside the policy: %v", err)
	}
	tests := []struct {
		name string
		op   string // read, write, delete or list
		path string
		body map[string]any
	}{
		{"rewrite its own policy", "write", "sys/policies/acl/rotation-agent", map[string]any{"policy": `path "*" { capabilities = ["sudo","create","read","update","delete","list"] }`}},
		{"list mounts", "read", "sys/mounts", nil},
		{"mount an engine", "write", "sys/mounts/evil", map[string]any{"type": "kv"}},
		{"create an unrestricted token", "write", "auth/token/create", map[string]any{"policies": []string{"root"}}},
		{"create an orphan token", "write", "auth/token/create-orphan", map[string]any{}},
		{"revoke any token", "write", "auth/token/revoke", map[string]any{"token": "hvs.someone-else"}},
		{"destroy every version of a secret", "delete", "secret/metadata/ops/policy", nil},
		{"list secrets", "list", "secret/metadata/", nil},
		{"change an AppRole", "write", "auth/approle/role/payments", map[string]any{"token_policies": "root"}},
		{"generate a root CA", "write", "pki/root/generate/internal", map[string]any{"common_name": "evil"}},
		{"delete a transit key", "delete", "transit/keys/orders", nil},
		{"export a transit key", "read", "transit/export/encryption-key/orders", nil},
		{"rewrite a database connection", "write", "database/config/postgres", map[string]any{"connection_url": "postgres://evil"}},
		{"read the audit devices", "read", "sys/audit", nil},
	}
	ctx := context.Background()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			switch tc.op {
			case "read":
				_, err = client.Logical().ReadWithContext(ctx, tc.path)
			case "write":
				_, err = client.Logical().WriteWithContext(ctx, tc.path, tc.body)
			case "delete":
				_, err = client.Logical().DeleteWithContext(ctx, tc.path)
			case "list":
				_, err = client.Logical().ListWithContext(ctx, tc.path)
			default:
				t.Fatalf("unknown op %q", tc.op)
			}
			var re *vaultapi.ResponseError
			if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
				t.Fatalf("%s %s: %v; want 403 permission denied", tc.op, tc.path, err)
			}
		})
	}
}
