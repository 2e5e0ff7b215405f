package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
)

// sealsReviewEvent reports whether a review step is recorded in a sealed evidence record of
// the change: the opening (with its deadline), every attestation and the overdue escalation.
// Reminders are only review records on the bus.
func sealsReviewEvent(e events.ReviewEvent) bool {
	return e == events.ReviewOpened || e == events.ReviewAttested || e == events.ReviewEscalate
}

// reviewStepTime is when the step a review snapshot reports happened, taken from the snapshot
// itself so a retried publication builds the same record.
func reviewStepTime(rv events.Review) time.Time {
	switch {
	case rv.Event == events.ReviewAttested && len(rv.Attestations) > 0:
		return rv.Attestations[len(rv.Attestations)-1].At.UTC()
	case rv.Event == events.ReviewEscalate && rv.EscalatedAt != nil:
		return rv.EscalatedAt.UTC()
	default:
		return rv.OpenedAt.UTC()
	}
}

// reviewEvidence is the evidence record of one review step of an emergency change: trigger
// review, no credentials, the review as it stood after the step. recordID is the id of the
// review record on the bus (review:<change>:<event>[:<n>]); it is the record's event id, so
// the record's id, evidence:<change>:<record id>, is fixed and a retry is de-duplicated.
func (r *reviews) reviewEvidence(recordID string, rv events.Review) events.Record {
	at := reviewStepTime(rv)
	snapshot := rv
	ev := events.Evidence{
		SchemaVersion: events.EvidenceSchemaVersion,
		ChangeID:      rv.ChangeID,
		EventID:       recordID,
		ChangeType:    events.ChangeEmergency,
		Trigger:       events.TriggerReview,
		Agent:         r.p.agent,
		Status:        events.StatusNoCredentials,
		StartedAt:     at,
		FinishedAt:    at,
		Credentials:   []events.CredentialEvidence{},
		Review:        &snapshot,
	}
	ev.Controls = events.ControlsFor(ev)
	return events.Record{
		SpecVersion:     events.SpecVersion,
		ID:              "evidence:" + rv.ChangeID + ":" + recordID,
		Source:          eventSource + "/" + r.p.agent.ID,
		Type:            events.TypeEvidence,
		Subject:         rv.ChangeID,
		Time:            at,
		DataContentType: "application/json",
		Data:            ev,
	}
}

// sealReviewStep publishes the sealed evidence record of a review step unless the evidence
// stream already holds a record with its id (published before a crash, or by another replica,
// possibly longer ago than the stream's duplicate window): a step is evidenced once.
func (r *reviews) sealReviewStep(ctx context.Context, recordID string, rv events.Review) error {
	if !sealsReviewEvent(rv.Event) {
		return nil
	}
	rec := r.reviewEvidence(recordID, rv)
	stored, err := ChangeRecords(ctx, r.p.js, r.p.sealer.stream, r.p.subjects, rv.ChangeID)
	if err != nil {
		return fmt.Errorf("read evidence of %s: %w", rv.ChangeID, err)
	}
	for _, s := range stored {
		if s.ID == rec.ID {
			return nil
		}
	}
	if _, err := r.p.publishEvidence(ctx, rec); err != nil {
		return fmt.Errorf("publish review evidence: %w", err)
	}
	return nil
}

// outcomeFor returns the review that started a clean-up change (trigger review, related to
// the emergency change), as it stands, so the clean-up's evidence says why it ran: rejected
// (by whom, with which note) or overdue (escalated when). It returns nil for any other change,
// and when the review cannot be read (the record then still names the emergency change in
// related_change_id).
func (r *reviews) outcomeFor(ctx context.Context, ch events.Change) *events.Review {
	if r == nil || ch.EffectiveTrigger() != events.TriggerReview || ch.RelatedChangeID == "" {
		return nil
	}
	rec, _, err := r.get(ctx, ch.RelatedChangeID)
	if err != nil {
		r.p.log.WithError(err).WithField(FieldChangeID, ch.ID).Warn("read the review behind a clean-up failed; its evidence names only the related change")
		return nil
	}
	return &rec.Review
}
