package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/rotation-agent/rotation-agent/discovery"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/schedule"
)

// DriftChecker compares the entitlements every identity has with those approved for it. The
// scheduler calls it on the drift-check schedule, on one replica per activation.
type DriftChecker interface {
	CheckDrift(ctx context.Context, bindings []discovery.Binding) error
}

// logOnlyDrift is the drift check used until the entitlement comparison is wired in: it only
// reports how many bindings carry approved entitlements.
type logOnlyDrift struct{ log logrus.FieldLogger }

func (d logOnlyDrift) CheckDrift(_ context.Context, bindings []discovery.Binding) error {
	n := 0
	for _, b := range bindings {
		n += len(b.ApprovedEntitlements)
	}
	d.log.WithField("identities", n).Info("drift check ran; no entitlement comparison is configured")
	return nil
}

// scheduleState is the last activation the agent acted on for one binding (or the drift
// check), kept in the journal bucket.
type scheduleState struct {
	Name string    `json:"name"`
	Last time.Time `json:"last"`
}

func scheduleKey(binding, credential string) string {
	return "sched." + hashToken(binding+"\x00"+credential)
}

const driftKey = "sched.drift-check"

// scheduler finds due work on every replica: scheduled rotations, deferred credentials whose
// window opened, review reminders and escalations, and the drift check. Rotations are queued
// through publishWork, so they run through the pipeline like any change.
type scheduler struct {
	p       *pipeline
	reviews *reviews
	cfg     ScheduleConfig
	drift   DriftChecker
	plan    schedule.Plan
	// deferredOnly limits the scheduler to deferred credentials (sidecar mode); reviews,
	// binding schedules and the drift check are the central agent's.
	deferredOnly bool
}

// run looks for due work every interval, give or take a tenth of it at random so replicas
// started together do not keep ticking together, until ctx ends.
func (s *scheduler) run(ctx context.Context) {
	for {
		wait := s.cfg.Interval + time.Duration(rand.Int64N(int64(s.cfg.Interval)/5+1)) - s.cfg.Interval/10 //nolint:gosec // jitter needs no cryptographic randomness
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
			s.tick(ctx)
		}
	}
}

func (s *scheduler) tick(ctx context.Context) {
	if s.deferredOnly {
		s.p.runDeferred(ctx)
		return
	}
	s.rotateDue(ctx)
	s.p.runDeferred(ctx)
	s.reviews.sweep(ctx)
	s.driftCheck(ctx)
}

// claim moves a schedule state from its last activation to due; only the replica whose
// compare-and-set wins acts. A state not seen before starts now: nothing is due for the time
// before the agent knew the schedule.
func (s *scheduler) claim(ctx context.Context, key, name string, plan schedule.Plan, jitter time.Duration) (time.Time, func(context.Context) error, bool) {
	now := s.p.clock.Now()
	kve, err := s.p.journal.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		raw, _ := json.Marshal(scheduleState{Name: name, Last: now.UTC()})
		_, _ = s.p.journal.kv.Create(ctx, key, raw)
		return time.Time{}, nil, false
	}
	if err != nil {
		s.p.log.WithError(err).WithField("schedule", name).Warn("read schedule state failed")
		return time.Time{}, nil, false
	}
	var st scheduleState
	if err := json.Unmarshal(kve.Value(), &st); err != nil {
		s.p.log.WithError(err).WithField("schedule", name).Warn("unreadable schedule state")
		return time.Time{}, nil, false
	}
	due, ok := plan.LatestDue(st.Last, now.Add(-jitter))
	if !ok {
		// The journal bucket forgets what is not written for its retention; a schedule that
		// fires less often than that is written again now and then so it is not forgotten.
		if time.Since(kve.Created()) > journalRetention/3 {
			_, _ = s.p.journal.kv.Update(ctx, key, kve.Value(), kve.Revision())
		}
		return time.Time{}, nil, false
	}
	commit := func(ctx context.Context) error {
		raw, _ := json.Marshal(scheduleState{Name: name, Last: due.UTC()})
		_, err := s.p.journal.kv.Update(ctx, key, raw, kve.Revision())
		return err
	}
	return due, commit, true
}

// rotateDue queues the rotation of every binding whose schedule or maximum age is due. The
// change is published before the state moves on, so a crash in between publishes it again
// (the same id) rather than losing it.
func (s *scheduler) rotateDue(ctx context.Context) {
	for _, b := range s.p.catalog.index.Load().Bindings() {
		plan := b.Plan()
		if plan.IsZero() {
			continue
		}
		due, commit, ok := s.claim(ctx, scheduleKey(b.Name, b.Credential.Key()), b.Name, plan, schedule.Jitter(b.Name, s.cfg.Jitter))
		if !ok {
			continue
		}
		ref := b.Credential
		if ref.Action == "" {
			ref.Action = events.ActionRotate // a schedule rotates, whatever the kind revokes by default
		}
		ch := events.Change{
			ID:   "schedule:" + idPart(b.Name) + ":" + due.UTC().Format("20060102T150405Z"),
			Type: events.ChangeStandard, Trigger: events.TriggerSchedule,
			Summary:     fmt.Sprintf("scheduled rotation of binding %s, due %s", b.Name, due.UTC().Format(time.RFC3339)),
			Credentials: []events.CredentialRef{ref},
		}
		log := s.p.log.WithFields(logrus.Fields{FieldChangeID: ch.ID, FieldCredential: ref.ID(), "binding": b.Name})
		if err := s.p.publishWork(ctx, ch); err != nil {
			log.WithError(err).Warn("queue scheduled rotation failed; will retry")
			continue
		}
		if err := commit(ctx); err != nil {
			log.WithError(err).Debug("schedule state moved on by another replica")
			continue
		}
		log.Info("scheduled rotation queued")
	}
}

// driftCheck runs the drift check on its schedule, on the replica that claims the activation.
func (s *scheduler) driftCheck(ctx context.Context) {
	if s.plan.IsZero() || s.drift == nil {
		return
	}
	due, commit, ok := s.claim(ctx, driftKey, "drift-check", s.plan, 0)
	if !ok {
		return
	}
	if err := commit(ctx); err != nil {
		return // another replica runs this activation
	}
	if err := s.drift.CheckDrift(ctx, s.p.catalog.index.Load().Bindings()); err != nil {
		s.p.log.WithError(err).WithField("due", due.Format(time.RFC3339)).Warn("drift check failed")
	}
}
