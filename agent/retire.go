package agent

import (
	"context"
	"errors"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/rotation-agent/rotation-agent/events"
)

// retireLoop retires old credentials whose overlap window has ended, every interval, until ctx
// ends. Every replica runs it; the journal's compare-and-set lets only one act on an entry.
func (p *pipeline) retireLoop(ctx context.Context, interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			p.sweepRetirements(ctx)
		}
	}
}

// sweepRetirements runs the retire step of every due credential and publishes evidence of it.
func (p *pipeline) sweepRetirements(ctx context.Context) {
	due, err := p.journal.dueRetirements(ctx, time.Now())
	if err != nil {
		p.log.WithError(err).Warn("list due retirements failed")
	}
	for _, idx := range due {
		log := p.log.WithFields(logrus.Fields{FieldChangeID: idx.ChangeID, FieldCredential: idx.Credential, FieldAction: "retire"})
		entry, rev, err := p.journal.entry(ctx, idx.ChangeID, idx.Credential)
		if err != nil {
			log.WithError(err).Warn("read journal failed")
			continue
		}
		if rev == 0 || (!entry.RetirePending && entry.Evidence == nil) {
			_ = p.journal.retired(ctx, idx)
			continue
		}
		if entry.RetirePending {
			held, release, err := p.locks.acquire(ctx, entry.Credential, entry.ChangeID)
			if err != nil {
				log.WithError(err).Info("retire waits for the credential's lock")
				continue
			}
			if entry, rev, err = p.journal.entry(held, idx.ChangeID, idx.Credential); err != nil || !entry.RetirePending {
				release()
				continue
			}
			_, err = p.drive(held, &entry, &rev, log, false)
			release()
			if errors.Is(err, errStaleJournal) {
				continue // another replica took it
			} else if err != nil {
				log.WithError(err).Warn("retire failed; will retry")
				continue
			}
			if entry.RetirePending {
				continue
			}
		}
		// The entry is final: publish its evidence. The index stays until that succeeds, so a
		// failed publish is retried by the next sweep (de-duplicated by its id).
		ce := *entry.Evidence
		env := p.evidenceEnvelope(entry.ChangeID, events.RetirementEventID(entry.EventID, hashToken(entry.Credential)), entry.ChangeType,
			events.TriggerSchedule, ce.StartedAt, []events.CredentialEvidence{ce})
		if _, err := p.publishEvidence(ctx, env); err != nil {
			log.WithError(err).Warn("publish retirement evidence failed; will retry")
			continue
		}
		if err := p.journal.retired(ctx, idx); err != nil {
			log.WithError(err).Warn("clear retirement index failed")
		}
		log.WithField("outcome", ce.Outcome).Info("old credential retired")
	}
}
