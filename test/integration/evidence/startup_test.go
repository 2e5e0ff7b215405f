package evidence

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/agent"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// A signer that cannot sign stops the agent at start-up with a clear reason, instead of
// failing every change later.
func TestUnusableSignerStopsStartUp(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	if err := v.Root.Sys().Mount("transit", &vaultapi.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Root.Logical().Write("transit/keys/aes", map[string]any{"type": "aes256-gcm96"}); err != nil {
		t.Fatal(err)
	}
	token := v.AgentToken(t)
	tests := []struct {
		name, key, want string
	}{
		{"missing transit key", "absent", "transit key transit:transit/absent does not exist"},
		{"not an ed25519 key", "aes", `transit key transit:transit/aes is "aes256-gcm96", want ed25519`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := harness.AgentConfig(t, v, token, n)
			cfg.Evidence.Signer, cfg.Evidence.KeyFile, cfg.Evidence.TransitKey = agent.SignerTransit, "", tc.key
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := agent.Run(ctx, cfg, agent.Options{LogOutput: io.Discard})
			if err == nil || !strings.Contains(err.Error(), "evidence signer: "+tc.want) {
				t.Errorf("Run = %v, want a start-up error containing %q", err, tc.want)
			}
		})
	}
}
