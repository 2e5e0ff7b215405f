package agent

import (
	"bytes"
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"
)

// bindFixture is a real in-process JetStream holding an operator's change stream.
func bindFixture(t *testing.T) jetstream.JetStream {
	t.Helper()
	js, _ := embeddedJetStream(t)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "CHANGES", Subjects: []string{"rotation.changes.>"}}); err != nil {
		t.Fatal(err)
	}
	return js
}

// What the agent would create with the default configuration.
var wantConsumer = jetstream.ConsumerConfig{
	Durable:        "rotation-agent",
	FilterSubjects: []string{"rotation.changes.completed", "rotation.changes.planned"},
	AckPolicy:      jetstream.AckExplicitPolicy,
	AckWait:        2 * time.Minute,
	MaxDeliver:     10,
	MaxAckPending:  256,
}

// In bind mode the operator's consumer is used as it is: never created, never updated; its
// own timing applies, differences are warned about, and consumers the agent cannot work with
// are refused with a reason.
func TestBindConsumer(t *testing.T) {
	cases := []struct {
		name     string
		operator *jetstream.ConsumerConfig // nil: none exists
		push     bool
		err      string
		settings consumerSettings
		warnings []string
	}{
		{
			name: "missing",
			err:  "bind to consumer rotation-agent on stream CHANGES: it does not exist; with ROTATION_AGENT_NATS_BIND_STREAMS=true the agent creates nothing, so create it first, for example: nats consumer add CHANGES rotation-agent --pull --ack explicit --deliver all --filter rotation.changes.completed --filter rotation.changes.planned --wait 2m0s --max-deliver 10 --max-pending 256 --defaults",
		},
		{
			name:     "same settings",
			operator: &wantConsumer,
			settings: consumerSettings{ackWait: 2 * time.Minute, maxDeliver: 10},
		},
		{
			name: "operator's own settings",
			operator: &jetstream.ConsumerConfig{Durable: "rotation-agent", FilterSubject: "rotation.changes.completed",
				AckPolicy: jetstream.AckExplicitPolicy, AckWait: 45 * time.Second, MaxDeliver: 3},
			settings: consumerSettings{ackWait: 45 * time.Second, maxDeliver: 3},
			warnings: []string{"ack_wait: 45s (configured 2m0s)", "max_deliver: 3 (configured 10)",
				"filter_subjects: rotation.changes.completed (the agent reads rotation.changes.completed,rotation.changes.planned)"},
		},
		{
			name: "unlimited deliveries with back-off",
			operator: &jetstream.ConsumerConfig{Durable: "rotation-agent", FilterSubjects: wantConsumer.FilterSubjects,
				AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: -1, BackOff: []time.Duration{10 * time.Second, time.Minute}},
			settings: consumerSettings{ackWait: 10 * time.Second, maxDeliver: math.MaxInt},
			warnings: []string{"ack_wait: 10s (configured 2m0s)", "backoff: [10s 1m0s] (configured none)", "max_deliver: -1 (configured 10)"},
		},
		{
			name:     "no acknowledgement",
			operator: &jetstream.ConsumerConfig{Durable: "rotation-agent", AckPolicy: jetstream.AckNonePolicy},
			err:      "bind to consumer rotation-agent on stream CHANGES: its ack policy is AckNone; the agent needs explicit acknowledgement",
		},
		{
			name:     "push consumer",
			operator: &jetstream.ConsumerConfig{Durable: "rotation-agent", AckPolicy: jetstream.AckExplicitPolicy, DeliverSubject: "somewhere"},
			err:      "bind to consumer rotation-agent on stream CHANGES: it is a push consumer; the agent needs a pull consumer",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			js := bindFixture(t)
			ctx := context.Background()
			var before *jetstream.ConsumerInfo
			if tc.operator != nil {
				if tc.operator.DeliverSubject != "" {
					if _, err := js.CreateOrUpdatePushConsumer(ctx, "CHANGES", *tc.operator); err != nil {
						t.Fatal(err)
					}
				} else if _, err := js.CreateConsumer(ctx, "CHANGES", *tc.operator); err != nil {
					t.Fatal(err)
				}
				info, err := consumerInfo(ctx, js)
				if err != nil {
					t.Fatal(err)
				}
				before = info
			}
			var logged bytes.Buffer
			log := logrus.New()
			log.SetOutput(&logged)
			log.SetFormatter(&logrus.JSONFormatter{})

			cons, settings, err := bindConsumer(ctx, js, "CHANGES", wantConsumer, log)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error = %v\nwant    %s", err, tc.err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if cons == nil || settings != tc.settings {
					t.Errorf("settings = %+v, want %+v", settings, tc.settings)
				}
			}
			for _, w := range tc.warnings {
				if !strings.Contains(logged.String(), w) {
					t.Errorf("no warning about %q in the log:\n%s", w, logged.String())
				}
			}
			if n := strings.Count(logged.String(), `"level":"warning"`); n != len(tc.warnings) {
				t.Errorf("%d warnings, want %d:\n%s", n, len(tc.warnings), logged.String())
			}
			after, err := consumerInfo(ctx, js)
			switch {
			case before == nil && err == nil:
				t.Errorf("the agent created consumer %+v", after.Config)
			case before != nil && err != nil:
				t.Errorf("the operator's consumer is gone: %v", err)
			case before != nil && !sameConsumer(before.Config, after.Config):
				t.Errorf("the agent changed the operator's consumer:\nbefore %+v\nafter  %+v", before.Config, after.Config)
			}
		})
	}
}

func consumerInfo(ctx context.Context, js jetstream.JetStream) (*jetstream.ConsumerInfo, error) {
	c, err := js.Consumer(ctx, "CHANGES", "rotation-agent")
	if errors.Is(err, jetstream.ErrNotPullConsumer) {
		pc, err := js.PushConsumer(ctx, "CHANGES", "rotation-agent")
		if err != nil {
			return nil, err
		}
		return pc.CachedInfo(), nil
	}
	if err != nil {
		return nil, err
	}
	return c.CachedInfo(), nil
}

func sameConsumer(a, b jetstream.ConsumerConfig) bool {
	return a.AckWait == b.AckWait && a.MaxDeliver == b.MaxDeliver && a.AckPolicy == b.AckPolicy &&
		strings.Join(consumerFilters(a), ",") == strings.Join(consumerFilters(b), ",") &&
		a.Description == b.Description && a.MaxAckPending == b.MaxAckPending && len(a.BackOff) == len(b.BackOff)
}
