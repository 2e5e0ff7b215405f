package evidence

import (
	"context"
	"encoding/base64"
	"fmt"
	"sort"
	"strconv"
	"strings"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
)

// TransitSigner signs with an ed25519 key held in Vault's transit engine (transit/sign); the
// private key never leaves Vault.
type TransitSigner struct {
	client *vault.Client
	mount  string
	key    string
}

// NewTransitSigner signs with key on the transit engine mounted at mount.
func NewTransitSigner(client *vault.Client, mount, key string) *TransitSigner {
	return &TransitSigner{client: client, mount: strings.Trim(mount, "/"), key: key}
}

func (s *TransitSigner) keyID() string { return "transit:" + s.mount + "/" + s.key }

// Sign asks Vault to sign msg with the latest version of the key.
func (s *TransitSigner) Sign(ctx context.Context, msg []byte) (events.Signature, error) {
	sec, err := s.client.Logical().WriteWithContext(ctx, s.mount+"/sign/"+s.key, map[string]any{
		"input": base64.StdEncoding.EncodeToString(msg),
	})
	if err != nil {
		return events.Signature{}, fmt.Errorf("transit sign with %s: %w", s.keyID(), err)
	}
	if sec == nil {
		return events.Signature{}, fmt.Errorf("transit sign with %s: empty response", s.keyID())
	}
	raw, _ := sec.Data["signature"].(string)
	// vault:v<version>:<base64 signature>
	parts := strings.SplitN(raw, ":", 3)
	if len(parts) != 3 || parts[0] != "vault" || !strings.HasPrefix(parts[1], "v") {
		return events.Signature{}, fmt.Errorf("transit sign with %s: unexpected signature format", s.keyID())
	}
	version, err := strconv.Atoi(strings.TrimPrefix(parts[1], "v"))
	if err != nil || version < 1 {
		return events.Signature{}, fmt.Errorf("transit sign with %s: unexpected key version %q", s.keyID(), parts[1])
	}
	sig, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil {
		return events.Signature{}, fmt.Errorf("transit sign with %s: signature is not base64", s.keyID())
	}
	return events.Signature{
		Algorithm:  events.SignatureAlgorithm,
		KeyID:      s.keyID(),
		KeyVersion: version,
		Value:      base64.StdEncoding.EncodeToString(sig),
	}, nil
}

// PublicKeys reads every version's public key from transit/keys/<key>.
func (s *TransitSigner) PublicKeys(ctx context.Context) ([]PublicKey, error) {
	sec, err := s.client.Logical().ReadWithContext(ctx, s.mount+"/keys/"+s.key)
	if err != nil {
		return nil, fmt.Errorf("read transit key %s: %w", s.keyID(), err)
	}
	if sec == nil {
		return nil, fmt.Errorf("transit key %s does not exist", s.keyID())
	}
	if typ, _ := sec.Data["type"].(string); typ != "ed25519" {
		return nil, fmt.Errorf("transit key %s is %q, want ed25519", s.keyID(), typ)
	}
	versions, _ := sec.Data["keys"].(map[string]any)
	var out []PublicKey
	for v, info := range versions {
		n, err := strconv.Atoi(v)
		if err != nil {
			continue
		}
		m, _ := info.(map[string]any)
		pub, _ := m["public_key"].(string)
		if pub == "" {
			continue
		}
		out = append(out, PublicKey{KeyID: s.keyID(), KeyVersion: n, Algorithm: events.SignatureAlgorithm, PublicKey: pub})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].KeyVersion < out[j].KeyVersion })
	if len(out) == 0 {
		return nil, fmt.Errorf("transit key %s has no public keys", s.keyID())
	}
	return out, nil
}
