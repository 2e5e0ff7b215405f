package agent

import (
	"context"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/rotation-agent/rotation-agent/discovery"
	"github.com/rotation-agent/rotation-agent/entitlements"
	"github.com/rotation-agent/rotation-agent/events"
)

// approvals collects the approved access a change and its matched bindings declare, one per
// identity: the change event's approval wins over a binding's, and the first binding wins
// over later ones.
func approvals(ch events.Change, matches []discovery.Match) []entitlements.Approval {
	seen := map[string]bool{}
	var out []entitlements.Approval
	add := func(list []events.ApprovedEntitlements, source string, mayGrant bool) {
		for _, a := range list {
			if seen[a.Identity] {
				continue
			}
			seen[a.Identity] = true
			out = append(out, entitlements.Approval{ApprovedEntitlements: a, Source: source, MayGrant: mayGrant})
		}
	}
	// Only the agent's own bindings may approve policies an identity lacks (see MayGrant).
	add(ch.ApprovedEntitlements, "change event", false)
	for _, m := range matches {
		if m.Binding != "" {
			add(m.Entitlements, "binding "+m.Binding, true)
		}
	}
	return out
}

// checkEntitlements compares every identity tied to the change with its approval (and, when
// remediation is on, writes the approved policies back). A retryable Vault failure retries the
// change unless this is its last delivery, where it is recorded as an error result instead.
func (p *pipeline) checkEntitlements(ctx context.Context, ev *events.ChangeEvent, matches []discovery.Match, log logrus.FieldLogger, final bool) ([]events.EntitlementEvidence, error) {
	list := approvals(ev.Data, matches)
	if len(list) == 0 || p.entitlements == nil {
		return nil, nil
	}
	out := make([]events.EntitlementEvidence, 0, len(list))
	for _, a := range list {
		elog := log.WithField("identity", a.Identity)
		res, err := p.entitlements.Check(ctx, a)
		if err != nil {
			if !final {
				return nil, fmt.Errorf("entitlements of %s: %w", a.Identity, err)
			}
			res.Status, res.Error = events.EntitlementError, err.Error()
		}
		res.Error = p.redactor.String(res.Error)
		fields := logrus.Fields{"status": res.Status, "extra_policies": res.ExtraPolicies, "missing_policies": res.MissingPolicies}
		switch res.Status {
		case events.EntitlementMatch:
			elog.WithFields(fields).Info("entitlements match the approval")
		case events.EntitlementRemediated:
			elog.WithFields(fields).Warn("entitlement drift remediated: approved policies written back")
		default:
			elog.WithFields(fields).WithField("error", res.Error).Warn("entitlement drift open")
		}
		out = append(out, res)
	}
	return out, nil
}

// withEntitlements adds the entitlement results to a change record and refines its status and
// controls.
func withEntitlements(env *events.Envelope[events.Evidence], ents []events.EntitlementEvidence) {
	if len(ents) == 0 {
		return
	}
	env.Data.Entitlements = ents
	env.Data.Status = events.WithEntitlements(env.Data.Status, ents)
	env.Data.Controls = events.ControlsFor(env.Data)
}
