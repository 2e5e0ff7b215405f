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
		name   string
		method string
		path   string
		body   map[string]any
	}{
		{"rewrite its own policy", http.MethodPut, "sys/policies/acl/rotation-agent", map[string]any{"policy": `path "*" { capabilities = ["sudo","create","read","update","delete","list"] }`}},
		{"list mounts", http.MethodGet, "sys/mounts", nil},
		{"mount an engine", http.MethodPost, "sys/mounts/evil", map[string]any{"type": "kv"}},
		{"create an unrestricted token", http.MethodPost, "auth/token/create", map[string]any{"policies": []string{"root"}}},
		{"create an orphan token", http.MethodPost, "auth/token/create-orphan", map[string]any{}},
		{"destroy every version of a secret", http.MethodDelete, "secret/metadata/ops/policy", nil},
		{"list secrets", "LIST", "secret/metadata/", nil},
		{"change an AppRole", http.MethodPost, "auth/approle/role/payments", map[string]any{"token_policies": "root"}},
		{"generate a root CA", http.MethodPost, "pki/root/generate/internal", map[string]any{"common_name": "evil"}},
		{"delete a transit key", http.MethodDelete, "transit/keys/orders", nil},
		{"export a transit key", http.MethodGet, "transit/export/encryption-key/orders", nil},
		{"rewrite a database connection", http.MethodPost, "database/config/postgres", map[string]any{"connection_url": "postgres://evil"}},
		{"read the audit devices", http.MethodGet, "sys/audit", nil},
		{"revoke any token", http.MethodPut, "auth/token/revoke", map[string]any{"token": "hvs.someone-else"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := client.NewRequest(tc.method, "/v1/"+tc.path)
			if tc.body != nil {
				if err := req.SetJSONBody(tc.body); err != nil {
					t.Fatal(err)
				}
			}
			resp, err := client.RawRequestWithContext(context.Background(), req) //nolint:staticcheck // the raw call shows the status code
			if resp != nil {
				defer resp.Body.Close()
			}
			var re *vaultapi.ResponseError
			if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
				status := 0
				if resp != nil {
					status = resp.StatusCode
				}
				t.Fatalf("%s %s: status %d, err %v; want 403 permission denied", tc.method, tc.path, status, err)
			}
		})
	}
}
