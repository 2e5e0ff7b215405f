package discovery

import (
	"strings"

	"github.com/rotation-agent/rotation-agent/events"
)

// Kinds whose credential is identified by something else than kind, mount and path. The
// names are those of the rotators (rotators/pki, rotators/approle, rotators/token); discovery
// does not import the rotators, and identity_test.go checks the names still agree.
const (
	kindPKI      = "pki"
	kindAppRole  = "approle-secret-id"
	kindToken    = "token"
	optDeliverTo = "deliver_to"
)

// discoveredPrefix starts the Source of every binding discovered in Vault (see
// vaultsource.SourcePrefix).
const discoveredPrefix = "discovery:"

// identity names the credential a reference acts on, so that two references to one credential
// written differently are recognised as one; Resolve keeps the first of them. It differs from
// CredentialRef.Key (which also names the journal entry and lock of a rotation) where a
// binding may or may not carry a detail that is not part of what is rotated:
//
//   - pki and approle-secret-id: the certificate or secret id delivered to the deliver_to
//     secret, whatever serial or accessor is given (an inventory binding names the secret; the
//     discovered binding of the same certificate adds the serial it found there);
//   - token: the accessor (the path), with or without deliver_to;
//   - every other kind (kv-v2 secrets, database roles, transit keys, lease prefixes): kind,
//     mount and path, so fields and options do not make another credential.
//
// A pki or approle-secret-id reference without deliver_to keeps its Key.
func identity(ref events.CredentialRef) string {
	switch ref.Kind {
	case kindPKI, kindAppRole:
		if d := strings.Trim(strings.TrimSpace(ref.Options[optDeliverTo]), "/"); d != "" {
			return ref.Kind + " delivered to " + d
		}
		return ref.Key()
	case kindToken:
		return ref.Kind + " accessor " + ref.Path
	default:
		return ref.ID()
	}
}
