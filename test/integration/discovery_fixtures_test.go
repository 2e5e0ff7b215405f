package integration

import (
	"context"
	"encoding/json"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/test/harness"
)

// deliverWebCert mounts pki with role web, issues a certificate of web.example.internal and
// delivers it to secret/certs/web as the pki rotator does; it returns the serial.
func deliverWebCert(t *testing.T, v *harness.Vault) string {
	t.Helper()
	root := v.Root
	must(t, root.Sys().Mount("pki", &vaultapi.MountInput{Type: "pki", Config: vaultapi.MountConfigInput{MaxLeaseTTL: "87600h"}}))
	write(t, root, "pki/root/generate/internal", map[string]any{"common_name": "Test Root", "ttl": "87600h"})
	write(t, root, "pki/roles/web", map[string]any{"allowed_domains": "example.internal", "allow_subdomains": true, "max_ttl": "72h"})
	issued := write(t, root, "pki/issue/web", map[string]any{"common_name": "web.example.internal", "ttl": "24h"})
	serial := issued.Data["serial_number"].(string)
	v.PutKV(t, "certs/web", map[string]any{"certificate": issued.Data["certificate"], "private_key": issued.Data["private_key"],
		"issuing_ca": issued.Data["issuing_ca"], "serial": serial})
	return serial
}

// deliverCISecretID enables AppRole with the role ci and delivers a secret id of it to
// secret/ci/approle, its metadata naming the service ci and where it is delivered, as discovery
// finds it; it returns Vault's answer with the secret id and its accessor.
func deliverCISecretID(t *testing.T, v *harness.Vault) *vaultapi.Secret {
	t.Helper()
	must(t, v.Root.Sys().EnableAuthWithOptions("approle", &vaultapi.EnableAuthOptions{Type: "approle"}))
	write(t, v.Root, "auth/approle/role/ci", map[string]any{"token_ttl": "1h"})
	meta, _ := json.Marshal(map[string]string{"service": "ci", "deliver_to": "secret/ci/approle"})
	sid := write(t, v.Root, "auth/approle/role/ci/secret-id", map[string]any{"metadata": string(meta)})
	v.PutKV(t, "ci/approle", map[string]any{"secret_id": sid.Data["secret_id"], "secret_id_accessor": sid.Data["secret_id_accessor"]})
	return sid
}

// putTaggedKV writes a KV v2 secret and tags it with custom metadata, as discovery finds it.
func putTaggedKV(t *testing.T, v *harness.Vault, path string, data, tags map[string]any) {
	t.Helper()
	v.PutKV(t, path, data)
	must(t, v.Root.KVv2("secret").PutMetadata(context.Background(), path, vaultapi.KVMetadataPutInput{CustomMetadata: tags}))
}
