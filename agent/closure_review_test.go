package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
)

// reviewStep is the evidence record of a review step of CHG1 with the review in status.
func reviewStep(status events.ReviewStatus, deadline time.Time, atts ...events.Attestation) events.Record {
	rv := events.Review{ChangeID: "CHG1", Status: status, Deadline: deadline, Attestations: atts}
	return events.Record{ID: "evidence:CHG1:review:CHG1:x", Data: events.Evidence{ChangeID: "CHG1", ChangeType: events.ChangeEmergency,
		Trigger: events.TriggerReview, Status: events.StatusNoCredentials, Review: &rv}}
}

// An emergency change closes only once its post-change review is approved; the latest review
// step in the evidence decides; other changes are not asked for a review.
func TestClosureAnswerFollowsTheReview(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	deadline := now.Add(4 * time.Hour)
	rotated := events.CredentialEvidence{Credential: "kv-v2:secret/a", Outcome: events.OutcomeRotated, OldCredential: "retired"}
	emergency := record(events.TriggerEmergency, []events.CredentialEvidence{rotated}, nil)
	emergency.Data.ChangeType = events.ChangeEmergency
	normal := record(events.TriggerEvent, []events.CredentialEvidence{rotated}, nil)
	normal.Data.ChangeType = events.ChangeNormal
	approve := events.Attestation{By: "alice", Decision: events.DecisionApprove, At: now}
	reject := events.Attestation{By: "bob", Decision: events.DecisionReject, Note: "not justified", At: now}
	// A clean-up change's record carries the review of the emergency change it follows up.
	cleanup := record(events.TriggerReview, []events.CredentialEvidence{{Credential: "token:token/a", Outcome: events.OutcomeRevoked}}, nil)
	cleanup.Data.ChangeType, cleanup.Data.RelatedChangeID = events.ChangeNormal, "CHG0"
	cleanup.Data.Review = &events.Review{ChangeID: "CHG0", Status: events.ReviewRejected}

	storedApproved := &events.Review{ChangeID: "CHG1", Status: events.ReviewApproved, Deadline: deadline, Attestations: []events.Attestation{approve}}
	tests := []struct {
		name    string
		records []events.Record
		stored  *events.Review // the review in the journal bucket
		reason  string         // "" means yes
	}{
		{"review not opened yet", []events.Record{emergency}, nil, "post-change review of the emergency change not opened yet"},
		{"open", []events.Record{emergency, reviewStep(events.ReviewOpen, deadline)}, nil, "post-change review open until 2026-03-01T04:00:00Z"},
		{"open past its deadline", []events.Record{emergency, reviewStep(events.ReviewOpen, now)}, nil, "post-change review overdue since 2026-03-01T00:00:00Z"},
		{"overdue", []events.Record{emergency, reviewStep(events.ReviewOpen, deadline), reviewStep(events.ReviewOverdue, deadline)}, nil,
			"post-change review overdue since 2026-03-01T04:00:00Z: escalated"},
		{"rejected", []events.Record{emergency, reviewStep(events.ReviewOpen, deadline), reviewStep(events.ReviewRejected, deadline, reject)}, nil,
			`post-change review rejected by bob ("not justified")`},
		{"approved", []events.Record{emergency, reviewStep(events.ReviewOpen, deadline), reviewStep(events.ReviewApproved, deadline, approve)}, nil, ""},
		{"approved late", []events.Record{emergency, reviewStep(events.ReviewOverdue, deadline), reviewStep(events.ReviewApproved, deadline, approve)}, nil, ""},
		{"normal change", []events.Record{normal}, nil, ""},
		{"clean-up change", []events.Record{cleanup}, nil, ""},
		{"approved before its steps were evidenced", []events.Record{emergency}, storedApproved, ""},
		{"an evidenced step wins over the stored review", []events.Record{emergency, reviewStep(events.ReviewOpen, deadline)}, storedApproved,
			"post-change review open until"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ans := closureAnswer("CHG1", tc.records, nil, tc.stored, now)
			if tc.reason == "" {
				if !ans.MayClose {
					t.Fatalf("answer = %+v, want yes", ans)
				}
				return
			}
			if ans.MayClose || len(ans.Reasons) != 1 || !strings.Contains(ans.Reasons[0], tc.reason) {
				t.Fatalf("answer = %+v, want no because %q", ans, tc.reason)
			}
			if ans.Status != events.StatusReconciled {
				t.Errorf("status = %q, want the change record's (a review step is not the change record)", ans.Status)
			}
		})
	}
}

func TestAwaitsReviewStep(t *testing.T) {
	emergency := record(events.TriggerEmergency, nil, nil)
	emergency.Data.ChangeType = events.ChangeEmergency
	normal := record(events.TriggerEvent, nil, nil)
	for name, tc := range map[string]struct {
		records []events.Record
		want    bool
	}{
		"emergency without a step": {[]events.Record{emergency}, true},
		"emergency with a step":    {[]events.Record{emergency, reviewStep(events.ReviewOpen, time.Time{})}, false},
		"normal change":            {[]events.Record{normal}, false},
		"no record":                {nil, false},
	} {
		if got := awaitsReviewStep(tc.records); got != tc.want {
			t.Errorf("%s: awaitsReviewStep = %v, want %v", name, got, tc.want)
		}
	}
}
