package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rotation-agent/rotation-agent/events"
)

// StoredMsg is one message read back from a stream.
type StoredMsg struct {
	Sequence uint64
	Subject  string
	Data     []byte
	Time     time.Time
}

// ReadStream reads every message of stream on filter, from since (all when zero), in stream
// order, with an ephemeral ordered consumer.
func ReadStream(ctx context.Context, js jetstream.JetStream, stream, filter string, since time.Time) ([]StoredMsg, error) {
	cc := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if !since.IsZero() {
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := js.OrderedConsumer(ctx, stream, cc)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	var out []StoredMsg
	for pending := info.NumPending; pending > 0; {
		msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			return out, fmt.Errorf("read stream %s: %w", stream, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return out, fmt.Errorf("read stream %s: %w", stream, err)
		}
		out = append(out, StoredMsg{Sequence: meta.Sequence.Stream, Subject: msg.Subject(), Data: msg.Data(), Time: meta.Timestamp})
		pending = meta.NumPending
	}
	return out, nil
}

// ChangeRecords returns the evidence records of one change, in stream order, each decoded
// strictly (a record that is not canonical is an error: the stream was tampered with).
func ChangeRecords(ctx context.Context, js jetstream.JetStream, stream string, subjects events.Subjects, changeID string) ([]events.Record, error) {
	msgs, err := ReadStream(ctx, js, stream, subjects.Evidence(changeID), time.Time{})
	if err != nil {
		return nil, err
	}
	var out []events.Record
	for _, m := range msgs {
		rec, err := events.DecodeRecord(m.Data)
		if err != nil {
			return out, fmt.Errorf("evidence record at stream sequence %d: %w", m.Sequence, err)
		}
		if rec.Data.ChangeID == changeID { // tokens of different ids can collide
			out = append(out, rec)
		}
	}
	return out, nil
}
