package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
)

// reviewReason is why an emergency change may not close yet because of its post-change
// review, or "" once a reviewer approved it. review is the latest review step recorded in the
// change's evidence (nil when none is).
func reviewReason(review *events.Review, now time.Time) string {
	if review == nil {
		return "post-change review of the emergency change not opened yet"
	}
	deadline := review.Deadline.UTC().Format(time.RFC3339)
	switch review.Status {
	case events.ReviewApproved:
		return ""
	case events.ReviewRejected:
		return "post-change review rejected" + attestedBy(review.Attestations)
	case events.ReviewOverdue:
		return "post-change review overdue since " + deadline + ": escalated, no attestation yet"
	default:
		if !now.Before(review.Deadline) {
			return "post-change review overdue since " + deadline + ": no attestation yet"
		}
		return "post-change review open until " + deadline
	}
}

// attestedBy names the reviewer of the last attestation and the note they gave.
func attestedBy(atts []events.Attestation) string {
	if len(atts) == 0 {
		return ""
	}
	a := atts[len(atts)-1]
	out := " by " + a.By
	if note := strings.TrimSpace(a.Note); note != "" {
		out += fmt.Sprintf(" (%q)", note)
	}
	return out
}

// awaitsReviewStep reports whether records hold an emergency change's record but no step of
// its review: the closure gate then reads the review from the journal bucket.
func awaitsReviewStep(records []events.Record) bool {
	emergency := false
	for _, r := range records {
		if r.Data.IsReviewStep() {
			return false
		}
		emergency = emergency || r.Data.ChangeType == events.ChangeEmergency
	}
	return emergency
}

// storedReview reads the post-change review of a change from the journal bucket; nil when
// there is none.
func (j *journal) storedReview(ctx context.Context, changeID string) (*events.Review, error) {
	rec, _, err := readReview(ctx, j.kv, changeID)
	if errors.Is(err, errNoReview) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &rec.Review, nil
}
