package agent

import (
	"context"
	"fmt"
	"io"
	"strings"

	vault "github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"

	"github.com/rotation-agent/rotation-agent/evidence"
)

// NewSigner returns the evidence signer the configuration selects; nil for none.
func NewSigner(cfg EvidenceConfig, client *vault.Client) (evidence.Signer, error) {
	switch cfg.Signer {
	case SignerFile:
		return evidence.LoadFileSigner(cfg.KeyFile)
	case SignerTransit:
		return evidence.NewTransitSigner(client, cfg.TransitMount, cfg.TransitKey), nil
	}
	return nil, nil
}

// checkSigner makes sure the signer works before the agent takes work: a transit key must
// exist, be ed25519 and be readable, so a misconfiguration stops start-up instead of
// failing every change. The error says what the operator can do about it.
func checkSigner(ctx context.Context, cfg EvidenceConfig, s evidence.Signer, log logrus.FieldLogger) error {
	if s == nil {
		log.Warn("evidence records are not signed (ROTATION_AGENT_EVIDENCE_SIGNER=none, for labs only); evidence verify will refuse them")
		return nil
	}
	keys, err := s.PublicKeys(ctx)
	if err != nil {
		return fmt.Errorf("evidence signer: %w; %s", err, signerHint(cfg))
	}
	if _, err := s.Sign(ctx, []byte("rotation-agent start-up check")); err != nil {
		return fmt.Errorf("evidence signer: %w; %s", err, signerHint(cfg))
	}
	last := keys[len(keys)-1]
	log.WithFields(logrus.Fields{"key_id": last.KeyID, "key_version": last.KeyVersion}).Info("evidence records are signed")
	return nil
}

// SignerPublicKeys returns the public keys of the configured evidence signer (logging in to
// Vault for a transit key), for `evidence keys`.
func SignerPublicKeys(ctx context.Context, cfg Config) ([]evidence.PublicKey, error) {
	var client *vault.Client
	if cfg.Evidence.Signer == SignerTransit {
		log := logrus.New()
		log.SetOutput(io.Discard)
		vs, _, err := openVault(ctx, cfg.Vault, log, NewRedactor())
		if err != nil {
			return nil, err
		}
		client = vs.client
	}
	s, err := NewSigner(cfg.Evidence, client)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("ROTATION_AGENT_EVIDENCE_SIGNER is none: records are not signed and there is no key")
	}
	return s.PublicKeys(ctx)
}

// signerHint tells the operator how to give the agent a working signer.
func signerHint(cfg EvidenceConfig) string {
	if cfg.Signer != SignerTransit {
		return "set ROTATION_AGENT_EVIDENCE_KEY_FILE to a PEM (PKCS #8) Ed25519 private key readable by the agent"
	}
	mount := strings.Trim(cfg.TransitMount, "/")
	return fmt.Sprintf("create the signing key (vault secrets enable -path=%s transit; vault write %s/keys/%s type=ed25519) and allow the agent update on %s/sign/%s and read on %s/keys/%s, "+
		"or set ROTATION_AGENT_EVIDENCE_SIGNER=file with ROTATION_AGENT_EVIDENCE_KEY_FILE, or ROTATION_AGENT_EVIDENCE_SIGNER=none to run unsigned (labs only)",
		mount, mount, cfg.TransitKey, mount, cfg.TransitKey, mount, cfg.TransitKey)
}
