package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/rotation-agent/rotation-agent/events"
)

// Retention of what the agent keeps in JetStream when it creates the streams itself.
const (
	changeRetention  = 7 * 24 * time.Hour
	journalRetention = 90 * 24 * time.Hour
)

// jetStreamResources are the streams, consumer and bucket the agent works with.
type jetStreamResources struct {
	consumer jetstream.Consumer
	journal  jetstream.KeyValue
	// settings are the consumer's effective ack wait and delivery limit.
	settings consumerSettings
}

// provision creates or updates the agent's streams, durable consumer and journal bucket, so
// every replica may run it at start-up. With BindStreams the streams, bucket and durable
// consumer are operator-managed: they must exist and are used as they are (see bindConsumer).
// A sidecar (sidecar set) consumes only change-completed events: impact reports of planned
// changes are the central agent's.
func provision(ctx context.Context, js jetstream.JetStream, cfg NATSConfig, subjects events.Subjects, sidecar bool, log logrus.FieldLogger) (*jetStreamResources, error) {
	streams := []jetstream.StreamConfig{
		{
			Name:        cfg.ChangeStream,
			Description: "change events for rotation-agent",
			Subjects:    []string{subjects.ChangesWildcard()},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      changeRetention,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
			Duplicates:  cfg.DuplicateWindow,
		},
		{
			Name:        cfg.EvidenceStream,
			Description: "reconciliation evidence and rejections published by rotation-agent",
			Subjects:    []string{subjects.EvidenceWildcard(), subjects.Rejections(), subjects.ImpactWildcard(), subjects.DeadLetter(), subjects.ReviewsWildcard()},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      cfg.EvidenceMaxAge,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
			Duplicates:  cfg.DuplicateWindow,
		},
	}
	for _, sc := range streams {
		if cfg.BindStreams {
			if _, err := js.Stream(ctx, sc.Name); err != nil {
				return nil, fmt.Errorf("bind to stream %s: %w", sc.Name, err)
			}
			continue
		}
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return nil, fmt.Errorf("create or update stream %s: %w", sc.Name, err)
		}
	}
	var kv jetstream.KeyValue
	var err error
	if cfg.BindStreams {
		kv, err = js.KeyValue(ctx, cfg.JournalBucket)
	} else {
		kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      cfg.JournalBucket,
			Description: "rotation-agent journal: progress and final evidence per change",
			History:     1,
			TTL:         journalRetention,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("journal bucket %s: %w", cfg.JournalBucket, err)
	}
	filter, description := []string{subjects.ChangeCompleted(), subjects.ChangePlanned()}, "rotation-agent replicas share this consumer"
	if sidecar {
		filter, description = []string{subjects.ChangeCompleted()}, "a rotation-agent sidecar's own consumer"
	}
	want := jetstream.ConsumerConfig{
		Durable:        cfg.Consumer,
		Description:    description,
		FilterSubjects: filter,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        cfg.AckWait,
		MaxDeliver:     cfg.MaxDeliver,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		MaxAckPending:  256,
	}
	if cfg.BindStreams {
		cons, settings, err := bindConsumer(ctx, js, cfg.ChangeStream, want, log)
		if err != nil {
			return nil, err
		}
		return &jetStreamResources{consumer: cons, journal: kv, settings: settings}, nil
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, cfg.ChangeStream, want)
	if err != nil {
		return nil, fmt.Errorf("create or update consumer %s on %s: %w", cfg.Consumer, cfg.ChangeStream, err)
	}
	return &jetStreamResources{consumer: cons, journal: kv, settings: consumerSettings{ackWait: cfg.AckWait, maxDeliver: cfg.MaxDeliver}}, nil
}
