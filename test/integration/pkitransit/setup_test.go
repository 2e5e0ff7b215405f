// Package pkitransit drives the pki and transit rotators against a real in-process Vault core,
// under a least-privilege token, and asserts on Vault's own state: issued serials, the CRL, key
// versions, and what still decrypts.
package pkitransit

import (
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
	"github.com/rotation-agent/rotation-agent/test/harness"
	"github.com/rotation-agent/rotation-agent/test/harness/drive"
)

// agentPolicy is the policy the rotators run under here: the shared KV v2 stanzas plus the
// stanzas the pki and transit kinds need. The tests fail if any needed capability is missing.
const agentPolicy = `
path "secret/data/*"     { capabilities = ["read", "create", "update"] }
path "secret/metadata/*" { capabilities = ["read"] }

path "pki/cert/*"        { capabilities = ["read"] }
path "pki/roles/*"       { capabilities = ["read"] }
path "pki/issue/*"       { capabilities = ["create", "update"] }
path "pki/issuer/+/json" { capabilities = ["read"] }
path "pki/issuer/+/crl"  { capabilities = ["read"] }
path "pki/revoke" {
  capabilities       = ["create", "update"]
  allowed_parameters = { "serial_number" = [] }
}
path "pki/crl/rotate"    { capabilities = ["read"] }

path "transit/keys/+"        { capabilities = ["read"] }
path "transit/keys/+/rotate" { capabilities = ["update"] }
path "transit/keys/+/config" {
  capabilities       = ["update"]
  allowed_parameters = { "min_decryption_version" = [] }
}
path "transit/encrypt/+" { capabilities = ["update"] }
path "transit/decrypt/+" { capabilities = ["update"] }
path "transit/sign/+"    { capabilities = ["update"] }
path "transit/verify/+"  { capabilities = ["update"] }
path "transit/hmac/+"    { capabilities = ["update"] }
`

// agentClient returns a client like the agent's (TLS to the cluster CA, no client retries)
// with a token bound to agentPolicy only.
func agentClient(t *testing.T, v *harness.Vault) *vaultapi.Client {
	t.Helper()
	return drive.Client(t, v, drive.PolicyToken(t, v, "pki-transit-agent", agentPolicy, "1h"))
}

// request builds a request of this package's change for ref.
func request(ref events.CredentialRef, j *drive.Journal, c *drive.Clock) rotators.Request {
	return drive.Request("CHG-PKI-TRANSIT", ref, j, c)
}

const overlap = time.Hour
