package agent

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
)

// The record of a review step is a valid evidence record whose id, time and content follow
// from the review alone, so a retried publication builds the same record.
func TestReviewEvidenceRecord(t *testing.T) {
	opened := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	escalated := opened.Add(24*time.Hour + time.Second)
	attested := escalated.Add(time.Hour)
	r := &reviews{p: &pipeline{agent: events.AgentInfo{ID: "agent-1", Version: "test"}}}
	base := events.Review{ChangeID: "CHG42", Status: events.ReviewOpen, Event: events.ReviewOpened, OpenedAt: opened,
		Deadline: opened.Add(24 * time.Hour), Granted: []string{"token:token/acc"}, Agent: r.p.agent}
	overdue := base
	overdue.Status, overdue.Event, overdue.EscalatedAt, overdue.CleanupChangeID = events.ReviewOverdue, events.ReviewEscalate, &escalated, "review:CHG42"
	approved := overdue
	approved.Status, approved.Event = events.ReviewApproved, events.ReviewAttested
	approved.Attestations = []events.Attestation{{By: "alice", Decision: events.DecisionApprove, Note: "late, but fine", At: attested}}

	schema, err := events.Schema("schema/evidence.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		recordID string
		review   events.Review
		at       time.Time
	}{
		{"review:CHG42:opened", base, opened},
		{"review:CHG42:overdue", overdue, escalated},
		{"review:CHG42:attested:1", approved, attested},
	} {
		t.Run(tc.recordID, func(t *testing.T) {
			if !sealsReviewEvent(tc.review.Event) {
				t.Fatalf("event %s is not sealed", tc.review.Event)
			}
			rec := r.reviewEvidence(tc.recordID, tc.review)
			if want := "evidence:CHG42:" + tc.recordID; rec.ID != want || rec.Data.EventID != tc.recordID {
				t.Errorf("id %q event id %q, want %q and %q", rec.ID, rec.Data.EventID, want, tc.recordID)
			}
			if !rec.Time.Equal(tc.at) || !rec.Data.FinishedAt.Equal(tc.at) {
				t.Errorf("time %s, want the step's time %s", rec.Time, tc.at)
			}
			if !rec.Data.IsReviewStep() || rec.Data.Trigger != events.TriggerReview || rec.Data.Status != events.StatusNoCredentials {
				t.Errorf("record = %+v, want a review step with trigger review and no credentials", rec.Data)
			}
			again := r.reviewEvidence(tc.recordID, tc.review)
			a, _ := json.Marshal(rec)
			b, _ := json.Marshal(again)
			if string(a) != string(b) {
				t.Errorf("the same step built two different records:\n%s\n%s", a, b)
			}
			var doc any
			_ = json.Unmarshal(a, &doc)
			if err := schema.Validate(doc); err != nil {
				t.Errorf("record does not match the evidence schema: %v", err)
			}
		})
	}
	if sealsReviewEvent(events.ReviewReminder) {
		t.Error("a reminder is sealed; only the opening, attestations and the escalation are")
	}
	if got := r.reviewEvidence("review:CHG42:attested:1", approved).Data.Review.Attestations[0]; got.By != "alice" || got.Note != "late, but fine" {
		t.Errorf("attestation in the record = %+v", got)
	}
}

// A reviews value that is not running adds no review to a clean-up's evidence.
func TestOutcomeForNeedsReviews(t *testing.T) {
	var r *reviews
	if got := r.outcomeFor(t.Context(), events.Change{ID: "review:CHG1", Trigger: events.TriggerReview, RelatedChangeID: "CHG1"}); got != nil {
		t.Errorf("outcomeFor = %+v, want nil", got)
	}
}
