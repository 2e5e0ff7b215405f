package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"

	"github.com/rotation-agent/rotation-agent/discovery/vaultsource"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// planCredentials asks each credential a change touches what a rotation would do, and records
// the overlap window a rotation would keep (defaultOverlap when the credential sets none). It
// reads Vault and never writes to it.
func planCredentials(ctx context.Context, registry *rotators.Registry, cat *catalog, ch events.Change, defaultOverlap time.Duration, redactor *Redactor) []events.CredentialImpact {
	return planMatches(ctx, registry, cat, ch, defaultOverlap, redactor, true)
}

// planMatches is planCredentials; with ask false the rotators are not asked (no Vault call):
// only the action, the authorisation of privileged options and the overlap are filled in, and
// an unknown kind is an error.
func planMatches(ctx context.Context, registry *rotators.Registry, cat *catalog, ch events.Change, defaultOverlap time.Duration, redactor *Redactor, ask bool) []events.CredentialImpact {
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
		if err == nil && ask {
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

// PlanOptions change what PlanEvent does.
type PlanOptions struct {
	// Offline matches the change against the inventory and the credentials the event names
	// only, without contacting Vault: no login, no discovery, and no rotator is asked what it
	// would do. Only the inventory and discovery files and the event size limit of the
	// configuration are used.
	Offline bool
}

// PlanEvent decodes a change event and reports what would be done to each credential it
// touches, with the impact level. It reads Vault and never writes to it; NATS is not used.
// With a discovery file configured it runs every discovery source once, so the plan lists
// the credentials discovery finds; a source that fails is listed in the report's discovery
// status (incomplete).
func PlanEvent(ctx context.Context, cfg Config, payload []byte, opts PlanOptions) (events.Impact, error) {
	validate := cfg.Validate
	if opts.Offline {
		validate = cfg.validateOffline
	}
	if err := validate(); err != nil {
		return events.Impact{}, err
	}
	ev, rej := events.DecodeChangeEvent(payload, cfg.MaxEventBytes)
	if rej != nil {
		return events.Impact{}, fmt.Errorf("event rejected: %w", rej)
	}
	redactor := NewRedactor()
	redactor.Add(cfg.Vault.Token)
	log, err := NewLogger(io.Discard, "error", redactor)
	if err != nil {
		return events.Impact{}, err
	}
	var discoveryCfg *vaultsource.Config
	if cfg.DiscoveryFile != "" {
		dc, err := loadDiscoveryConfig(cfg.DiscoveryFile)
		if err != nil {
			return events.Impact{}, err
		}
		discoveryCfg = &dc
	}
	var client *vault.Client // nil offline: the registry then knows kinds and default actions only
	if !opts.Offline {
		startCtx, cancel := context.WithTimeout(ctx, cfg.StartupTimeout)
		defer cancel()
		vs, _, err := openVault(startCtx, cfg.Vault, logrus.NewEntry(log), redactor)
		if err != nil {
			return events.Impact{}, err
		}
		client = vs.client
	}
	registry, err := newRegistry(client)
	if err != nil {
		return events.Impact{}, err
	}
	cat, err := newCatalog(cfg.InventoryFile, registry.Kinds(), logrus.NewEntry(log))
	if err != nil {
		return events.Impact{}, err
	}
	switch {
	case opts.Offline:
		report := &events.DiscoveryReport{Status: events.DiscoverySkipped}
		if discoveryCfg != nil {
			report.Sources = discoveryCfg.SourceNames()
		}
		cat.setDiscoveryReport(func() *events.DiscoveryReport { return report })
	case discoveryCfg != nil:
		discoverOnce(ctx, client, *discoveryCfg, cat, redactor)
	}
	agent := events.AgentInfo{ID: cfg.AgentID, Version: Version}
	return planImpact(ctx, registry, cat, ev, cfg.Overlap, agent, redactor, !opts.Offline), nil
}

// discoverOnce runs every discovery source once (reading Vault only) and merges what they
// find into the catalog, with a report that lists the sources that failed.
func discoverOnce(ctx context.Context, client *vault.Client, cfg vaultsource.Config, cat *catalog, redactor *Redactor) {
	bindings, errs := vaultsource.Discover(ctx, client, cfg)
	report := &events.DiscoveryReport{Status: events.DiscoveryComplete, Sources: cfg.SourceNames()}
	for _, err := range errs {
		var se *vaultsource.SourceError
		if errors.As(err, &se) && se.Failed {
			report.Failed = append(report.Failed, events.DiscoveryFailure{Source: se.Source, Error: redactor.String(singleLine(se.Err).Error())})
		}
	}
	if len(report.Failed) > 0 {
		report.Status = events.DiscoveryIncomplete
	}
	cat.setDiscovered(bindings)
	cat.setDiscoveryReport(func() *events.DiscoveryReport { return report })
}

// impactOf builds the impact report of a change event.
func impactOf(ctx context.Context, registry *rotators.Registry, cat *catalog, ev *events.ChangeEvent, defaultOverlap time.Duration, agent events.AgentInfo, redactor *Redactor) events.Impact {
	return planImpact(ctx, registry, cat, ev, defaultOverlap, agent, redactor, true)
}

// planImpact is impactOf; with ask false the rotators are not asked (see planMatches).
func planImpact(ctx context.Context, registry *rotators.Registry, cat *catalog, ev *events.ChangeEvent, defaultOverlap time.Duration, agent events.AgentInfo, redactor *Redactor, ask bool) events.Impact {
	creds := planMatches(ctx, registry, cat, ev.Data, defaultOverlap, redactor, ask)
	level, reasons := events.AssessImpact(creds)
	return events.Impact{
		SchemaVersion: 1, ChangeID: ev.Data.ID, EventID: ev.ID, ChangeType: ev.Data.Type,
		Level: level, Reasons: reasons, Credentials: creds, Agent: agent, AssessedAt: time.Now().UTC(),
		Discovery: cat.discoveryReport(),
	}
}

// ReadEventFile reads a change event from a file, or standard input for "-".
func ReadEventFile(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path)
}
