package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/failpoint"
	"github.com/rotation-agent/rotation-agent/schedule"
)

// errNoReview means no post-change review exists for the change named.
var errNoReview = errors.New("no post-change review for this change")

// reviewRecord is the durable state of a post-change review, kept in the journal bucket.
// Pending* is an outbox: a transition is first recorded (compare-and-set, so one replica
// wins it), then published; whoever sees a pending publication (the winner at once, any
// replica's sweep after a crash) publishes it with its fixed id and clears it.
type reviewRecord struct {
	Review        events.Review          `json:"review"`
	RemindersSent int                    `json:"reminders_sent"`
	Granted       []events.CredentialRef `json:"granted_refs,omitempty"`
	// PendingRecord is the id of a review record still to publish.
	PendingRecord string `json:"pending_record,omitempty"`
	// PendingCleanup means the clean-up change is still to publish.
	PendingCleanup bool `json:"pending_cleanup,omitempty"`
}

func reviewKey(changeID string) string { return "review." + hashToken(changeID) }

// cleanupChangeID is the change the clean-up of a review runs as.
func cleanupChangeID(changeID string) string { return "review:" + changeID }

// reviews keeps the post-change reviews of emergency changes.
type reviews struct {
	p         *pipeline
	kv        jetstream.KeyValue
	cfg       ReviewConfig
	deadlines map[string]time.Duration
	reminders []time.Duration
}

// openFor opens the review of an emergency change once its evidence is published (a manual
// emergency rotation too). Opening again is harmless. A nil receiver does nothing.
func (r *reviews) openFor(ctx context.Context, ev *events.ChangeEvent, env events.Envelope[events.Evidence]) error {
	if r == nil || ev.Data.Type != events.ChangeEmergency {
		return nil
	}
	if t := ev.Data.EffectiveTrigger(); t != events.TriggerEvent && t != events.TriggerManual {
		return nil
	}
	now := r.p.clock.Now().UTC()
	granted := make([]string, 0, len(ev.Data.Granted))
	for _, g := range ev.Data.Granted {
		granted = append(granted, g.ID())
	}
	rec := reviewRecord{
		Review: events.Review{
			ChangeID: ev.Data.ID, Status: events.ReviewOpen, Event: events.ReviewOpened, OpenedAt: now,
			Deadline:     now.Add(schedule.DeadlineFor(ev.Data.Targets.Environments, r.deadlines, r.cfg.Deadline)),
			Environments: ev.Data.Targets.Environments, Granted: granted, Agent: r.p.agent,
		},
		Granted:       ev.Data.Granted,
		PendingRecord: "review:" + ev.Data.ID + ":opened",
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if _, err := r.kv.Create(ctx, reviewKey(ev.Data.ID), raw); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("write review: %w", err)
	}
	rec, rev, err := r.get(ctx, ev.Data.ID)
	if err != nil {
		return err
	}
	return r.flush(ctx, rec, rev)
}

// get reads the review of a change and its revision; errNoReview when there is none.
func (r *reviews) get(ctx context.Context, changeID string) (reviewRecord, uint64, error) {
	return readReview(ctx, r.kv, changeID)
}

// readReview reads the review record of a change and its revision from the journal bucket
// kv; errNoReview when there is none.
func readReview(ctx context.Context, kv jetstream.KeyValue, changeID string) (reviewRecord, uint64, error) {
	var rec reviewRecord
	kve, err := kv.Get(ctx, reviewKey(changeID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return reviewRecord{}, 0, fmt.Errorf("%w: %s", errNoReview, changeID)
	}
	if err != nil {
		return reviewRecord{}, 0, fmt.Errorf("read review: %w", err)
	}
	if err := json.Unmarshal(kve.Value(), &rec); err != nil {
		return reviewRecord{}, 0, fmt.Errorf("decode review of %s: %w", changeID, err)
	}
	if rec.Review.ChangeID != changeID { // another change whose id hashes alike
		return reviewRecord{}, 0, fmt.Errorf("%w: %s", errNoReview, changeID)
	}
	return rec, kve.Revision(), nil
}

// update writes rec if the stored revision is still rev.
func (r *reviews) update(ctx context.Context, rec reviewRecord, rev uint64) (uint64, error) {
	raw, err := json.Marshal(rec)
	if err != nil {
		return 0, err
	}
	newRev, err := r.kv.Update(ctx, reviewKey(rec.Review.ChangeID), raw, rev)
	if isWrongSequence(err) {
		return 0, fmt.Errorf("%w: review %s", errStaleJournal, rec.Review.ChangeID)
	}
	if err != nil {
		return 0, fmt.Errorf("write review: %w", err)
	}
	return newRev, nil
}

// flush publishes what rec's outbox holds and clears it.
func (r *reviews) flush(ctx context.Context, rec reviewRecord, rev uint64) error {
	if rec.PendingRecord == "" && !rec.PendingCleanup {
		return nil
	}
	if rec.PendingRecord != "" {
		if err := r.publishRecord(ctx, rec.PendingRecord, rec.Review); err != nil {
			return err
		}
	}
	if rec.PendingCleanup {
		if err := r.p.publishWork(ctx, r.cleanupChange(rec)); err != nil {
			return err
		}
	}
	// The step's sealed evidence comes last, so a signer that is down does not hold up the
	// clean-up; a retry publishes the record and the clean-up again under their fixed ids.
	if rec.PendingRecord != "" {
		if err := r.sealReviewStep(ctx, rec.PendingRecord, rec.Review); err != nil {
			return err
		}
	}
	rec.PendingRecord, rec.PendingCleanup = "", false
	_, err := r.update(ctx, rec, rev)
	if errors.Is(err, errStaleJournal) {
		return nil // another replica flushed it or moved on; the ids de-duplicate
	}
	return err
}

func (r *reviews) publishRecord(ctx context.Context, id string, review events.Review) error {
	env := events.Envelope[events.Review]{
		SpecVersion: events.SpecVersion, ID: id, Source: eventSource + "/" + r.p.agent.ID, Type: events.TypeReview,
		Subject: review.ChangeID, Time: r.p.clock.Now().UTC(), DataContentType: "application/json", Data: review,
	}
	raw, err := json.Marshal(env)
	if err != nil {
		return err
	}
	if _, err := r.p.js.Publish(ctx, r.p.subjects.Review(review.ChangeID), raw, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("publish review record: %w", err)
	}
	return nil
}

// cleanupChange is the change that revokes (or, for kinds that cannot revoke, rotates) what
// the emergency change granted. It runs at once, whatever the credentials' windows.
func (r *reviews) cleanupChange(rec reviewRecord) events.Change {
	return events.Change{
		ID: cleanupChangeID(rec.Review.ChangeID), Type: events.ChangeNormal, Trigger: events.TriggerReview,
		RelatedChangeID: rec.Review.ChangeID, Category: "review-" + string(rec.Review.Status),
		Summary:     fmt.Sprintf("clean-up of emergency change %s: review %s", rec.Review.ChangeID, rec.Review.Status),
		Credentials: rec.Granted,
	}
}

// startCleanup marks the clean-up of rec due, once, when the configured action asks for it.
func (r *reviews) startCleanup(rec *reviewRecord) {
	if r.cfg.OverdueAction != OverdueRevokeGranted || len(rec.Granted) == 0 || rec.Review.CleanupChangeID != "" {
		return
	}
	rec.Review.CleanupChangeID = cleanupChangeID(rec.Review.ChangeID)
	rec.PendingCleanup = true
}

// attest records a reviewer's verdict. A rejection starts the clean-up.
func (r *reviews) attest(ctx context.Context, req events.AttestRequest) (events.Review, error) {
	for range 5 {
		rec, rev, err := r.get(ctx, req.ChangeID)
		if err != nil {
			return events.Review{}, err
		}
		if s := rec.Review.Status; s == events.ReviewApproved || s == events.ReviewRejected {
			return rec.Review, fmt.Errorf("review of %s is already %s", req.ChangeID, s)
		}
		if rec.PendingRecord != "" || rec.PendingCleanup {
			// Publish the previous step (its record and evidence) before this one replaces it.
			if err := r.flush(ctx, rec, rev); err != nil {
				return events.Review{}, fmt.Errorf("publish the previous step of the review of %s: %w", req.ChangeID, err)
			}
			continue
		}
		rec.Review.Attestations = append(rec.Review.Attestations, events.Attestation{By: req.By, Decision: req.Decision, Note: req.Note, At: r.p.clock.Now().UTC()})
		rec.Review.Event = events.ReviewAttested
		rec.Review.Status = events.ReviewApproved
		if req.Decision == events.DecisionReject {
			rec.Review.Status = events.ReviewRejected
			r.startCleanup(&rec)
		}
		rec.PendingRecord = fmt.Sprintf("review:%s:attested:%d", req.ChangeID, len(rec.Review.Attestations))
		newRev, err := r.update(ctx, rec, rev)
		if errors.Is(err, errStaleJournal) {
			continue
		}
		if err != nil {
			return events.Review{}, err
		}
		failpoint.Hit(failpoint.AfterReviewRecorded)
		r.p.log.WithFields(logrus.Fields{FieldChangeID: req.ChangeID, "decision": req.Decision, "by": req.By}).Info("post-change review attested")
		if err := r.flush(ctx, rec, newRev); err != nil {
			r.p.log.WithError(err).WithField(FieldChangeID, req.ChangeID).Warn("publish attestation failed; the sweep retries it")
		}
		return rec.Review, nil
	}
	return events.Review{}, fmt.Errorf("review of %s changed too often; try again", req.ChangeID)
}

// list returns every review, open ones first, then by deadline.
func (r *reviews) list(ctx context.Context) ([]events.Review, error) {
	recs, _, _, err := listRecords[reviewRecord](ctx, r.kv, "review.>")
	out := make([]events.Review, 0, len(recs))
	for _, rec := range recs {
		out = append(out, rec.Review)
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i].Status == events.ReviewOpen) != (out[j].Status == events.ReviewOpen) {
			return out[i].Status == events.ReviewOpen
		}
		return out[i].Deadline.Before(out[j].Deadline)
	})
	return out, err
}

// counts returns how many reviews wait for an attestation before their deadline (open) and
// how many passed it without one (overdue), for the metrics.
func (r *reviews) counts(ctx context.Context) (open, overdue int, err error) {
	all, err := r.list(ctx)
	open, overdue = reviewCounts(all, r.p.clock.Now())
	return open, overdue, err
}

// reviewCounts counts the open reviews and the overdue ones (escalated, or past their deadline
// before the sweep got to them) at now.
func reviewCounts(all []events.Review, now time.Time) (open, overdue int) {
	for _, rv := range all {
		switch {
		case rv.Status == events.ReviewOverdue, rv.Status == events.ReviewOpen && !now.Before(rv.Deadline):
			overdue++
		case rv.Status == events.ReviewOpen:
			open++
		}
	}
	return open, overdue
}

// sweep publishes due reminders and escalations and finishes interrupted publications. Every
// replica runs it; the compare-and-set on each record lets one act on each step.
func (r *reviews) sweep(ctx context.Context) {
	recs, revs, _, err := listRecords[reviewRecord](ctx, r.kv, "review.>")
	if err != nil {
		r.p.log.WithError(err).Warn("list reviews failed")
	}
	now := r.p.clock.Now()
	for i, rec := range recs {
		log := r.p.log.WithField(FieldChangeID, rec.Review.ChangeID)
		rev := revs[i]
		if rec.PendingRecord == "" && !rec.PendingCleanup && rec.Review.Status == events.ReviewOpen {
			step, sent := schedule.NextReviewStep(rec.Review.Deadline, r.reminders, rec.RemindersSent, now)
			switch step {
			case schedule.StepNone:
				continue
			case schedule.StepRemind:
				rec.RemindersSent, rec.Review.Event = sent, events.ReviewReminder
				rec.PendingRecord = fmt.Sprintf("review:%s:reminder:%d", rec.Review.ChangeID, sent)
			case schedule.StepOverdue:
				escalated := now.UTC()
				rec.Review.Status, rec.Review.Event, rec.Review.EscalatedAt = events.ReviewOverdue, events.ReviewEscalate, &escalated
				rec.PendingRecord = "review:" + rec.Review.ChangeID + ":overdue"
				r.startCleanup(&rec)
			}
			newRev, err := r.update(ctx, rec, rev)
			if errors.Is(err, errStaleJournal) {
				continue // another replica acted on this step
			}
			if err != nil {
				log.WithError(err).Warn("update review failed")
				continue
			}
			rev = newRev
			failpoint.Hit(failpoint.AfterReviewRecorded)
			log.WithFields(logrus.Fields{"event": rec.Review.Event, "deadline": rec.Review.Deadline.Format(time.RFC3339)}).Warn("post-change review needs attention")
		}
		if err := r.flush(ctx, rec, rev); err != nil {
			log.WithError(err).Warn("publish review record failed; will retry")
		}
	}
}
