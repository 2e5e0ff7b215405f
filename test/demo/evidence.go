package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"

	"github.com/rotation-agent/rotation-agent/evidence"
)

// writeEvidenceKey writes a new Ed25519 evidence signing key (PEM PKCS #8) to path, readable
// by the owner only.
func writeEvidenceKey(path string) error {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	pemBytes, err := evidence.MarshalPrivateKeyPEM(key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pemBytes, 0o600)
}
