package agent

import (
	"context"
	"fmt"
	"io"

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
// failing every change.
func checkSigner(ctx context.Context, s evidence.Signer, log logrus.FieldLogger) error {
	if s == nil {
		log.Warn("evidence records are not signed (ROTATION_AGENT_EVIDENCE_SIGNER=none); evidence verify will refuse them")
		return nil
	}
	keys, err := s.PublicKeys(ctx)
	if err != nil {
		return fmt.Errorf("evidence signer: %w", err)
	}
	if _, err := s.Sign(ctx, []byte("rotation-agent start-up check")); err != nil {
		return fmt.Errorf("evidence signer: %w", err)
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
