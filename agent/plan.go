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

// CredentialPlan is what a rotation of one credential would do.
type CredentialPlan struct {
	Credential string             `json:"credential"`
	MatchedBy  string             `json:"matched_by"`
	Kind       string             `json:"kind"`
	Action     events.Action      `json:"action"`
	Current    events.Fingerprint `json:"current,omitempty"`
	Changes    []string           `json:"changes,omitempty"`
	Error      string             `json:"error,omitempty"`
}

// PlanEvent decodes a change event and asks each credential's rotator what it would do. It
// reads Vault and never writes to it; NATS is not used.
func PlanEvent(ctx context.Context, cfg Config, payload []byte) ([]CredentialPlan, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ev, rej := events.DecodeChangeEvent(payload, cfg.MaxEventBytes)
	if rej != nil {
		return nil, fmt.Errorf("event rejected: %w", rej)
	}
	redactor := NewRedactor()
	log, err := NewLogger(io.Discard, "error", redactor)
	if err != nil {
		return nil, err
	}
	startCtx, cancel := context.WithTimeout(ctx, cfg.StartupTimeout)
	defer cancel()
	vs, _, err := openVault(startCtx, cfg.Vault, logrus.NewEntry(log), redactor)
	if err != nil {
		return nil, err
	}
	registry, err := newRegistry(vs.client)
	if err != nil {
		return nil, err
	}
	cat, err := newCatalog(cfg.InventoryFile, registry.Kinds(), logrus.NewEntry(log))
	if err != nil {
		return nil, err
	}
	matches := cat.resolve(ev.Data)
	plans := make([]CredentialPlan, 0, len(matches))
	for _, m := range matches {
		ref := m.Credential
		cp := CredentialPlan{Credential: ref.ID(), MatchedBy: m.Reason, Kind: ref.Kind, Action: ref.EffectiveAction()}
		rot, err := registry.Lookup(ref.Kind)
		if err == nil {
			ref = rotators.WithDefaultAction(rot, ref)
			cp.Action = ref.EffectiveAction()
			var plan rotators.Plan
			plan, err = rot.Plan(ctx, rotators.Request{ChangeID: ev.Data.ID, Credential: ref, Now: time.Now})
			cp.Current, cp.Changes = plan.Current, plan.Changes
		}
		if err != nil {
			cp.Error = redactor.String(singleLine(err).Error())
		}
		plans = append(plans, cp)
	}
	return plans, nil
}

// ReadEventFile reads a change event from a file, or standard input for "-".
func ReadEventFile(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path)
}
