package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rotation-agent/rotation-agent/events"
)

// maxDeliveriesAdvisory is the part of JetStream's max_deliver advisory the agent reads.
type maxDeliveriesAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// watchDeadLetters turns JetStream's advisory for a change that ran out of deliveries (the
// agent died or could publish nothing every time) into a rejection with reason
// max_deliveries and a copy of the event on the dead-letter subject, from which an operator
// can publish it again. Every replica sees the advisory; the records' ids de-duplicate them.
func (p *pipeline) watchDeadLetters(nc *nats.Conn, stream, consumer string) (*nats.Subscription, error) {
	subject := fmt.Sprintf("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.%s.%s", stream, consumer)
	return nc.Subscribe(subject, func(m *nats.Msg) {
		var adv maxDeliveriesAdvisory
		if err := json.Unmarshal(m.Data, &adv); err != nil || adv.StreamSeq == 0 {
			p.log.WithField("advisory", subject).Warn("unreadable max-deliveries advisory")
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.deadLetter(ctx, adv); err != nil {
			p.log.WithError(err).WithField("stream_sequence", adv.StreamSeq).Error("dead-letter record not published")
		}
	})
}

func (p *pipeline) deadLetter(ctx context.Context, adv maxDeliveriesAdvisory) error {
	s, err := p.js.Stream(ctx, adv.Stream)
	if err != nil {
		return err
	}
	msg, err := s.GetMsg(ctx, adv.StreamSeq)
	if err != nil {
		return fmt.Errorf("read message %d: %w", adv.StreamSeq, err)
	}
	sum := sha256.Sum256(msg.Data)
	rej := events.Rejection{
		ReasonCode:     events.ReasonUndeliverable,
		Reason:         fmt.Sprintf("delivered %d times without being settled; copied to %s for an operator", adv.Deliveries, p.subjects.DeadLetter()),
		Subject:        msg.Subject,
		StreamSequence: adv.StreamSeq,
		PayloadBytes:   len(msg.Data),
		PayloadSHA256:  hex.EncodeToString(sum[:]),
		ReceivedAt:     time.Now().UTC(),
		Agent:          p.agent,
	}
	if ev, bad := events.DecodeChangeEvent(msg.Data, 0); bad == nil {
		rej.EventID, rej.ChangeID = ev.ID, ev.Data.ID
	}
	id := fmt.Sprintf("%s:%d", adv.Stream, adv.StreamSeq)
	if _, err := p.js.Publish(ctx, p.subjects.DeadLetter(), msg.Data, jetstream.WithMsgID("deadletter:"+id)); err != nil {
		return fmt.Errorf("publish dead letter: %w", err)
	}
	env := events.Envelope[events.Rejection]{
		SpecVersion: events.SpecVersion, ID: "rejection:" + id + ":max_deliveries", Source: eventSource + "/" + p.agent.ID,
		Type: events.TypeRejection, Time: rej.ReceivedAt, DataContentType: "application/json", Data: rej,
	}
	raw, err := json.Marshal(env)
	if err != nil {
		return err
	}
	if _, err := p.js.Publish(ctx, p.subjects.Rejections(), raw, jetstream.WithMsgID(env.ID)); err != nil {
		return fmt.Errorf("publish rejection: %w", err)
	}
	p.metrics.rejected(rej.ReasonCode)
	p.log.WithFields(map[string]any{FieldChangeID: rej.ChangeID, "stream_sequence": adv.StreamSeq, "deliveries": adv.Deliveries}).Error("change ran out of deliveries; dead-lettered")
	return nil
}
