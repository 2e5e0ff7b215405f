package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/schedule"
)

// deferIndex is the record under defer.<...> that lets the scheduler run a deferred
// credential when its window opens.
type deferIndex struct {
	ChangeID   string               `json:"change_id"`
	ChangeType events.ChangeType    `json:"change_type"`
	Credential string               `json:"credential"`
	Ref        events.CredentialRef `json:"ref"`
	RunAt      time.Time            `json:"run_at"`
}

func deferKey(changeID, credential string) string {
	return "defer." + hashToken(changeID) + "." + hashToken(credential)
}

// deferredChangeID is the id of the change that runs a deferred credential.
func deferredChangeID(changeID, credential string) string {
	return "deferred:" + changeID + ":" + hashToken(credential)[:16]
}

// deferral says whether a credential must wait for its window, and until when. Emergency
// changes and review clean-ups never wait. A window that never opens again yields a zero time.
func (p *pipeline) deferral(ch events.Change, w *schedule.Window) (time.Time, bool) {
	if ch.Type == events.ChangeEmergency || ch.EffectiveTrigger() == events.TriggerReview || w.IsZero() {
		return time.Time{}, false
	}
	now := p.clock.Now()
	if w.Allowed(now) {
		return time.Time{}, false
	}
	next, _ := w.NextAllowed(now)
	return next.UTC(), true
}

// deferCredential records that a credential waits for its window: a final journal entry with
// the deferred evidence (so a redelivery answers the same) and an index the scheduler reads.
func (p *pipeline) deferCredential(ctx context.Context, ev *events.ChangeEvent, ref events.CredentialRef, until time.Time, log logrus.FieldLogger) (events.CredentialEvidence, error) {
	now := time.Now().UTC()
	ce := events.CredentialEvidence{
		Credential: ref.ID(), Kind: ref.Kind, Mount: ref.Mount, Path: ref.Path, Fields: ref.Fields,
		Action: ref.EffectiveAction(), StartedAt: now, FinishedAt: now,
	}
	if until.IsZero() {
		ce.Outcome, ce.Error = events.OutcomeFailed, "outside its maintenance window and no window opens again"
	} else {
		ce.Outcome, ce.DeferredUntil = events.OutcomeDeferred, &until
	}
	entry := journalEntry{ChangeID: ev.Data.ID, EventID: ev.ID, ChangeType: ev.Data.Type, Credential: ref.Key(), Ref: ref, Final: true, Evidence: &ce}
	if _, err := p.journal.put(ctx, entry, 0); err != nil {
		return events.CredentialEvidence{}, err
	}
	if ce.Outcome == events.OutcomeDeferred {
		if err := p.journal.scheduleDeferred(ctx, entry); err != nil {
			return events.CredentialEvidence{}, err
		}
		log.WithField("deferred_until", until.Format(time.RFC3339)).Info("credential outside its maintenance window; deferred")
	}
	return ce, nil
}

// scheduleDeferred indexes a deferred journal entry; writing it again is harmless.
func (j *journal) scheduleDeferred(ctx context.Context, e journalEntry) error {
	if e.Evidence == nil || e.Evidence.DeferredUntil == nil {
		return nil
	}
	raw, err := json.Marshal(deferIndex{ChangeID: e.ChangeID, ChangeType: e.ChangeType, Credential: e.Credential, Ref: e.Ref, RunAt: *e.Evidence.DeferredUntil})
	if err != nil {
		return err
	}
	if _, err := j.kv.Put(ctx, deferKey(e.ChangeID, e.Credential), raw); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	return nil
}

// runDeferred publishes the change that runs each deferred credential whose time has come,
// then drops its index. The change id is derived from the deferral, so replicas racing here
// publish one change.
func (p *pipeline) runDeferred(ctx context.Context) {
	recs, _, keys, err := listRecords[deferIndex](ctx, p.journal.kv, "defer.>")
	if err != nil {
		p.log.WithError(err).Warn("list deferred credentials failed")
	}
	now := p.clock.Now()
	for i, idx := range recs {
		if idx.RunAt.After(now) {
			continue
		}
		ref := idx.Ref
		ch := events.Change{
			ID: deferredChangeID(idx.ChangeID, idx.Credential), Type: idx.ChangeType, Trigger: events.TriggerSchedule,
			RelatedChangeID: idx.ChangeID, Summary: "deferred credential of change " + idx.ChangeID + ": its maintenance window opened",
			Credentials: []events.CredentialRef{ref},
		}
		log := p.log.WithFields(logrus.Fields{FieldChangeID: ch.ID, FieldCredential: ref.ID(), "related_change_id": idx.ChangeID})
		if err := p.publishWork(ctx, ch); err != nil {
			log.WithError(err).Warn("publish deferred credential failed; will retry")
			continue
		}
		if err := p.journal.kv.Delete(ctx, keys[i]); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			log.WithError(err).Warn("clear deferral index failed")
		}
		log.Info("maintenance window open; deferred credential queued")
	}
}
