package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/rotation-agent/rotation-agent/entitlements"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/clock"
	"github.com/rotation-agent/rotation-agent/internal/failpoint"
	"github.com/rotation-agent/rotation-agent/rotators"
	"github.com/rotation-agent/rotation-agent/schedule"
)

// maxOverlap keeps every overlap window well inside the journal's retention, so a retirement
// is never forgotten.
const maxOverlap = journalRetention / 2

// eventSource is the CloudEvents source of every record the agent publishes.
const eventSource = "rotation-agent"

// pipeline turns one change event into rotations and evidence:
// decode → journal check → rotate each credential → publish evidence → ack.
type pipeline struct {
	js         jetstream.JetStream
	journal    *journal
	registry   *rotators.Registry
	catalog    *catalog
	locks      *locks
	subjects   events.Subjects
	agent      events.AgentInfo
	redactor   *Redactor
	log        logrus.FieldLogger
	maxBytes   int
	maxDeliver int
	generator  rotators.Generator
	// defaultOverlap is the overlap window of credentials that do not set one.
	defaultOverlap time.Duration
	retry          backoff
	// vaultWait spaces the attempts of a change held while Vault is unavailable.
	vaultWait backoff
	// lockWait spaces the attempts of a change waiting for another worker's credential lock.
	lockWait backoff
	// metrics may be nil (tests that build a pipeline by hand); its methods then do nothing.
	metrics *Metrics
	// clock decides maintenance windows and review deadlines (a fake one in tests).
	clock clock.Clock
	// reviews keeps the post-change reviews of emergency changes; nil when not running.
	reviews *reviews
	// sealer chains, signs and publishes evidence records.
	sealer *sealer
	// entitlements compares the identities of a change with their approved access.
	entitlements *entitlements.Checker
	// sidecar is sidecar mode; nil for the central agent (see sidecar.go).
	sidecar *sidecar
}

// deliveryCount converts JetStream's delivery counter, saturating instead of overflowing.
func deliveryCount(n uint64) int {
	if n > math.MaxInt32 {
		return math.MaxInt32
	}
	return int(n)
}

// handle processes one delivered message and settles it: ack when evidence is published, term
// when the message is refused, nak with a delay when the work can succeed later.
func (p *pipeline) handle(ctx context.Context, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		p.log.WithError(err).Error("message without jetstream metadata; terminating it")
		_ = msg.Term()
		return
	}
	ev, rej := events.DecodeChangeEvent(msg.Data(), p.maxBytes)
	if rej != nil {
		p.metrics.consumed("invalid")
		p.reject(ctx, msg, meta, rej)
		return
	}
	p.metrics.consumed(ev.Type)
	log := p.log.WithFields(logrus.Fields{FieldChangeID: ev.Data.ID, FieldEventID: ev.ID, "delivery": meta.NumDelivered})
	delivery := deliveryCount(meta.NumDelivered)
	if ev.Type == events.TypeChangePlanned {
		p.assess(ctx, msg, ev, log, delivery)
		return
	}
	final := delivery >= p.maxDeliver

	env, err := p.reconcile(ctx, ev, log, final)
	if err == nil && p.sidecar != nil && len(env.Data.Credentials) == 0 {
		_ = msg.DoubleAck(ctx) // none of this application's credentials: nothing to report
		return
	}
	for attempt := 1; err != nil && (rotators.IsUnavailable(err) || errors.Is(err, errLocked)); attempt++ {
		// Vault is sealed, overloaded or unreachable, or another worker holds a credential of
		// the change: hold the change (the consumer keeps it in progress) and try again, rather
		// than spending its deliveries on someone else's work or on an outage. A change holds
		// at most one credential lock at a time, so two waiting changes cannot deadlock.
		delay := p.vaultWait.delay(attempt)
		msg := "vault unavailable; holding the change until it answers"
		if errors.Is(err, errLocked) {
			delay, msg = p.lockWait.delay(1), "credential is busy; holding the change until its lock is free"
		}
		log.WithError(err).WithFields(logrus.Fields{"retry_in": delay.String(), "attempt": attempt}).Warn(msg)
		if !sleepCtx(ctx, delay) {
			break
		}
		env, err = p.reconcile(ctx, ev, log, final)
	}
	if err != nil {
		delay := p.retry.delay(delivery)
		log.WithError(err).WithField("retry_in", delay.String()).Warn("change not reconciled yet; will retry")
		_ = msg.NakWithDelay(delay)
		return
	}
	if env, err = p.publishEvidence(ctx, env); err != nil {
		log.WithError(err).Warn("publish evidence failed; will retry")
		_ = msg.NakWithDelay(p.retry.delay(delivery))
		return
	}
	if err := p.journal.storeEvidence(ctx, env); err != nil {
		log.WithError(err).Warn("record evidence in journal failed; the evidence was published")
	}
	if err := p.reviews.openFor(ctx, ev, env); err != nil {
		log.WithError(err).Warn("open post-change review failed; will retry")
		_ = msg.NakWithDelay(p.retry.delay(delivery))
		return
	}
	if err := msg.DoubleAck(ctx); err != nil {
		log.WithError(err).Warn("ack failed; a redelivery will re-publish the same evidence")
		return
	}
	log.WithField("status", env.Data.Status).Info("change reconciled; evidence published")
}

// reconcile acts on every credential of the change and returns the evidence envelope. It
// returns an error only when the whole change should be retried later; with final set (the
// last allowed delivery) retryable failures become failed outcomes instead.
func (p *pipeline) reconcile(ctx context.Context, ev *events.ChangeEvent, log logrus.FieldLogger, final bool) (events.Envelope[events.Evidence], error) {
	if prev, err := p.journal.finalEvidence(ctx, ev.Data.ID); err != nil {
		return events.Envelope[events.Evidence]{}, err
	} else if prev != nil {
		log.Info("change already reconciled; re-publishing its evidence")
		return *prev, nil
	}
	started := time.Now().UTC()
	discovered := p.catalog.discoveryReport()
	matches := p.sidecar.scope(p.catalog.resolve(ev.Data), log)
	creds := make([]events.CredentialEvidence, 0, len(matches))
	for i, m := range matches {
		ref := m.Credential
		clog := log.WithFields(logrus.Fields{FieldCredential: ref.ID(), FieldAction: ref.EffectiveAction(), "matched_by": m.Reason, "source": m.Source})
		var ce events.CredentialEvidence
		if err := p.catalog.authorise(ref); err != nil {
			ce = p.refused(ref, err, clog)
			p.metrics.credential(p.registry, ref.Kind, ce, nil)
		} else if ce, err = p.credential(ctx, ev, ref, m.Window, clog, final); err != nil {
			return events.Envelope[events.Evidence]{}, err
		}
		ce.MatchedBy, ce.Source = m.Reason, m.Source
		creds = append(creds, ce)
		p.progress(ev.Data.ID, ce, i+1, len(matches))
	}
	ents, err := p.checkEntitlements(ctx, ev, matches, log, final)
	if err != nil {
		return events.Envelope[events.Evidence]{}, err
	}
	env := p.evidenceEnvelope(ev.Data.ID, ev.ID, ev.Data.Type, ev.Data.EvidenceTrigger(), started, creds)
	env.Data.RelatedChangeID = ev.Data.RelatedChangeID
	env.Data.Discovery = discovered
	env.Data.Review = p.reviews.outcomeFor(ctx, ev.Data)
	withEntitlements(&env, ents)
	return env, nil
}

// evidenceEnvelope builds the evidence record of a change; its id (and Nats-Msg-Id) is derived
// from the change and the event id, so a re-publish is de-duplicated.
func (p *pipeline) evidenceEnvelope(changeID, eventID string, changeType events.ChangeType, trigger events.Trigger, started time.Time, creds []events.CredentialEvidence) events.Envelope[events.Evidence] {
	evidence := events.Evidence{
		SchemaVersion: events.EvidenceSchemaVersion,
		ChangeID:      changeID,
		EventID:       eventID,
		ChangeType:    changeType,
		Trigger:       trigger,
		Agent:         p.agent,
		Status:        events.OverallStatus(creds),
		StartedAt:     started,
		FinishedAt:    time.Now().UTC(),
		Credentials:   creds,
	}
	evidence.Controls = events.ControlsFor(evidence)
	return events.Envelope[events.Evidence]{
		SpecVersion:     events.SpecVersion,
		ID:              "evidence:" + changeID + ":" + eventID + p.sidecar.evidenceScope(),
		Source:          eventSource + "/" + p.agent.ID,
		Type:            events.TypeEvidence,
		Subject:         changeID,
		Time:            evidence.FinishedAt,
		DataContentType: "application/json",
		Data:            evidence,
	}
}

// credential runs one credential through its rotator's steps under the journal. A retryable
// failure is returned as an error (the change is retried); anything else ends in evidence.
func (p *pipeline) credential(ctx context.Context, ev *events.ChangeEvent, ref events.CredentialRef, window *schedule.Window, log logrus.FieldLogger, final bool) (events.CredentialEvidence, error) {
	held, release, err := p.locks.acquire(ctx, ref.Key(), ev.Data.ID)
	if err != nil {
		return events.CredentialEvidence{}, rotators.Retryable(fmt.Errorf("%s: %w", ref.ID(), err))
	}
	defer release()
	ce, err := p.credentialLocked(held, ev, ref, window, log, final)
	if cause := context.Cause(held); err != nil && errors.Is(cause, errLockLost) {
		log.WithError(cause).Warn("credential lock lost; stopping before the next step")
		return ce, rotators.Retryable(fmt.Errorf("%s: %w", ref.ID(), cause))
	}
	return ce, err
}

// credentialLocked is credential's work once the lock is held; ctx ends if the lock is lost.
func (p *pipeline) credentialLocked(ctx context.Context, ev *events.ChangeEvent, ref events.CredentialRef, window *schedule.Window, log logrus.FieldLogger, final bool) (events.CredentialEvidence, error) {
	// Read under the lock: the holder before us may have finished this very entry.
	entry, rev, err := p.journal.entry(ctx, ev.Data.ID, ref.Key())
	if err != nil {
		return events.CredentialEvidence{}, err
	}
	if entry.Evidence != nil && (entry.Final || entry.RetirePending) {
		if entry.RetirePending {
			// The index may be missing if the agent stopped right after recording the entry.
			if err := p.journal.scheduleRetire(ctx, entry); err != nil {
				return events.CredentialEvidence{}, err
			}
		}
		// Likewise the index of a deferred credential (writing it again is harmless).
		if err := p.journal.scheduleDeferred(ctx, entry); err != nil {
			return events.CredentialEvidence{}, err
		}
		return *entry.Evidence, nil
	}
	if rev == 0 {
		if until, wait := p.deferral(ev.Data, window); wait {
			ce, err := p.deferCredential(ctx, ev, ref, until, log)
			p.metrics.credential(p.registry, ref.Kind, ce, err)
			return ce, err
		}
		entry = journalEntry{ChangeID: ev.Data.ID, EventID: ev.ID, ChangeType: ev.Data.Type, Credential: ref.Key(), Ref: ref}
	}
	ce, err := p.drive(ctx, &entry, &rev, log, final)
	p.metrics.credential(p.registry, ref.Kind, ce, err)
	if err != nil {
		return events.CredentialEvidence{}, err
	}
	return ce, nil
}

// drive runs the rotator's remaining steps for a journal entry and records the result in it.
// It returns an error only for a retryable failure that is not on the last delivery.
func (p *pipeline) drive(ctx context.Context, entry *journalEntry, rev *uint64, log logrus.FieldLogger, final bool) (events.CredentialEvidence, error) {
	rot, lookupErr := p.registry.Lookup(entry.Ref.Kind)
	if lookupErr == nil {
		entry.Ref = rotators.WithDefaultAction(rot, entry.Ref)
		rot = p.sidecar.wrap(rot, entry.Ref)
	}
	ref := entry.Ref
	ce := events.CredentialEvidence{
		Credential: ref.ID(), Kind: ref.Kind, Mount: ref.Mount, Path: ref.Path, Fields: ref.Fields,
		Action: ref.EffectiveAction(), StartedAt: time.Now().UTC(),
	}
	var out rotators.Outcome
	err := lookupErr
	if err == nil {
		var overlap time.Duration
		overlap, err = overlapOf(ref, p.defaultOverlap)
		if err == nil {
			log.WithField("step", entry.State.Done).Info("rotating credential")
			req, forget := p.request(entry, rev)
			defer forget() // after the evidence's error text has been redacted
			out, err = rotators.Drive(ctx, rot, req, &entry.State, overlap)
		}
	}
	st := entry.State
	ce.FinishedAt = time.Now().UTC()
	ce.DurationMS = ce.FinishedAt.Sub(ce.StartedAt).Milliseconds()
	ce.Before, ce.After, ce.Verified, ce.Resumed = st.Before, st.After, st.Verified, out.Resumed
	switch {
	case err == nil:
		ce.Outcome = events.OutcomeRotated
		if ref.EffectiveAction() == events.ActionRevoke {
			ce.Outcome = events.OutcomeRevoked
		}
		if !st.RetireAt.IsZero() {
			at := st.RetireAt
			ce.RetireAt = &at
		}
		if out.RetirePending {
			ce.OldCredential = "retire_pending"
		} else {
			at := st.RetiredAt
			ce.OldCredential, ce.RetiredAt = "retired", &at
		}
		log.WithFields(logrus.Fields{"resumed": out.Resumed, "old_credential": ce.OldCredential}).Info("credential reconciled")
	case rotators.IsRetryable(err) && (!final || rotators.IsUnavailable(err)):
		// An outage is waited out even on the last delivery: it says nothing about the credential.
		return events.CredentialEvidence{}, fmt.Errorf("%s: %w", ref.ID(), err)
	case errors.Is(err, rotators.ErrNeedsReconcile):
		ce.Outcome, ce.Error = events.OutcomeNeedsReconcile, p.redactor.String(err.Error())
		log.WithError(err).Error("credential needs an operator to reconcile it")
	default:
		ce.Outcome, ce.Error = events.OutcomeFailed, p.redactor.String(err.Error())
		log.WithError(err).Error("credential not reconciled")
	}
	p.sidecar.annotate(&ce, ref, entry.State)
	entry.Evidence = &ce
	entry.RetirePending = err == nil && out.RetirePending
	entry.Final = !entry.RetirePending
	newRev, err := p.journal.put(ctx, *entry, *rev)
	if err != nil {
		return events.CredentialEvidence{}, err
	}
	*rev = newRev
	if entry.RetirePending {
		if err := p.journal.scheduleRetire(ctx, *entry); err != nil {
			return events.CredentialEvidence{}, err
		}
	}
	return ce, nil
}

// request builds the rotator request for a journal entry; Save advances the entry with
// compare-and-set, which fences a stale worker.
func (p *pipeline) request(entry *journalEntry, rev *uint64) (rotators.Request, func()) {
	generate := p.generator.For(entry.Ref)
	var generated []string
	forget := func() {
		for _, v := range generated {
			p.redactor.Forget(v)
		}
	}
	return rotators.Request{
		ChangeID:   entry.ChangeID,
		Credential: entry.Ref,
		Now:        time.Now,
		Save: func(ctx context.Context, st *rotators.State) error {
			st.At = time.Now().UTC()
			entry.State = *st
			newRev, err := p.journal.put(ctx, *entry, *rev)
			if err != nil {
				return err
			}
			*rev = newRev
			if st.Started != "" {
				failpoint.Hit(failpoint.AfterJournal + string(st.Started))
			}
			return nil
		},
		Generate: func(ctx context.Context) (string, error) {
			v, err := generate(ctx)
			if err == nil {
				// Known while the agent holds it, so no log line can carry it; forgotten when
				// the drive ends (the value then lives only in Vault), so memory stays bounded.
				p.redactor.Add(v)
				generated = append(generated, v)
			}
			return v, err
		},
	}, forget
}

// overlapOf is how long the old credential stays valid after the new one is promoted: the
// credential's "overlap" option, or def, the agent's default.
func overlapOf(ref events.CredentialRef, def time.Duration) (time.Duration, error) {
	if ref.EffectiveAction() == events.ActionRevoke {
		return 0, nil // a revocation has no old credential to keep alive
	}
	v, ok := ref.Options["overlap"]
	if !ok {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > maxOverlap {
		return 0, rotators.Permanent(fmt.Errorf("option overlap=%q: want a duration such as 15m, at most %s", v, maxOverlap))
	}
	return d, nil
}

// assess publishes the identity impact report of a planned change; nothing is changed.
func (p *pipeline) assess(ctx context.Context, msg jetstream.Msg, ev *events.ChangeEvent, log logrus.FieldLogger, delivery int) {
	impact := impactOf(ctx, p.registry, p.catalog, ev, p.defaultOverlap, p.agent, p.redactor)
	env := events.Envelope[events.Impact]{
		SpecVersion: events.SpecVersion, ID: "impact:" + ev.Data.ID + ":" + ev.ID, Source: eventSource + "/" + p.agent.ID,
		Type: events.TypeImpact, Subject: ev.Data.ID, Time: impact.AssessedAt, DataContentType: "application/json", Data: impact,
	}
	raw, err := json.Marshal(env)
	if err == nil {
		_, err = p.js.Publish(ctx, p.subjects.Impact(ev.Data.ID), raw, jetstream.WithMsgID(env.ID))
	}
	if err != nil {
		log.WithError(err).Warn("publish impact report failed; will retry")
		_ = msg.NakWithDelay(p.retry.delay(delivery))
		return
	}
	if err := msg.DoubleAck(ctx); err != nil {
		log.WithError(err).Warn("ack failed; a redelivery will publish the same report")
		return
	}
	log.WithFields(logrus.Fields{"impact": impact.Level, "credentials": len(impact.Credentials)}).Info("impact of planned change published")
}

// publishEvidence chains, signs and publishes env on the change's evidence subject,
// de-duplicated by its id, and returns the record as published.
func (p *pipeline) publishEvidence(ctx context.Context, env events.Envelope[events.Evidence]) (events.Envelope[events.Evidence], error) {
	return p.sealer.publish(ctx, env)
}

// reject publishes why a message was refused and terminates it so it is not redelivered.
// If the rejection cannot be published the message is kept for a later attempt.
func (p *pipeline) reject(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, rej *events.Rejection) {
	sum := sha256.Sum256(msg.Data())
	rej.Subject = msg.Subject()
	rej.StreamSequence = meta.Sequence.Stream
	rej.PayloadBytes = len(msg.Data())
	rej.PayloadSHA256 = hex.EncodeToString(sum[:])
	rej.ReceivedAt = time.Now().UTC()
	rej.Agent = p.agent
	rej.Reason = p.redactor.String(rej.Reason)
	env := events.Envelope[events.Rejection]{
		SpecVersion:     events.SpecVersion,
		ID:              fmt.Sprintf("rejection:%s:%d", meta.Stream, meta.Sequence.Stream),
		Source:          eventSource + "/" + p.agent.ID,
		Type:            events.TypeRejection,
		Time:            rej.ReceivedAt,
		DataContentType: "application/json",
		Data:            *rej,
	}
	log := p.log.WithFields(logrus.Fields{"reason_code": rej.ReasonCode, "stream_sequence": rej.StreamSequence, FieldEventID: rej.EventID})
	raw, err := json.Marshal(env)
	if err == nil {
		_, err = p.js.Publish(ctx, p.subjects.Rejections(), raw, jetstream.WithMsgID(env.ID))
	}
	if err != nil {
		log.WithError(err).Warn("publish rejection failed; will retry")
		_ = msg.NakWithDelay(p.retry.delay(deliveryCount(meta.NumDelivered)))
		return
	}
	p.metrics.rejected(rej.ReasonCode)
	if err := msg.TermWithReason(string(rej.ReasonCode)); err != nil && !errors.Is(err, context.Canceled) {
		log.WithError(err).Warn("terminate rejected message failed")
	}
	log.WithField("reason", rej.Reason).Warn("event rejected")
}
