package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rotation-agent/rotation-agent/events"
)

// ExportEvidence writes the evidence records stored since since (all when zero) to w as JSON
// Lines, each byte for byte as published, and returns how many it wrote.
func ExportEvidence(ctx context.Context, js jetstream.JetStream, stream string, subjects events.Subjects, since time.Time, w io.Writer) (int, error) {
	msgs, err := ReadStream(ctx, js, stream, subjects.EvidenceWildcard(), since)
	if err != nil {
		return 0, err
	}
	for i, m := range msgs {
		if _, err := w.Write(append(append([]byte(nil), m.Data...), '\n')); err != nil {
			return i, fmt.Errorf("write export: %w", err)
		}
	}
	return len(msgs), nil
}

// Gap is a change event that has no change record in the evidence stream.
type Gap struct {
	ChangeID       string    `json:"change_id,omitempty"`
	EventID        string    `json:"event_id,omitempty"`
	StreamSequence uint64    `json:"stream_sequence"`
	ReceivedAt     time.Time `json:"received_at"`
	Reason         string    `json:"reason"`
}

// EvidenceGaps compares the change-completed events stored since since with the evidence
// stream and lists each event whose change has no change record, and each refused event with
// no rejection record.
func EvidenceGaps(ctx context.Context, js jetstream.JetStream, cfg NATSConfig, subjects events.Subjects, since time.Time) ([]Gap, error) {
	changes, err := ReadStream(ctx, js, cfg.ChangeStream, subjects.ChangeCompleted(), since)
	if err != nil {
		return nil, err
	}
	evidenceMsgs, err := ReadStream(ctx, js, cfg.EvidenceStream, subjects.EvidenceWildcard(), since)
	if err != nil {
		return nil, err
	}
	rejections, err := ReadStream(ctx, js, cfg.EvidenceStream, subjects.Rejections(), since)
	if err != nil {
		return nil, err
	}
	recorded := map[string]bool{}
	for _, m := range evidenceMsgs {
		var rec events.Record
		if json.Unmarshal(m.Data, &rec) == nil && !rec.Data.IsRetirement() && !rec.Data.IsReviewStep() {
			recorded[rec.Data.ChangeID] = true
		}
	}
	rejected := map[uint64]bool{}
	for _, m := range rejections {
		var rej events.Envelope[events.Rejection]
		if json.Unmarshal(m.Data, &rej) == nil && rej.Data.StreamSequence > 0 {
			rejected[rej.Data.StreamSequence] = true
		}
	}
	var gaps []Gap
	for _, m := range changes {
		ev, rej := events.DecodeChangeEvent(m.Data, 0)
		g := Gap{StreamSequence: m.Sequence, ReceivedAt: m.Time.UTC()}
		switch {
		case rej != nil && !rejected[m.Sequence]:
			g.ChangeID, g.EventID, g.Reason = rej.ChangeID, rej.EventID, "refused event without a rejection record"
		case rej == nil && !recorded[ev.Data.ID]:
			g.ChangeID, g.EventID, g.Reason = ev.Data.ID, ev.ID, "no final evidence record for the change"
		default:
			continue
		}
		gaps = append(gaps, g)
	}
	return gaps, nil
}
