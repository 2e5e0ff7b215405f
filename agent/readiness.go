package agent

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go"
)

// readiness is the check behind /readyz: Vault must answer, be unsealed and accept the
// agent's login; the NATS connection must be up.
func readiness(vs *vaultSession, nc *nats.Conn) readinessCheck {
	return func(ctx context.Context) (string, string) {
		return vs.problem(ctx), natsProblem(nc)
	}
}

// problem asks Vault for its health (an unauthenticated call, outside any policy) and says
// what keeps the agent from working with it; "" when nothing does.
func (s *vaultSession) problem(ctx context.Context) string {
	health, err := s.healthClient.Sys().HealthWithContext(ctx)
	switch {
	case err != nil:
		return "unreachable"
	case !health.Initialized:
		return "not initialized"
	case health.Sealed:
		return "sealed"
	case !s.healthy.Load():
		return "login failing"
	}
	return ""
}

// natsProblem says why the NATS connection cannot be used; "" when it is connected.
func natsProblem(nc *nats.Conn) string {
	if nc.IsConnected() {
		return ""
	}
	return strings.ToLower(nc.Status().String())
}
