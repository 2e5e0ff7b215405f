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

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/failpoint"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// eventSource is the CloudEvents source of every record the agent publishes.
const eventSource = "rotation-agent"

// pipeline turns one change event into rotations and evidence:
// decode → journal check → rotate each credential → publish evidence → ack.
type pipeline struct {
	js         jetstream.JetStream
	journal    *journal
	registry   *rotators.Registry
	subjects   events.Subjects
	agent      events.AgentInfo
	redactor   *Redactor
	log        logrus.FieldLogger
	maxBytes   int
	maxDeliver int
	password   PasswordConfig
	retry      backoff
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
		p.reject(ctx, msg, meta, rej)
		return
	}
	log := p.log.WithFields(logrus.Fields{FieldChangeID: ev.Data.ID, FieldEventID: ev.ID, "delivery": meta.NumDelivered})
	delivery := deliveryCount(meta.NumDelivered)
	final := delivery >= p.maxDeliver

	env, err := p.reconcile(ctx, ev, log, final)
	if err != nil {
		delay := p.retry.delay(deliveryCount(meta.NumDelivered))
		log.WithError(err).WithField("retry_in", delay.String()).Warn("change not reconciled yet; will retry")
		_ = msg.NakWithDelay(delay)
		return
	}
	if err := p.publishEvidence(ctx, env); err != nil {
		log.WithError(err).Warn("publish evidence failed; will retry")
		_ = msg.NakWithDelay(p.retry.delay(deliveryCount(meta.NumDelivered)))
		return
	}
	if err := p.journal.storeEvidence(ctx, env); err != nil {
		log.WithError(err).Warn("record evidence in journal failed; the evidence was published")
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
	creds := make([]events.CredentialEvidence, 0, len(ev.Data.Credentials))
	for _, ref := range ev.Data.Credentials {
		clog := log.WithFields(logrus.Fields{FieldCredential: ref.ID(), FieldAction: ref.EffectiveAction()})
		ce, err := p.credential(ctx, ev, ref, clog, final)
		if err != nil {
			return events.Envelope[events.Evidence]{}, err
		}
		creds = append(creds, ce)
	}
	evidence := events.Evidence{
		SchemaVersion: events.EvidenceSchemaVersion,
		ChangeID:      ev.Data.ID,
		EventID:       ev.ID,
		ChangeType:    ev.Data.Type,
		Trigger:       events.TriggerEvent,
		Agent:         p.agent,
		Status:        events.OverallStatus(creds),
		StartedAt:     started,
		FinishedAt:    time.Now().UTC(),
		Credentials:   creds,
	}
	return events.Envelope[events.Evidence]{
		SpecVersion:     events.SpecVersion,
		ID:              "evidence:" + ev.Data.ID + ":" + ev.ID,
		Source:          eventSource + "/" + p.agent.ID,
		Type:            events.TypeEvidence,
		Subject:         ev.Data.ID,
		Time:            evidence.FinishedAt,
		DataContentType: "application/json",
		Data:            evidence,
	}, nil
}

// credential runs one credential through its rotator under the journal. A retryable failure is
// returned as an error (the change is retried); anything else ends in evidence.
func (p *pipeline) credential(ctx context.Context, ev *events.ChangeEvent, ref events.CredentialRef, log logrus.FieldLogger, final bool) (events.CredentialEvidence, error) {
	entry, rev, err := p.journal.entry(ctx, ev.Data.ID, ref.ID())
	if err != nil {
		return events.CredentialEvidence{}, err
	}
	if entry.Final && entry.Evidence != nil {
		return *entry.Evidence, nil
	}
	if rev == 0 {
		entry = journalEntry{ChangeID: ev.Data.ID, EventID: ev.ID, Credential: ref.ID()}
	}
	ce := events.CredentialEvidence{
		Credential: ref.ID(), Kind: ref.Kind, Mount: ref.Mount, Path: ref.Path, Fields: ref.Fields,
		Action: ref.EffectiveAction(), StartedAt: time.Now().UTC(),
	}
	var res rotators.Result
	var generated []string
	defer func() {
		for _, v := range generated {
			p.redactor.Forget(v)
		}
	}()
	rot, err := p.registry.Lookup(ref.Kind)
	if err == nil {
		req := rotators.Request{
			ChangeID:   ev.Data.ID,
			Credential: ref,
			Checkpoint: entry.Checkpoint,
			Record: func(ctx context.Context, cp rotators.Checkpoint) error {
				entry.Checkpoint = cp
				newRev, err := p.journal.put(ctx, entry, rev)
				if err != nil {
					return rotators.Retryable(err)
				}
				rev = newRev
				failpoint.Hit(failpoint.AfterJournal + cp.Step)
				return nil
			},
			Generate: func(string) (string, error) {
				v, err := rotators.GeneratePassword(p.password.Length, p.password.Charset)
				if err == nil {
					p.redactor.Add(v)
					generated = append(generated, v)
				}
				return v, err
			},
		}
		log.Info("rotating credential")
		res, err = rot.Rotate(ctx, req)
	}
	ce.FinishedAt = time.Now().UTC()
	ce.DurationMS = ce.FinishedAt.Sub(ce.StartedAt).Milliseconds()
	switch {
	case err == nil:
		ce.Outcome, ce.Before, ce.After, ce.Resumed = events.OutcomeRotated, res.Before, res.After, res.Resumed
		log.WithField("resumed", res.Resumed).Info("credential rotated")
	case rotators.IsRetryable(err) && !final:
		return events.CredentialEvidence{}, fmt.Errorf("%s: %w", ref.ID(), err)
	default:
		ce.Outcome, ce.Error = events.OutcomeFailed, p.redactor.String(err.Error())
		ce.Before, ce.After = entry.Checkpoint.Before, entry.Checkpoint.After
		log.WithError(err).Error("credential not reconciled")
	}
	entry.Final, entry.Evidence = true, &ce
	if _, err := p.journal.put(ctx, entry, rev); err != nil {
		return events.CredentialEvidence{}, err
	}
	return ce, nil
}

// publishEvidence publishes env on the change's evidence subject, de-duplicated by its id.
func (p *pipeline) publishEvidence(ctx context.Context, env events.Envelope[events.Evidence]) error {
	raw, err := json.Marshal(env)
	if err != nil {
		return err
	}
	_, err = p.js.Publish(ctx, p.subjects.Evidence(env.Data.ChangeID), raw, jetstream.WithMsgID(env.ID))
	return err
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
	if err := msg.TermWithReason(string(rej.ReasonCode)); err != nil && !errors.Is(err, context.Canceled) {
		log.WithError(err).Warn("terminate rejected message failed")
	}
	log.WithField("reason", rej.Reason).Warn("event rejected")
}
