// Package harness starts the real components the integration tests and the demo run against:
// an in-process Vault core with the backends the agent uses, an in-process NATS server with
// JetStream, and the agent itself.
package harness

import (
	"testing"

	"github.com/hashicorp/go-hclog"
	kv "github.com/hashicorp/vault-plugin-secrets-kv"
	vaultapi "github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/builtin/credential/approle"
	"github.com/hashicorp/vault/builtin/logical/database"
	"github.com/hashicorp/vault/builtin/logical/pki"
	"github.com/hashicorp/vault/builtin/logical/transit"
	"github.com/hashicorp/vault/helper/builtinplugins"
	vaulthttp "github.com/hashicorp/vault/http"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/vault"
)

// Vault is a running in-process Vault core, reached over HTTPS like a production server.
type Vault struct {
	// Addr is the HTTPS address of the core.
	Addr string
	// CACertFile is the PEM file of the cluster's CA; the agent trusts it as it would in production.
	CACertFile string
	// Root is a client with the root token, for the test to set up and inspect Vault.
	Root *vaultapi.Client
	// Cluster is the underlying test cluster, for fault tests (seal, unseal).
	Cluster *vault.TestCluster
}

// StartVault starts a one-core Vault with KV v2 mounted at secret/, and the pki, transit,
// database and approle backends registered. It stops when the test ends.
func StartVault(t testing.TB) *Vault {
	t.Helper()
	cluster := vault.NewTestCluster(t, &vault.CoreConfig{
		LogicalBackends: map[string]logical.Factory{
			"kv":       kv.Factory,
			"pki":      pki.Factory,
			"transit":  transit.Factory,
			"database": database.Factory,
		},
		CredentialBackends: map[string]logical.Factory{
			"approle": approle.Factory,
		},
		BuiltinRegistry: builtinplugins.Registry,
	}, &vault.TestClusterOptions{
		HandlerFunc: vaulthttp.Handler,
		NumCores:    1,
		Logger:      hclog.NewNullLogger(),
	})
	cluster.Start()
	t.Cleanup(cluster.Cleanup)
	root := cluster.Cores[0].Client
	vault.TestWaitActive(t, cluster.Cores[0].Core)
	// The test cluster mounts a KV version 1 at secret/; replace it with version 2, as in a
	// dev server and most installations.
	if err := root.Sys().Unmount("secret"); err != nil {
		t.Fatalf("unmount secret/: %v", err)
	}
	if err := root.Sys().Mount("secret", &vaultapi.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatalf("mount kv v2: %v", err)
	}
	return &Vault{Addr: root.Address(), CACertFile: cluster.CACertPEMFile, Root: root, Cluster: cluster}
}
