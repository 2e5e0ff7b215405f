package agent

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"
)

// consumerSettings are the settings of the durable consumer the agent's own timing depends
// on: how often it must report progress on a delivery, and which delivery is the last.
type consumerSettings struct {
	// ackWait is the shortest time a delivery may go unacknowledged before redelivery.
	ackWait time.Duration
	// maxDeliver is the number of deliveries an event gets; math.MaxInt when unlimited.
	maxDeliver int
}

// bindConsumer looks up the operator-managed durable consumer want.Durable on stream and uses
// it as it is: it never creates or updates it. A missing consumer is an error that says what
// to create; a consumer the agent cannot work with (push delivery, no explicit
// acknowledgement) is refused. Settings that differ from want are logged as warnings and the
// consumer's own are returned, so the agent times its work by what JetStream will do.
func bindConsumer(ctx context.Context, js jetstream.JetStream, stream string, want jetstream.ConsumerConfig, log logrus.FieldLogger) (jetstream.Consumer, consumerSettings, error) {
	cons, err := js.Consumer(ctx, stream, want.Durable)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		return nil, consumerSettings{}, fmt.Errorf("bind to consumer %s on stream %s: it does not exist; with %s_NATS_BIND_STREAMS=true the agent creates nothing, so create it first, for example: %s",
			want.Durable, stream, EnvPrefix, consumerAddCommand(stream, want))
	case errors.Is(err, jetstream.ErrNotPullConsumer):
		return nil, consumerSettings{}, fmt.Errorf("bind to consumer %s on stream %s: it is a push consumer; the agent needs a pull consumer", want.Durable, stream)
	case err != nil:
		return nil, consumerSettings{}, fmt.Errorf("bind to consumer %s on stream %s: %w", want.Durable, stream, err)
	}
	got := cons.CachedInfo().Config
	if got.AckPolicy != jetstream.AckExplicitPolicy {
		return nil, consumerSettings{}, fmt.Errorf("bind to consumer %s on stream %s: its ack policy is %s; the agent needs explicit acknowledgement", want.Durable, stream, got.AckPolicy)
	}
	settings := effectiveSettings(got)
	entry := log.WithFields(logrus.Fields{
		"stream": stream, "consumer": want.Durable, "ack_wait": settings.ackWait.String(),
		"max_deliver": got.MaxDeliver, "filter_subjects": consumerFilters(got),
	})
	entry.Info("bound to operator-managed consumer; using its settings")
	for _, diff := range consumerDifferences(got, want) {
		entry.WithField("setting", diff).Warn("operator-managed consumer differs from the agent's configuration; the consumer's setting applies")
	}
	return cons, settings, nil
}

// effectiveSettings returns the timing a consumer's configuration gives: its ack wait, or
// its shortest back-off step when it has back-off (JetStream then waits that long instead),
// and its delivery limit.
func effectiveSettings(c jetstream.ConsumerConfig) consumerSettings {
	s := consumerSettings{ackWait: c.AckWait, maxDeliver: c.MaxDeliver}
	for _, step := range c.BackOff {
		if step > 0 && (s.ackWait <= 0 || step < s.ackWait) {
			s.ackWait = step
		}
	}
	if s.ackWait <= 0 {
		s.ackWait = 30 * time.Second // JetStream's default
	}
	if s.maxDeliver <= 0 {
		s.maxDeliver = math.MaxInt
	}
	return s
}

// consumerDifferences describes each setting of got that differs from what the agent would
// have created (want), one "name: got (configured want)" string per setting.
func consumerDifferences(got, want jetstream.ConsumerConfig) []string {
	var out []string
	if got.AckWait != want.AckWait {
		out = append(out, fmt.Sprintf("ack_wait: %s (configured %s)", got.AckWait, want.AckWait))
	}
	if len(got.BackOff) > 0 {
		out = append(out, fmt.Sprintf("backoff: %v (configured none)", got.BackOff))
	}
	if got.MaxDeliver != want.MaxDeliver {
		out = append(out, fmt.Sprintf("max_deliver: %d (configured %d)", got.MaxDeliver, want.MaxDeliver))
	}
	gotFilters, wantFilters := consumerFilters(got), consumerFilters(want)
	slices.Sort(gotFilters)
	slices.Sort(wantFilters)
	if !slices.Equal(gotFilters, wantFilters) {
		out = append(out, fmt.Sprintf("filter_subjects: %s (the agent reads %s)", strings.Join(gotFilters, ","), strings.Join(wantFilters, ",")))
	}
	return out
}

// consumerFilters returns the subjects a consumer is filtered on, however it was given.
func consumerFilters(c jetstream.ConsumerConfig) []string {
	out := slices.Clone(c.FilterSubjects)
	if c.FilterSubject != "" {
		out = append(out, c.FilterSubject)
	}
	if out == nil {
		out = []string{}
	}
	return out
}

// consumerAddCommand is the nats CLI command that creates the consumer the agent would create.
func consumerAddCommand(stream string, want jetstream.ConsumerConfig) string {
	var b strings.Builder
	fmt.Fprintf(&b, "nats consumer add %s %s --pull --ack explicit --deliver all", stream, want.Durable)
	for _, f := range want.FilterSubjects {
		fmt.Fprintf(&b, " --filter %s", f)
	}
	fmt.Fprintf(&b, " --wait %s --max-deliver %d --max-pending %d --defaults", want.AckWait, want.MaxDeliver, want.MaxAckPending)
	return b.String()
}
