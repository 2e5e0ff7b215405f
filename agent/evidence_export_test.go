package agent

import (
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/clock"
)

// The change records of work the agent creates itself (scheduled rotations, deferred
// credentials) carry trigger schedule like retirement records, yet they are change records:
// only a change whose sole record is a retirement record (or none) is a gap.
func TestEvidenceGapsCountAgentWorkAsChangeRecords(t *testing.T) {
	ctx := context.Background()
	js, cfg := embeddedJetStream(t)
	subjects := events.Subjects{Prefix: events.DefaultSubjectPrefix}
	log := logrus.New()
	log.SetOutput(io.Discard)
	if _, err := provision(ctx, js, cfg, subjects, false, log); err != nil {
		t.Fatal(err)
	}
	p := &pipeline{js: js, subjects: subjects, clock: clock.Real{}, agent: events.AgentInfo{ID: "a1"}}
	ref := events.CredentialRef{Kind: "kv-v2", Mount: "secret", Path: "db"}
	rotated := events.CredentialEvidence{Credential: ref.ID(), Outcome: events.OutcomeRotated, OldCredential: "retire_pending"}
	publish := func(env events.Envelope[events.Evidence]) {
		t.Helper()
		raw, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, subjects.Evidence(env.Data.ChangeID), raw); err != nil {
			t.Fatal(err)
		}
	}
	for _, ch := range []struct {
		id      string
		trigger events.Trigger
		records []string // "change", "retirement"
	}{
		{"CHG1", events.TriggerEvent, []string{"change", "retirement"}},
		{"schedule:db:20261130T000000Z", events.TriggerSchedule, []string{"change", "retirement"}},
		{deferredChangeID("CHG1", ref.Key()), events.TriggerSchedule, []string{"change"}},
		{"CHG2", events.TriggerEvent, []string{"retirement"}},
		{"CHG3", events.TriggerEvent, nil},
	} {
		if err := p.publishWork(ctx, events.Change{ID: ch.id, Trigger: ch.trigger, Credentials: []events.CredentialRef{ref}}); err != nil {
			t.Fatal(err)
		}
		for _, kind := range ch.records {
			eventID := ch.id
			trigger := ch.trigger
			if kind == "retirement" {
				eventID, trigger = events.RetirementEventID(ch.id, hashToken(ref.Key())), events.TriggerSchedule
			}
			publish(p.evidenceEnvelope(ch.id, eventID, events.ChangeStandard, trigger, time.Now(), []events.CredentialEvidence{rotated}))
		}
	}
	gaps, err := EvidenceGaps(ctx, js, cfg, subjects, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range gaps {
		got = append(got, g.ChangeID)
	}
	if len(got) != 2 || got[0] != "CHG2" || got[1] != "CHG3" {
		t.Errorf("gaps = %v, want CHG2 (only a retirement record) and CHG3 (no record)", got)
	}
}
