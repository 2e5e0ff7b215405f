package agent

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/discovery"
	"github.com/rotation-agent/rotation-agent/events"
)

func record(trigger events.Trigger, creds []events.CredentialEvidence, ents []events.EntitlementEvidence) events.Record {
	ev := events.Evidence{ChangeID: "CHG1", EventID: "e", Trigger: trigger, Credentials: creds, Entitlements: ents}
	ev.Status = events.WithEntitlements(events.OverallStatus(creds), ents)
	return events.Record{ID: "evidence:CHG1:e", Data: ev}
}

// retirement is the retirement record of CHG1 for its one credential.
func retirement(c events.CredentialEvidence) events.Record {
	rec := record(events.TriggerSchedule, []events.CredentialEvidence{c}, nil)
	rec.Data.EventID = events.RetirementEventID("e", hashToken(c.Credential))
	rec.ID = "evidence:CHG1:" + rec.Data.EventID
	return rec
}

// agentWork is the change record of a change the agent created itself (schedule:, deferred:),
// which carries trigger schedule like a retirement record.
func agentWork(changeID string, creds ...events.CredentialEvidence) events.Record {
	rec := record(events.TriggerSchedule, creds, nil)
	rec.Data.ChangeID, rec.Data.EventID, rec.ID = changeID, changeID, "evidence:"+changeID+":"+changeID
	return rec
}

func TestClosureAnswer(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	retireAt := now.Add(time.Hour)
	rotated := events.CredentialEvidence{Credential: "kv-v2:secret/a", Outcome: events.OutcomeRotated, OldCredential: "retired"}
	pending := rotated
	pending.OldCredential, pending.RetireAt = "retire_pending", &retireAt
	failed := events.CredentialEvidence{Credential: "kv-v2:secret/b", Outcome: events.OutcomeFailed, Error: "verify: permission denied"}
	drift := events.EntitlementEvidence{Identity: "approle:p", Status: events.EntitlementDrift, ExtraPolicies: []string{"admin"}}
	remediated := drift
	remediated.Status = events.EntitlementRemediated
	unchecked := events.EntitlementEvidence{Identity: "entity:x", Status: events.EntitlementError, Error: "entity does not exist"}
	inProgress := journalEntry{Ref: events.CredentialRef{Kind: "kv-v2", Mount: "secret", Path: "c"}}
	inProgress.State.Done = "apply"
	until := now.Add(22 * time.Hour)
	deferredRef := events.CredentialRef{Kind: "kv-v2", Mount: "secret", Path: "d"}
	deferred := events.CredentialEvidence{Credential: deferredRef.ID(), Outcome: events.OutcomeDeferred, DeferredUntil: &until}
	deferredEntry := journalEntry{ChangeID: "CHG1", Credential: deferredRef.Key(), Ref: deferredRef, Final: true, Evidence: &deferred}
	deferredID := deferredChangeID("CHG1", deferredRef.Key())
	deferredDone := events.CredentialEvidence{Credential: deferredRef.ID(), Outcome: events.OutcomeRotated, OldCredential: "retired"}
	deferredFailed := events.CredentialEvidence{Credential: deferredRef.ID(), Outcome: events.OutcomeFailed, Error: "permission denied"}
	deferredRunning := journalEntry{ChangeID: deferredID, Credential: deferredRef.Key(), Ref: deferredRef}
	deferredRunning.State.Done = "apply"

	tests := []struct {
		name    string
		records []events.Record
		entries []journalEntry
		reasons []string // substrings, one per reason; none means yes
	}{
		{"no evidence", nil, nil, []string{"no evidence record"}},
		{"no evidence, work in progress", nil, []journalEntry{inProgress}, []string{"no evidence record", "kv-v2:secret/c is still being reconciled (journal step \"apply\")"}},
		{"reconciled", []events.Record{record(events.TriggerEvent, []events.CredentialEvidence{rotated}, nil)}, nil, nil},
		{"no credentials", []events.Record{record(events.TriggerEvent, []events.CredentialEvidence{}, nil)}, nil, nil},
		{"retire pending", []events.Record{record(events.TriggerEvent, []events.CredentialEvidence{pending}, nil)}, nil,
			[]string{"old credential of kv-v2:secret/a still works: it is due to be retired at 2026-03-01T01:00:00Z"}},
		{"retired later", []events.Record{
			record(events.TriggerEvent, []events.CredentialEvidence{pending}, nil),
			retirement(rotated),
		}, nil, nil},
		{"only a retirement record", []events.Record{retirement(rotated)}, nil,
			[]string{"no evidence record"}},
		{"scheduled rotation", []events.Record{agentWork("CHG1", rotated)}, nil, nil},
		{"scheduled rotation retired later", []events.Record{agentWork("CHG1", pending), retirement(rotated)}, nil, nil},
		{"deferred, window not open yet", []events.Record{record(events.TriggerEvent, []events.CredentialEvidence{rotated, deferred}, nil)},
			[]journalEntry{deferredEntry},
			[]string{"kv-v2:secret/d is deferred to its maintenance window until 2026-03-01T22:00:00Z: the change that runs it then (deferred:CHG1:...) has not reconciled it yet"}},
		{"deferred, then rotated", []events.Record{
			record(events.TriggerEvent, []events.CredentialEvidence{rotated, deferred}, nil),
			agentWork(deferredID, deferredDone),
		}, []journalEntry{deferredEntry}, nil},
		{"deferred, then failed", []events.Record{
			record(events.TriggerEvent, []events.CredentialEvidence{rotated, deferred}, nil),
			agentWork(deferredID, deferredFailed),
		}, []journalEntry{deferredEntry}, []string{"kv-v2:secret/d is not reconciled: failed: permission denied"}},
		{"deferred, running now", []events.Record{record(events.TriggerEvent, []events.CredentialEvidence{rotated, deferred}, nil)},
			[]journalEntry{deferredEntry, deferredRunning},
			[]string{"kv-v2:secret/d is deferred", "kv-v2:secret/d is still being reconciled (journal step \"apply\")"}},
		{"failed credential", []events.Record{record(events.TriggerEvent, []events.CredentialEvidence{rotated, failed}, nil)}, nil,
			[]string{"kv-v2:secret/b is not reconciled: failed: verify: permission denied"}},
		{"drift", []events.Record{record(events.TriggerEvent, []events.CredentialEvidence{rotated}, []events.EntitlementEvidence{drift})}, nil,
			[]string{"entitlement drift on approle:p: extra policies [admin], missing policies []"}},
		{"remediated", []events.Record{record(events.TriggerEvent, []events.CredentialEvidence{rotated}, []events.EntitlementEvidence{remediated})}, nil, nil},
		{"unchecked identity", []events.Record{record(events.TriggerEvent, nil, []events.EntitlementEvidence{unchecked})}, nil,
			[]string{"entitlements of entity:x could not be checked: entity does not exist"}},
		{"rejected", []events.Record{{Data: events.Evidence{ChangeID: "CHG1", Trigger: events.TriggerEvent, Status: events.StatusRejected}}}, nil,
			[]string{"refused to act"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ans := closureAnswer("CHG1", tc.records, tc.entries, nil, now)
			if ans.MayClose != (len(tc.reasons) == 0) || len(ans.Reasons) != len(tc.reasons) {
				t.Fatalf("answer = %+v, want reasons %q", ans, tc.reasons)
			}
			for i, r := range tc.reasons {
				if !strings.Contains(ans.Reasons[i], r) {
					t.Errorf("reason %d = %q, want it to contain %q", i, ans.Reasons[i], r)
				}
			}
			if ans.Records != len(tc.records) || !ans.CheckedAt.Equal(now) || ans.Reasons == nil {
				t.Errorf("answer = %+v", ans)
			}
		})
	}
}

func TestApprovalsPreferTheChangeThenTheFirstBinding(t *testing.T) {
	ch := events.Change{ApprovedEntitlements: []events.ApprovedEntitlements{{Identity: "approle:a", Policies: []string{"from-change"}}}}
	matches := []discovery.Match{
		{Reason: "named in the event"},
		{Binding: "first", Entitlements: []events.ApprovedEntitlements{{Identity: "approle:a", Policies: []string{"x"}}, {Identity: "entity:b", Policies: []string{"first"}}}},
		{Binding: "second", Entitlements: []events.ApprovedEntitlements{{Identity: "entity:b", Policies: []string{"second"}}, {Identity: "group:c", Policies: []string{}}}},
	}
	got := approvals(ch, matches)
	var summary []string
	for _, a := range got {
		summary = append(summary, fmt.Sprintf("%s=%s by %s may grant %t", a.Identity, strings.Join(a.Policies, ","), a.Source, a.MayGrant))
	}
	// Only a binding's approval may add policies when remediating.
	want := []string{"approle:a=from-change by change event may grant false", "entity:b=first by binding first may grant true", "group:c= by binding second may grant true"}
	if !reflect.DeepEqual(summary, want) {
		t.Errorf("approvals = %q, want %q", summary, want)
	}
}
