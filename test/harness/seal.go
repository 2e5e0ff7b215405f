package harness

import (
	"encoding/base64"
	"testing"

	"github.com/hashicorp/vault/vault"
)

// Seal seals the Vault core, as an operator (or an outage) would.
func (v *Vault) Seal(t testing.TB) {
	t.Helper()
	if err := v.Root.Sys().Seal(); err != nil {
		t.Fatalf("seal: %v", err)
	}
}

// Unseal unseals the core with its unseal keys and waits until it is active again.
func (v *Vault) Unseal(t testing.TB) {
	t.Helper()
	for _, key := range v.Cluster.BarrierKeys {
		if _, err := v.Root.Sys().Unseal(base64.StdEncoding.EncodeToString(key)); err != nil {
			t.Fatalf("unseal: %v", err)
		}
	}
	vault.TestWaitActive(t, v.Cluster.Cores[0].Core)
}
