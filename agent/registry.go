package agent

import (
	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/rotators"
	"github.com/rotation-agent/rotation-agent/rotators/approle"
	"github.com/rotation-agent/rotation-agent/rotators/database"
	"github.com/rotation-agent/rotation-agent/rotators/kvv2"
	"github.com/rotation-agent/rotation-agent/rotators/leases"
	"github.com/rotation-agent/rotation-agent/rotators/pki"
	"github.com/rotation-agent/rotation-agent/rotators/token"
	"github.com/rotation-agent/rotation-agent/rotators/transit"
)

// newRegistry registers every rotator the agent ships, each using client. It is the one
// place a new credential kind is added.
func newRegistry(client *vault.Client) (*rotators.Registry, error) {
	return rotators.NewRegistry(
		kvv2.New(client),
		database.NewStaticRole(client),
		database.NewRoot(client),
		pki.New(client),
		transit.New(client),
		approle.New(client),
		token.New(client),
		leases.New(client),
	)
}
