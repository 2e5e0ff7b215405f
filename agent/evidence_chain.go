package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/evidence"
	"github.com/rotation-agent/rotation-agent/internal/failpoint"
)

// chainHead is the head of an agent's evidence chain, kept in the journal bucket and advanced
// with compare-and-set, so restarts and replicas sharing an agent id never fork the chain.
type chainHead struct {
	Sequence uint64 `json:"sequence"`
	SHA256   string `json:"sha256"`
	RecordID string `json:"record_id,omitempty"`
	Subject  string `json:"subject,omitempty"`
	// Record holds the last record as sealed while its publish is unconfirmed (Pending), so a
	// retry publishes exactly those bytes. It is kept as JSON: the canonical form re-encodes to
	// itself, and DecodeRecord checks that before it is used.
	Record  json.RawMessage `json:"record,omitempty"`
	Pending bool            `json:"pending,omitempty"`
}

func chainKey(agentID string) string { return "chain." + hashToken(agentID) }

// sealer chains, signs and publishes evidence records. One agent process publishes one record
// at a time.
type sealer struct {
	js       jetstream.JetStream
	kv       jetstream.KeyValue
	signer   evidence.Signer
	subjects events.Subjects
	// stream is the evidence stream, read back when a record turns out to be stored already.
	stream  string
	agentID string
	log     logrus.FieldLogger
	mu      sync.Mutex
}

// publish seals rec (unless it was sealed before: a record re-published from the journal) and
// publishes it, de-duplicated by its id. It returns the record as published.
func (s *sealer) publish(ctx context.Context, rec events.Record) (events.Record, error) {
	if rec.Data.Chain != nil {
		line, err := events.Canonical(rec)
		if err != nil {
			return rec, err
		}
		_, err = s.js.Publish(ctx, s.subjects.Evidence(rec.Data.ChangeID), line, jetstream.WithMsgID(rec.ID))
		return rec, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	head, rev, err := s.head(ctx)
	if err != nil {
		return rec, err
	}
	if head.Pending {
		// The last record's publish was not confirmed: publish it first (de-duplicated).
		if events.RecordHash(head.Record) != head.SHA256 {
			return rec, fmt.Errorf("evidence chain head of %s holds a record that does not match its hash", s.agentID)
		}
		ack, err := s.js.Publish(ctx, head.Subject, head.Record, jetstream.WithMsgID(head.RecordID))
		if err != nil {
			return rec, fmt.Errorf("publish pending evidence record %s: %w", head.RecordID, err)
		}
		sealed, decodeErr := events.DecodeRecord(head.Record)
		lost := false
		if ack.Duplicate && decodeErr == nil {
			if lost, err = s.lostTo(ctx, sealed, head.SHA256); err != nil {
				return rec, err
			}
		}
		head.Pending, head.Record = false, nil
		if lost {
			// Another record with this id (another replica's) was stored while this one waited:
			// this one is not in the stream, so the chain steps back to the link before it.
			s.log.WithField(FieldChangeID, sealed.Data.ChangeID).Info("pending evidence record already in the stream from another publisher; not chained")
			head.Sequence, head.SHA256 = sealed.Data.Chain.Sequence-1, sealed.Data.Chain.PreviousSHA256
			head.RecordID, head.Subject = "", ""
		}
		if rev, err = s.putHead(ctx, head, rev); err != nil {
			return rec, err
		}
		if sealed.ID == rec.ID && decodeErr == nil {
			if lost {
				return s.stored(ctx, rec)
			}
			return sealed, nil // this very record was sealed before and is now published
		}
	}
	rec.Data.Chain = &events.ChainLink{Sequence: head.Sequence + 1, PreviousSHA256: head.SHA256}
	if head.Sequence == 0 {
		rec.Data.Chain.PreviousSHA256 = events.GenesisHash
	}
	var sign func([]byte) (events.Signature, error)
	if s.signer != nil {
		sign = func(msg []byte) (events.Signature, error) { return s.signer.Sign(ctx, msg) }
	}
	sealed, line, err := evidence.Seal(sign, rec)
	if err != nil {
		return rec, fmt.Errorf("seal evidence: %w", err)
	}
	subject := s.subjects.Evidence(rec.Data.ChangeID)
	next := chainHead{Sequence: rec.Data.Chain.Sequence, SHA256: events.RecordHash(line), RecordID: rec.ID, Subject: subject, Record: line, Pending: true}
	nextRev, err := s.putHead(ctx, next, rev)
	if err != nil {
		return rec, err
	}
	failpoint.Hit(failpoint.AfterEvidenceReserved)
	ack, err := s.js.Publish(ctx, subject, line, jetstream.WithMsgID(rec.ID))
	if err != nil {
		return rec, fmt.Errorf("publish evidence: %w", err)
	}
	failpoint.Hit(failpoint.AfterEvidencePublished)
	if ack.Duplicate {
		// The stream already holds a record with this id (published before this record was
		// sealed): this one was not stored, so the chain steps back.
		if _, err := s.putHead(ctx, head, nextRev); err != nil {
			return rec, err
		}
		s.log.WithField(FieldChangeID, rec.Data.ChangeID).Info("evidence record already in the stream; not chained again")
		return s.stored(ctx, rec)
	}
	next.Pending, next.Record = false, nil
	if _, err := s.putHead(ctx, next, nextRev); err != nil {
		// Published and chained; the next record re-publishes it (de-duplicated) first.
		s.log.WithError(err).Warn("confirm evidence chain head failed")
	}
	return sealed, nil
}

// lostTo reports whether the stream holds a different record under the id of sealed, a
// reserved record whose publish was just de-duplicated: then sealed was never stored. It is
// false when the stored record is sealed itself (published before a crash, unconfirmed).
func (s *sealer) lostTo(ctx context.Context, sealed events.Record, hash string) (bool, error) {
	records, err := ChangeRecords(ctx, s.js, s.stream, s.subjects, sealed.Data.ChangeID)
	if err != nil {
		return false, fmt.Errorf("read back pending evidence record %s: %w", sealed.ID, err)
	}
	for _, r := range records {
		if r.ID != sealed.ID {
			continue
		}
		line, err := events.Canonical(r)
		if err != nil {
			return false, err
		}
		return events.RecordHash(line) != hash, nil
	}
	return false, nil
}

// stored returns the record with rec's id as the stream holds it, so the journal keeps the
// record that was actually published; rec without a chain link when it cannot be read.
func (s *sealer) stored(ctx context.Context, rec events.Record) (events.Record, error) {
	rec.Data.Chain, rec.Data.Signature = nil, nil
	records, err := ChangeRecords(ctx, s.js, s.stream, s.subjects, rec.Data.ChangeID)
	if err != nil {
		s.log.WithError(err).Warn("read back the stored evidence record failed")
		return rec, nil
	}
	for _, r := range records {
		if r.ID == rec.ID {
			return r, nil
		}
	}
	return rec, nil
}

// head reads the chain head; revision 0 means the chain is empty.
func (s *sealer) head(ctx context.Context) (chainHead, uint64, error) {
	var h chainHead
	kve, err := s.kv.Get(ctx, chainKey(s.agentID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return h, 0, nil
	}
	if err != nil {
		return h, 0, fmt.Errorf("read evidence chain head: %w", err)
	}
	if err := json.Unmarshal(kve.Value(), &h); err != nil {
		return h, 0, fmt.Errorf("decode evidence chain head: %w", err)
	}
	return h, kve.Revision(), nil
}

// putHead writes the head if it is still at rev (0: must not exist).
func (s *sealer) putHead(ctx context.Context, h chainHead, rev uint64) (uint64, error) {
	raw, err := json.Marshal(h)
	if err != nil {
		return 0, err
	}
	var newRev uint64
	if rev == 0 {
		newRev, err = s.kv.Create(ctx, chainKey(s.agentID), raw)
	} else {
		newRev, err = s.kv.Update(ctx, chainKey(s.agentID), raw, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
		return 0, fmt.Errorf("%w: evidence chain of %s", errStaleJournal, s.agentID)
	}
	if err != nil {
		return 0, fmt.Errorf("write evidence chain head: %w", err)
	}
	return newRev, nil
}
