package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/sirupsen/logrus"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/clock"
)

// evidenceServiceVersion is the version of the request/reply contract (micro needs semver).
const evidenceServiceVersion = "1.0.0"

// evidenceService answers evidence and closure requests for ITSM bridges and auditors.
type evidenceService struct {
	js       jetstream.JetStream
	stream   string
	subjects events.Subjects
	journal  *journal
	log      logrus.FieldLogger
	// clock decides whether a post-change review is past its deadline; the real clock when nil.
	clock clock.Clock
}

// startEvidenceService registers the evidence service (a NATS micro service, queue group
// shared by every replica) and returns it; Stop it when the agent stops.
func startEvidenceService(nc *nats.Conn, s *evidenceService) (micro.Service, error) {
	svc, err := micro.AddService(nc, micro.Config{
		Name:        "rotation-agent-evidence",
		Version:     evidenceServiceVersion,
		Description: "evidence records of changes and the closure gate of rotation-agent",
	})
	if err != nil {
		return nil, fmt.Errorf("evidence service: %w", err)
	}
	if err := svc.AddEndpoint("evidence-get", micro.HandlerFunc(s.get), micro.WithEndpointSubject(s.subjects.EvidenceGet())); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("evidence service: %w", err)
	}
	if err := svc.AddEndpoint("closure-check", micro.HandlerFunc(s.closure), micro.WithEndpointSubject(s.subjects.ClosureCheck())); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("evidence service: %w", err)
	}
	return svc, nil
}

func (s *evidenceService) get(r micro.Request) {
	req, err := events.DecodeEvidenceRequest(r.Data())
	if err != nil {
		_ = r.Error("400", err.Error(), nil)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	records, err := ChangeRecords(ctx, s.js, s.stream, s.subjects, req.ChangeID)
	if err != nil {
		s.log.WithError(err).WithField(FieldChangeID, req.ChangeID).Warn("evidence request failed")
		_ = r.Error("500", "reading the evidence stream failed: "+err.Error(), nil)
		return
	}
	if records == nil {
		records = []events.Record{}
	}
	s.respond(r, events.EvidenceReply{ChangeID: req.ChangeID, Records: records})
}

func (s *evidenceService) closure(r micro.Request) {
	req, err := events.DecodeEvidenceRequest(r.Data())
	if err != nil {
		_ = r.Error("400", err.Error(), nil)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	ans, err := s.check(ctx, req.ChangeID)
	if err != nil {
		s.log.WithError(err).WithField(FieldChangeID, req.ChangeID).Warn("closure check failed")
		_ = r.Error("500", err.Error(), nil)
		return
	}
	s.log.WithFields(logrus.Fields{FieldChangeID: req.ChangeID, "may_close": ans.MayClose, "reasons": len(ans.Reasons)}).Info("closure check answered")
	s.respond(r, ans)
}

// check answers the closure gate for one change.
func (s *evidenceService) check(ctx context.Context, changeID string) (events.ClosureAnswer, error) {
	records, err := ChangeRecords(ctx, s.js, s.stream, s.subjects, changeID)
	if err != nil {
		return events.ClosureAnswer{}, fmt.Errorf("reading the evidence stream failed: %w", err)
	}
	entries, err := s.journal.changeEntries(ctx, changeID)
	if err != nil {
		return events.ClosureAnswer{}, fmt.Errorf("reading the journal failed: %w", err)
	}
	if records, entries, err = s.followDeferred(ctx, records, entries); err != nil {
		return events.ClosureAnswer{}, err
	}
	var stored *events.Review
	if awaitsReviewStep(records) {
		if stored, err = s.journal.storedReview(ctx, changeID); err != nil {
			return events.ClosureAnswer{}, fmt.Errorf("reading the post-change review failed: %w", err)
		}
	}
	now := time.Now()
	if s.clock != nil {
		now = s.clock.Now()
	}
	return closureAnswer(changeID, records, entries, stored, now), nil
}

// followDeferred appends to a change's records and journal entries those of the changes that
// run its deferred credentials (deferred:<change_id>:<hash>, published when the maintenance
// window opens), so the latest evidence of a deferred credential is where it went then. A
// credential deferred again by such a change is followed too.
func (s *evidenceService) followDeferred(ctx context.Context, records []events.Record, entries []journalEntry) ([]events.Record, []journalEntry, error) {
	for i := 0; i < len(entries); i++ {
		e := entries[i]
		if e.Evidence == nil || e.Evidence.Outcome != events.OutcomeDeferred {
			continue
		}
		id := deferredChangeID(e.ChangeID, e.Credential)
		more, err := ChangeRecords(ctx, s.js, s.stream, s.subjects, id)
		if err != nil {
			return nil, nil, fmt.Errorf("reading the evidence stream failed: %w", err)
		}
		moreEntries, err := s.journal.changeEntries(ctx, id)
		if err != nil {
			return nil, nil, fmt.Errorf("reading the journal failed: %w", err)
		}
		records, entries = append(records, more...), append(entries, moreEntries...)
	}
	return records, entries, nil
}

func (s *evidenceService) respond(r micro.Request, v any) {
	raw, err := json.Marshal(v)
	if err != nil {
		_ = r.Error("500", "encode reply: "+err.Error(), nil)
		return
	}
	if err := r.Respond(raw); err != nil {
		s.log.WithError(err).Warn("evidence service reply failed")
	}
}
