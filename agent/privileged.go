package agent

import (
	"fmt"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
	"github.com/rotation-agent/rotation-agent/rotators/leases"
	"github.com/rotation-agent/rotation-agent/rotators/token"
)

// A privileged option makes a rotator do more than a change event may ask for. Anyone who can
// publish on the change subject can name a credential and set its options, so the agent
// honours a privileged option only when a binding it loaded itself — the inventory file or
// discovery — declares it for the same credential. A credential that asks for one without
// such a binding is refused, not acted on without the option: the requester asked for a
// specific operation, and doing another one silently would hide the request from the evidence.
type privilegedOption struct {
	kind, name string
	// asks reports whether a value of the option asks for the privileged behaviour.
	asks func(value string) bool
	// what says what the option does, for the refusal.
	what string
}

// privilegedOptions lists the options only a binding may set. Other options a change event may
// set are bounded by the rotators themselves.
var privilegedOptions = []privilegedOption{{
	kind: leases.Kind, name: leases.OptionForce, asks: isTrue,
	what: "sys/leases/revoke-force, which drops the leases even where their backend fails to revoke the credentials, so they may stay valid",
}, {
	kind: token.Kind, name: token.OptionOrphanChildren, asks: isTrue,
	what: "auth/token/revoke-orphan, which keeps every child of the revoked token valid",
}}

func isTrue(v string) bool {
	b, err := strconv.ParseBool(v)
	return err == nil && b
}

// authorise refuses a credential that asks for a privileged option no binding of the
// catalog declares for the same credential (kind, mount and path).
func (c *catalog) authorise(ref events.CredentialRef) error {
	for _, opt := range privilegedOptions {
		v, set := ref.Options[opt.name]
		if ref.Kind != opt.kind || !set || !opt.asks(v) {
			continue
		}
		if !c.declares(ref.ID(), opt) {
			return rotators.Permanent(fmt.Errorf("option %s=%s refused: it asks for %s; only an inventory binding (or discovery) of %s may set it, not a change event",
				opt.name, v, opt.what, ref.ID()))
		}
	}
	return nil
}

// declares reports whether a binding of the credential id asks for the privileged option. It
// scans every binding: only credentials that ask for a privileged option get here.
func (c *catalog) declares(id string, opt privilegedOption) bool {
	for _, b := range c.index.Load().Bindings() {
		if b.Credential.Kind == opt.kind && b.Credential.ID() == id && opt.asks(b.Credential.Options[opt.name]) {
			return true
		}
	}
	return false
}

// refused is the evidence of a credential the agent would not act on; nothing was done.
func (p *pipeline) refused(ref events.CredentialRef, err error, log logrus.FieldLogger) events.CredentialEvidence {
	if rot, lookupErr := p.registry.Lookup(ref.Kind); lookupErr == nil {
		ref = rotators.WithDefaultAction(rot, ref)
	}
	now := time.Now().UTC()
	ce := events.CredentialEvidence{
		Credential: ref.ID(), Kind: ref.Kind, Mount: ref.Mount, Path: ref.Path, Fields: ref.Fields,
		Action: ref.EffectiveAction(), Outcome: events.OutcomeFailed, Error: p.redactor.String(err.Error()),
		StartedAt: now, FinishedAt: now,
	}
	log.WithError(err).Error("credential refused; nothing done")
	return ce
}
