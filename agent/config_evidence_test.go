package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidateEvidence(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(keyFile, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		set  func(*Config)
		want []string
	}{
		{"default transit", func(*Config) {}, nil},
		{"none chosen", func(c *Config) { c.Evidence.Signer = SignerNone }, nil},
		{"file", func(c *Config) { c.Evidence.Signer, c.Evidence.KeyFile = SignerFile, keyFile }, nil},
		{"transit", func(c *Config) { c.Evidence.Signer, c.Evidence.TransitKey = SignerTransit, "evidence" }, nil},
		{"unknown signer", func(c *Config) { c.Evidence.Signer = "hsm" }, []string{`ROTATION_AGENT_EVIDENCE_SIGNER: "hsm" is not one of transit, file, none`}},
		{"file without key", func(c *Config) { c.Evidence.Signer = SignerFile }, []string{"ROTATION_AGENT_EVIDENCE_KEY_FILE: required with the file signer"}},
		{"file missing", func(c *Config) { c.Evidence.Signer, c.Evidence.KeyFile = SignerFile, keyFile+".gone" }, []string{"ROTATION_AGENT_EVIDENCE_KEY_FILE: stat"}},
		{"transit without key", func(c *Config) {
			c.Evidence.Signer, c.Evidence.TransitMount, c.Evidence.TransitKey = SignerTransit, "", ""
		}, []string{
			"ROTATION_AGENT_EVIDENCE_TRANSIT_KEY: required with the transit signer", "ROTATION_AGENT_EVIDENCE_TRANSIT_MOUNT: required with the transit signer"}},
		{"short retention", func(c *Config) { c.NATS.EvidenceMaxAge = time.Minute }, []string{"ROTATION_AGENT_NATS_EVIDENCE_MAX_AGE: must be at least 1h"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := validConfig()
			tc.set(&cfg)
			err := cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted it, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), "invalid configuration: "+w) {
					t.Errorf("error %v lacks %q", err, w)
				}
			}
		})
	}
}
