// Package evidencekey writes evidence signing keys for tests and the demo. It is apart from
// the harness so that programs which do not start Vault (the demo) need not link Vault core.
package evidencekey

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"

	"github.com/rotation-agent/rotation-agent/evidence"
)

// Write writes a new Ed25519 evidence signing key (PEM, PKCS #8) to path, readable by the
// owner only.
func Write(path string) error {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate evidence key: %w", err)
	}
	pemBytes, err := evidence.MarshalPrivateKeyPEM(key)
	if err != nil {
		return fmt.Errorf("encode evidence key: %w", err)
	}
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		return fmt.Errorf("write evidence key: %w", err)
	}
	return nil
}
