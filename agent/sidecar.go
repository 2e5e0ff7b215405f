package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/rotation-agent/rotation-agent/delivery"
	"github.com/rotation-agent/rotation-agent/discovery"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/failpoint"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// Journal notes of a sidecar delivery. They are not kept across a fresh round: a fresh value
// is delivered again.
const (
	noteDeliveryToken       = "delivery_token"
	noteDeliveryWrittenAt   = "delivery_written_at"
	noteDeliveryNotifiedAt  = "delivery_notified_at"
	noteDeliveryConfirmedAt = "delivery_confirmed_at"
	noteDeliveryError       = "delivery_error"
	noteDeliveryTriedUntil  = "delivery_tried_until"
)

// errNotInUse means the application answered its health URL without the delivery's token.
var errNotInUse = errors.New("the application does not report the new credential on its health URL yet")

// sidecar is the agent's sidecar mode: which credentials it owns, where they go, how the
// application is told and how it confirms. A nil *sidecar is the central mode: every method
// then leaves credentials owned by a sidecar alone and wraps nothing.
type sidecar struct {
	app      string
	sinks    map[string][]delivery.Sink
	notifier delivery.Notifier
	confirm  string
	health   delivery.Health
	timeout  time.Duration
	interval time.Duration
	values   valueReader
	redactor *Redactor
	log      logrus.FieldLogger
	now      func() time.Time
	// deliveries counts finished delivery attempts by result (confirmed, unconfirmed); nil
	// counts nothing.
	deliveries *prometheus.CounterVec
}

// newDeliveryCounter registers rotation_agent_sidecar_deliveries_total with the agent's
// metrics; nil without metrics.
func newDeliveryCounter(m *Metrics) *prometheus.CounterVec {
	if m == nil {
		return nil
	}
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "sidecar_deliveries_total",
		Help: "Sidecar deliveries of a new credential to the application, by result (confirmed, unconfirmed).",
	}, []string{"result"})
	m.registry.MustRegister(c)
	for _, r := range []string{"confirmed", "unconfirmed"} {
		c.WithLabelValues(r)
	}
	return c
}

func (s *sidecar) counted(result string) {
	if s.deliveries != nil {
		s.deliveries.WithLabelValues(result).Inc()
	}
}

// newSidecar builds sidecar mode from its configuration; nil when it is off.
func newSidecar(cfg SidecarConfig, client *vault.Client, redactor *Redactor, log logrus.FieldLogger, metrics *Metrics) (*sidecar, error) {
	if !cfg.enabled() {
		return nil, nil
	}
	sinks, err := delivery.LoadSinks(cfg.SinksFile)
	if err != nil {
		return nil, err
	}
	s := &sidecar{
		app: cfg.App, sinks: map[string][]delivery.Sink{}, confirm: cfg.Confirm,
		timeout: cfg.ConfirmTimeout, interval: cfg.ConfirmInterval,
		values: vaultValues{client: client}, redactor: redactor, log: log, now: time.Now,
		deliveries: newDeliveryCounter(metrics),
	}
	for _, sk := range sinks {
		s.sinks[sk.Credential] = append(s.sinks[sk.Credential], sk)
	}
	httpClient := &http.Client{Timeout: 10 * time.Second}
	switch cfg.Notify {
	case NotifySignal:
		sig, err := delivery.ParseSignal(cfg.NotifySignal)
		if err != nil {
			return nil, err
		}
		s.notifier = delivery.Signal{Signal: sig, PIDFile: cfg.NotifyPIDFile, Process: cfg.NotifyProcess}
	case NotifyHTTP:
		s.notifier = delivery.HTTPHook{URL: cfg.NotifyURL, Client: httpClient}
	case NotifyCommand:
		s.notifier = delivery.Command{Path: cfg.NotifyCommand[0], Args: cfg.NotifyCommand[1:], Timeout: cfg.ConfirmTimeout}
	default:
		return nil, fmt.Errorf("sidecar notify %q is not one of signal, http, command", cfg.Notify)
	}
	if cfg.Confirm == ConfirmByHealth {
		s.health = delivery.Health{URL: cfg.HealthURL, Client: httpClient}
	}
	return s, nil
}

// owns reports whether a credential belongs to this sidecar's application.
func (s *sidecar) owns(ref events.CredentialRef) bool {
	return s != nil && ref.Options[OptionSidecar] == s.app
}

// scope keeps the credentials this agent acts on. A sidecar keeps its application's; the
// central agent (s nil) keeps everything no sidecar owns, so the two never both rotate one
// credential. The sidecar reads every change on a durable consumer of its own, so what it
// leaves out is not taken from anyone.
func (s *sidecar) scope(matches []discovery.Match, log logrus.FieldLogger) []discovery.Match {
	kept := matches[:0:0]
	for _, m := range matches {
		owner := m.Credential.Options[OptionSidecar]
		switch {
		case s == nil && owner != "":
			log.WithFields(logrus.Fields{FieldCredential: m.Credential.ID(), "sidecar": owner}).Info("credential belongs to a sidecar; left to it")
		case s != nil && owner != s.app:
			// Another application's or the central agent's credential: not ours to touch.
		default:
			kept = append(kept, m)
		}
	}
	return kept
}

// evidenceScope tells this agent's evidence records apart from those of the central agent and
// of other sidecars, which report on other credentials of the same change.
func (s *sidecar) evidenceScope() string {
	if s == nil {
		return ""
	}
	return ":sidecar:" + s.app
}

// wrap returns rot with delivery added for a credential this sidecar owns and rotates.
func (s *sidecar) wrap(rot rotators.Rotator, ref events.CredentialRef) rotators.Rotator {
	if !s.owns(ref) || ref.EffectiveAction() != events.ActionRotate {
		return rot
	}
	return deliveringRotator{Rotator: rot, s: s}
}

// annotate adds the delivery to a credential's evidence, and says the old credential was kept
// when the application never confirmed the new one.
func (s *sidecar) annotate(ce *events.CredentialEvidence, ref events.CredentialRef, st rotators.State) {
	if !s.owns(ref) || st.Note(noteDeliveryToken) == "" {
		return
	}
	d := &events.Delivery{
		Application: s.app, Token: st.Note(noteDeliveryToken), Notify: s.notifier.Kind(),
		Confirmation: s.confirm, Error: st.Note(noteDeliveryError),
		WrittenAt: noteTime(st, noteDeliveryWrittenAt), NotifiedAt: noteTime(st, noteDeliveryNotifiedAt),
		ConfirmedAt: noteTime(st, noteDeliveryConfirmedAt),
	}
	for _, sk := range s.sinks[ref.ID()] {
		d.Files = append(d.Files, sk.Path)
	}
	if d.ConfirmedAt != nil {
		d.Error = ""
	}
	ce.Delivery = d
	if d.ConfirmedAt == nil && ce.OldCredential == "" && ce.Outcome == events.OutcomeNeedsReconcile {
		ce.OldCredential = events.OldCredentialKept
	}
}

func noteTime(st rotators.State, key string) *time.Time {
	t, err := time.Parse(time.RFC3339Nano, st.Note(key))
	if err != nil {
		return nil
	}
	return &t
}

// deliveringRotator adds sidecar delivery to a rotator: promote writes the files, notifies the
// application and waits for its confirmation; retire refuses to retire the old credential of
// an application that never confirmed.
type deliveringRotator struct {
	rotators.Rotator
	s *sidecar
}

// Prepare refuses a credential with no sink, or of a kind with nothing to deliver, before
// anything is rotated.
func (r deliveringRotator) Prepare(ctx context.Context, req rotators.Request, st *rotators.State) error {
	if len(r.s.sinks[req.Credential.ID()]) == 0 {
		return rotators.Permanent(fmt.Errorf("credential %s belongs to sidecar %s but the sinks file names no file for it", req.Credential.ID(), r.s.app))
	}
	if !deliverable(req.Credential) {
		return rotators.Permanent(fmt.Errorf("sidecar mode cannot deliver a %s credential without a deliver_to option", req.Credential.Kind))
	}
	return r.Rotator.Prepare(ctx, req, st)
}

// Promote promotes, then delivers. A delivery that is not confirmed in time does not fail the
// step (a fresh value would not help the application); it is recorded, and retire refuses.
func (r deliveringRotator) Promote(ctx context.Context, req rotators.Request, st *rotators.State) error {
	if err := r.Rotator.Promote(ctx, req, st); err != nil {
		return err
	}
	return r.s.deliver(ctx, req, st, false)
}

// Retire retires the old credential only once the application confirmed the new one. When
// time has passed since the last attempt (an overlap window longer than the confirm timeout,
// or a resumed agent), the delivery is tried once more first; with no such time (a zero
// window) the application is not asked twice in a row.
func (r deliveringRotator) Retire(ctx context.Context, req rotators.Request, st *rotators.State) error {
	if st.Note(noteDeliveryConfirmedAt) == "" {
		tried := noteTime(*st, noteDeliveryTriedUntil)
		if tried == nil || r.s.now().Sub(*tried) >= r.s.interval {
			if err := r.s.deliver(ctx, req, st, true); err != nil {
				return err
			}
		}
		if st.Note(noteDeliveryConfirmedAt) == "" {
			return rotators.Permanent(fmt.Errorf("%w: the application did not confirm the new credential (%s); the old credential is kept",
				rotators.ErrNeedsReconcile, st.Note(noteDeliveryError)))
		}
	}
	return r.Rotator.Retire(ctx, req, st)
}

// stepError is an error that ends the delivery attempt at once and fails the step: Vault
// unavailable, or the journal could not record progress.
type stepError struct{ err error }

func (e stepError) Error() string { return e.err.Error() }
func (e stepError) Unwrap() error { return e.err }

// deliver writes, notifies and waits for confirmation, trying again every interval until the
// confirm timeout. Progress is saved in the journal after each part, so a resumed delivery
// does not write or notify twice. again starts over (files and notification) for a later try.
func (s *sidecar) deliver(ctx context.Context, req rotators.Request, st *rotators.State, again bool) error {
	ref := req.Credential
	log := s.log.WithFields(logrus.Fields{FieldChangeID: req.ChangeID, FieldCredential: ref.ID(), FieldAction: "deliver"})
	if st.Note(noteDeliveryConfirmedAt) != "" {
		return nil // a resumed step whose delivery was confirmed before the stop
	}
	token := st.Note(noteDeliveryToken)
	if token == "" {
		token = delivery.Token(req.ChangeID, ref.ID(), st.After)
		st.SetNote(noteDeliveryToken, token)
	}
	if again {
		delete(st.Data, noteDeliveryWrittenAt)
		delete(st.Data, noteDeliveryNotifiedAt)
	}
	deadline := s.now().Add(s.timeout)
	var err error
	for {
		err = s.attempt(ctx, req, st, token)
		if err == nil {
			log.WithField("token", token).Info("application confirmed the new credential")
			s.counted("confirmed")
			return nil
		}
		var fatal stepError
		if errors.As(err, &fatal) {
			return fatal.err
		}
		if ctx.Err() != nil {
			return rotators.Retryable(fmt.Errorf("delivery interrupted: %w", ctx.Err()))
		}
		if !s.now().Add(s.interval).Before(deadline) || !sleepCtx(ctx, s.interval) {
			break
		}
		log.WithError(err).Debug("delivery not confirmed yet; trying again")
	}
	if ctx.Err() != nil {
		return rotators.Retryable(fmt.Errorf("delivery interrupted: %w", ctx.Err()))
	}
	msg := s.redactor.String(err.Error())
	s.counted("unconfirmed")
	st.SetNote(noteDeliveryError, msg)
	st.SetNote(noteDeliveryTriedUntil, s.now().UTC().Format(time.RFC3339Nano))
	log.WithField("error", msg).WithField("token", token).Error("application did not confirm the new credential; the old credential stays until it does")
	if err := req.Save(ctx, st); err != nil {
		return rotators.Retryable(err)
	}
	return nil
}

// attempt does what is left of one delivery: write the files, notify, confirm. It returns nil
// once the application confirmed.
func (s *sidecar) attempt(ctx context.Context, req rotators.Request, st *rotators.State, token string) error {
	ref := req.Credential
	sinks := s.sinks[ref.ID()]
	save := func(key, part string) error {
		st.SetNote(key, s.now().UTC().Format(time.RFC3339Nano))
		if err := req.Save(ctx, st); err != nil {
			return stepError{rotators.Retryable(err)}
		}
		failpoint.Hit(failpoint.AfterDelivery + part)
		return nil
	}
	if st.Note(noteDeliveryWrittenAt) == "" {
		if err := s.write(ctx, ref, st, sinks, token); err != nil {
			return err
		}
		if err := save(noteDeliveryWrittenAt, "written"); err != nil {
			return err
		}
	}
	if st.Note(noteDeliveryNotifiedAt) == "" {
		notice := delivery.Notice{Credential: ref.ID(), Token: token}
		for _, sk := range sinks {
			notice.Files = append(notice.Files, sk.Path)
		}
		if err := s.notifier.Notify(ctx, notice); err != nil {
			return fmt.Errorf("notify the application (%s): %w", s.notifier.Kind(), err)
		}
		if s.confirm == ConfirmByHook && s.notifier.Confirms() {
			st.SetNote(noteDeliveryConfirmedAt, s.now().UTC().Format(time.RFC3339Nano))
			delete(st.Data, noteDeliveryError)
		}
		if err := save(noteDeliveryNotifiedAt, "notified"); err != nil {
			return err
		}
	}
	if st.Note(noteDeliveryConfirmedAt) != "" {
		return nil
	}
	ok, err := s.health.InUse(ctx, token)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w (token %s)", errNotInUse, token)
	}
	delete(st.Data, noteDeliveryError)
	return save(noteDeliveryConfirmedAt, "confirmed")
}

// write reads the new credential from Vault and writes it to every sink of the credential,
// then the token beside each. The values are known to the redactor while they are in hand.
func (s *sidecar) write(ctx context.Context, ref events.CredentialRef, st *rotators.State, sinks []delivery.Sink, token string) error {
	values, err := s.values.read(ctx, ref, *st)
	if err != nil {
		if rotators.IsUnavailable(err) {
			return stepError{err}
		}
		return fmt.Errorf("read the new credential: %w", err)
	}
	// Known to the redactor while in hand; forgotten after, unless it was known before (a
	// value the rotation generated stays known until the rotation ends).
	var added []string
	for _, v := range values {
		if !s.redactor.knows(v) {
			s.redactor.Add(v)
			added = append(added, v)
		}
	}
	defer func() {
		for _, v := range added {
			s.redactor.Forget(v)
		}
	}()
	for _, sk := range sinks {
		content, err := sk.Render(values)
		if err != nil {
			return err
		}
		if err := sk.Write(content); err != nil {
			return err
		}
		if err := sk.WriteVersion(token); err != nil {
			return err
		}
	}
	return nil
}

// knows reports whether the redactor already removes value.
func (r *Redactor) knows(value string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.values[value]
	return ok
}
