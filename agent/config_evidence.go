package agent

import (
	"fmt"
	"time"
)

// Evidence signers.
const (
	SignerNone    = "none"
	SignerFile    = "file"
	SignerTransit = "transit"
)

// EvidenceConfig is how evidence records are signed and how entitlement drift is handled.
type EvidenceConfig struct {
	// Signer signs every evidence record: transit (a Vault transit ed25519 key, the default),
	// file (a local Ed25519 key) or none (records are hash-chained but unsigned; verification
	// fails; for labs only, and the agent warns).
	Signer string `split_words:"true" default:"transit"`
	// KeyFile is the PEM (PKCS #8) Ed25519 private key of the file signer.
	KeyFile string `split_words:"true"`
	// TransitMount is the mount of the transit engine holding the signing key.
	TransitMount string `split_words:"true" default:"transit"`
	// TransitKey is the name of the ed25519 transit key that signs records.
	TransitKey string `split_words:"true" default:"rotation-agent-evidence"`
	// ProbeCapabilities measures the effective capabilities of an AppRole role or token role on
	// declared paths by logging in as it once, with a single-use credential revoked at once.
	ProbeCapabilities bool `split_words:"true" default:"true"`
	// RemediateEntitlements writes the approved policies back to an identity in drift.
	RemediateEntitlements bool `split_words:"true"`
}

// validateEvidence reports the problems of the evidence settings.
func (c Config) validateEvidence() []error {
	var errs []error
	env := func(name string) string { return EnvPrefix + "_" + name }
	e := c.Evidence
	switch e.Signer {
	case SignerNone:
	case SignerFile:
		if e.KeyFile == "" {
			errs = append(errs, fmt.Errorf("%s: required with the file signer", env("EVIDENCE_KEY_FILE")))
		}
		checkFile(&errs, env("EVIDENCE_KEY_FILE"), e.KeyFile)
	case SignerTransit:
		if e.TransitKey == "" {
			errs = append(errs, fmt.Errorf("%s: required with the transit signer", env("EVIDENCE_TRANSIT_KEY")))
		}
		if e.TransitMount == "" {
			errs = append(errs, fmt.Errorf("%s: required with the transit signer", env("EVIDENCE_TRANSIT_MOUNT")))
		}
	default:
		errs = append(errs, fmt.Errorf("%s: %q is not one of transit, file, none", env("EVIDENCE_SIGNER"), e.Signer))
	}
	if c.NATS.EvidenceMaxAge < time.Hour {
		errs = append(errs, fmt.Errorf("%s: must be at least 1h", env("NATS_EVIDENCE_MAX_AGE")))
	}
	return errs
}
