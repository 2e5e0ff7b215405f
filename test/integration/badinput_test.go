package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// Bad input is refused with a reason on the bus, is not redelivered, and the agent goes on
// to the next event.
func TestBadInputIsRejectedAndAgentContinues(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	cfg := harness.AgentConfig(t, v, v.AgentToken(t), n)
	cfg.MaxEventBytes = 4096
	harness.StartAgent(t, cfg)
	v.PutKV(t, "after/bad", map[string]any{"password": "canary-after-bad-1234"})

	valid := string(harness.ChangeEvent(t, "CHG0100", kvRef("after/bad")))
	bad := []struct {
		payload string
		reason  events.ReasonCode
		mention string
	}{
		{`{"specversion": "1.0", "id": `, events.ReasonMalformedJSON, "JSON"},
		{strings.Replace(valid, events.TypeChangeCompleted, "com.example.unknown", 1), events.ReasonUnknownType, "com.example.unknown"},
		{strings.Replace(valid, `"change_id":"CHG0100",`, "", 1), events.ReasonInvalid, "change_id"},
		{valid[:len(valid)-1] + `,"padding":"` + strings.Repeat("x", 5000) + `"}`, events.ReasonTooLarge, "4096"},
	}
	for _, b := range bad {
		bus.Publish(t, []byte(b.payload), "")
	}
	bus.Publish(t, []byte(valid), "")

	ev := bus.WaitEvidence(t, "CHG0100", waitEvidence)
	if ev.Data.Status != events.StatusReconciled {
		t.Errorf("valid event after bad ones: status %s", ev.Data.Status)
	}
	rejections := bus.WaitRejections(t, len(bad), waitEvidence)
	if len(rejections) != len(bad) {
		t.Fatalf("got %d rejections, want %d", len(rejections), len(bad))
	}
	for i, b := range bad {
		r := rejections[i].Data
		if r.ReasonCode != b.reason || !strings.Contains(r.Reason, b.mention) {
			t.Errorf("rejection %d = %s %q, want %s mentioning %q", i, r.ReasonCode, r.Reason, b.reason, b.mention)
		}
		if r.PayloadSHA256 == "" || r.StreamSequence == 0 || r.Agent.ID != "test-agent" {
			t.Errorf("rejection %d lacks transport details: %+v", i, r)
		}
	}

	// Nothing is left pending or redelivered: the rejected messages were terminated.
	js, err := jetstream.New(n.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := js.Consumer(ctx, cfg.NATS.ChangeStream, cfg.NATS.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	// The agent acknowledges after publishing evidence, so the last ack may trail the
	// evidence by a moment: wait for it rather than racing it.
	var info *jetstream.ConsumerInfo
	for {
		info, err = cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == 0 && info.NumPending == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("consumer still has ack pending %d, pending %d", info.NumAckPending, info.NumPending)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if info.NumRedelivered != 0 {
		t.Errorf("consumer redelivered %d messages; rejected messages must be terminated", info.NumRedelivered)
	}
}
