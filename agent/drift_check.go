package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/rotation-agent/rotation-agent/discovery"
	"github.com/rotation-agent/rotation-agent/events"
)

// evidenceDrift is the scheduled drift check: it compares every identity the inventory
// approves with its access in Vault (remediating when that is configured) and publishes the
// result as a signed, chained evidence record of its own, so an auditor finds the periodic
// checks next to the changes.
type evidenceDrift struct{ p *pipeline }

var _ DriftChecker = evidenceDrift{}

// CheckDrift runs the comparison for every binding with approved entitlements.
func (d evidenceDrift) CheckDrift(ctx context.Context, bindings []discovery.Binding) error {
	p := d.p
	matches := make([]discovery.Match, 0, len(bindings))
	for _, b := range bindings {
		if len(b.ApprovedEntitlements) > 0 {
			matches = append(matches, discovery.Match{Binding: b.Name, Entitlements: b.ApprovedEntitlements})
		}
	}
	if len(matches) == 0 {
		return nil
	}
	started := p.clock.Now().UTC()
	id := "drift-check:" + started.Truncate(time.Second).Format("2006-01-02T15:04:05Z")
	log := p.log.WithFields(logrus.Fields{FieldChangeID: id, FieldAction: "drift-check"})
	ev := &events.ChangeEvent{ID: id, Data: events.Change{ID: id, Type: events.ChangeStandard}}
	ents, err := p.checkEntitlements(ctx, ev, matches, log, true)
	if err != nil {
		return fmt.Errorf("compare entitlements: %w", err)
	}
	env := p.evidenceEnvelope(id, id, events.ChangeStandard, events.TriggerSchedule, started, nil)
	withEntitlements(&env, ents)
	if _, err := p.publishEvidence(ctx, env); err != nil {
		return fmt.Errorf("publish drift-check evidence: %w", err)
	}
	log.WithField("status", env.Data.Status).Info("drift check published")
	return nil
}
