package agent

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// planCredentials asks each credential a change touches what a rotation would do, and records
// the overlap window a rotation would keep (defaultOverlap when the credential sets none). It
// reads Vault and never writes to it.
func planCredentials(ctx context.Context, registry *rotators.Registry, cat *catalog, ch events.Change, defaultOverlap time.Duration, redactor *Redactor) []events.CredentialImpact {
	matches := cat.resolve(ch)
	out := make([]events.CredentialImpact, 0, len(matches))
	for _, m := range matches {
		ref := m.Credential
		ci := events.CredentialImpact{Credential: ref.ID(), Kind: ref.Kind, MatchedBy: m.Reason, Source: m.Source, Action: ref.EffectiveAction()}
		rot, err := registry.Lookup(ref.Kind)
		if err == nil {
			ref = rotators.WithDefaultAction(rot, ref)
			ci.Action = ref.EffectiveAction()
			err = cat.authorise(ref)
		}
		if err == nil {
			var plan rotators.Plan
			plan, err = rot.Plan(ctx, rotators.Request{ChangeID: ch.ID, Credential: ref, Now: time.Now})
			ci.Current, ci.WouldDo = plan.Current, plan.Changes
		}
		if err == nil && ci.Action != events.ActionRevoke {
			var overlap time.Duration
			if overlap, err = overlapOf(ref, defaultOverlap); err == nil {
				ci.Overlap = overlap.String()
			}
		}
		if err != nil {
			ci.Error = redactor.String(singleLine(err).Error())
		}
		out = append(out, ci)
	}
	return out
}

// PlanEvent decodes a change event and reports what would be done to each credential it
// touches, with the impact level. It reads Vault and never writes to it; NATS is not used.
func PlanEvent(ctx context.Context, cfg Config, payload []byte) (events.Impact, error) {
	if err := cfg.Validate(); err != nil {
		return events.Impact{}, err
	}
	ev, rej := events.DecodeChangeEvent(payload, cfg.MaxEventBytes)
	if rej != nil {
		return events.Impact{}, fmt.Errorf("event rejected: %w", rej)
	}
	redactor := NewRedactor()
	log, err := NewLogger(io.Discard, "error", redactor)
	if err != nil {
		return events.Impact{}, err
	}
	startCtx, cancel := context.WithTimeout(ctx, cfg.StartupTimeout)
	defer cancel()
	vs, _, err := openVault(startCtx, cfg.Vault, logrus.NewEntry(log), redactor)
	if err != nil {
		return events.Impact{}, err
	}
	registry, err := newRegistry(vs.client)
	if err != nil {
		return events.Impact{}, err
	}
	cat, err := newCatalog(cfg.InventoryFile, registry.Kinds(), logrus.NewEntry(log))
	if err != nil {
		return events.Impact{}, err
	}
	return impactOf(ctx, registry, cat, ev, cfg.Overlap, events.AgentInfo{ID: cfg.AgentID, Version: Version}, redactor), nil
}

// impactOf builds the impact report of a change event.
func impactOf(ctx context.Context, registry *rotators.Registry, cat *catalog, ev *events.ChangeEvent, defaultOverlap time.Duration, agent events.AgentInfo, redactor *Redactor) events.Impact {
	creds := planCredentials(ctx, registry, cat, ev.Data, defaultOverlap, redactor)
	level, reasons := events.AssessImpact(creds)
	return events.Impact{
		SchemaVersion: 1, ChangeID: ev.Data.ID, EventID: ev.ID, ChangeType: ev.Data.Type,
		Level: level, Reasons: reasons, Credentials: creds, Agent: agent, AssessedAt: time.Now().UTC(),
	}
}

// ReadEventFile reads a change event from a file, or standard input for "-".
func ReadEventFile(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path)
}
