// Package evidence seals evidence records (Ed25519 signature and per-agent hash chain) and
// verifies exported records offline. Signing keys live in Vault transit or in a local key file;
// verification needs only the public keys (a Keyring).
package evidence

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/rotation-agent/rotation-agent/events"
)

// Signer signs the bytes of an evidence record with Ed25519.
type Signer interface {
	// Sign returns the signature of msg and the key that made it.
	Sign(ctx context.Context, msg []byte) (events.Signature, error)
	// PublicKeys lists the public keys a verifier needs for this signer's records.
	PublicKeys(ctx context.Context) ([]PublicKey, error)
}

// PublicKey is one verification key.
type PublicKey struct {
	KeyID      string `json:"key_id"`
	KeyVersion int    `json:"key_version"`
	Algorithm  string `json:"algorithm"`
	// PublicKey is the raw 32-byte Ed25519 public key, standard base64.
	PublicKey string `json:"public_key"`
}

// Keyring is the set of public keys `evidence verify` trusts, as written by `evidence keys`.
type Keyring struct {
	Keys []PublicKey `json:"keys"`
}

// lookup returns the key of a signature, or an error naming what is missing.
func (k Keyring) lookup(id string, version int) (ed25519.PublicKey, error) {
	for _, pk := range k.Keys {
		if pk.KeyID != id || pk.KeyVersion != version {
			continue
		}
		if pk.Algorithm != events.SignatureAlgorithm {
			return nil, fmt.Errorf("key %s version %d is %q, not %s", id, version, pk.Algorithm, events.SignatureAlgorithm)
		}
		raw, err := base64.StdEncoding.Strict().DecodeString(pk.PublicKey)
		if err != nil || len(raw) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("key %s version %d: public key is not %d bytes of base64", id, version, ed25519.PublicKeySize)
		}
		return ed25519.PublicKey(raw), nil
	}
	return nil, fmt.Errorf("no public key %s version %d in the keyring", id, version)
}

// Merge adds the keys of other that k does not hold yet, keeping a stable order.
func (k *Keyring) Merge(other []PublicKey) {
	seen := map[string]bool{}
	for _, pk := range k.Keys {
		seen[fmt.Sprintf("%s\x00%d", pk.KeyID, pk.KeyVersion)] = true
	}
	for _, pk := range other {
		if id := fmt.Sprintf("%s\x00%d", pk.KeyID, pk.KeyVersion); !seen[id] {
			seen[id] = true
			k.Keys = append(k.Keys, pk)
		}
	}
	sort.SliceStable(k.Keys, func(i, j int) bool {
		if k.Keys[i].KeyID != k.Keys[j].KeyID {
			return k.Keys[i].KeyID < k.Keys[j].KeyID
		}
		return k.Keys[i].KeyVersion < k.Keys[j].KeyVersion
	})
}

// FileSigner signs with an Ed25519 private key read from a PEM (PKCS #8) file.
type FileSigner struct {
	key   ed25519.PrivateKey
	keyID string
}

// LoadFileSigner reads an Ed25519 private key in PEM-encoded PKCS #8 (as written by
// `openssl genpkey -algorithm ed25519`). Errors never quote the file's content.
func LoadFileSigner(path string) (*FileSigner, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("evidence signing key: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("evidence signing key %s: not a PEM \"PRIVATE KEY\" block", path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("evidence signing key %s: not a PKCS #8 private key", path)
	}
	key, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("evidence signing key %s: not an Ed25519 key", path)
	}
	return NewFileSigner(key), nil
}

// NewFileSigner signs with key; its key id is derived from the public key.
func NewFileSigner(key ed25519.PrivateKey) *FileSigner {
	pub, _ := key.Public().(ed25519.PublicKey)
	sum := sha256.Sum256(pub)
	return &FileSigner{key: key, keyID: "file:" + hex.EncodeToString(sum[:8])}
}

// Sign signs msg.
func (s *FileSigner) Sign(_ context.Context, msg []byte) (events.Signature, error) {
	return events.Signature{
		Algorithm:  events.SignatureAlgorithm,
		KeyID:      s.keyID,
		KeyVersion: 1,
		Value:      base64.StdEncoding.EncodeToString(ed25519.Sign(s.key, msg)),
	}, nil
}

// PublicKeys returns the one public key of the file.
func (s *FileSigner) PublicKeys(context.Context) ([]PublicKey, error) {
	pub, _ := s.key.Public().(ed25519.PublicKey)
	return []PublicKey{{KeyID: s.keyID, KeyVersion: 1, Algorithm: events.SignatureAlgorithm, PublicKey: base64.StdEncoding.EncodeToString(pub)}}, nil
}

// MarshalPrivateKeyPEM encodes an Ed25519 private key as a PEM PKCS #8 block, the format
// LoadFileSigner reads.
func MarshalPrivateKeyPEM(key ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// errNoSignature is returned when a record carries no signature.
var errNoSignature = errors.New("record is not signed")
