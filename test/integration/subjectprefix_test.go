package integration

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// With a subject prefix of its own the agent reads changes, and publishes evidence and
// rejections, only under that prefix: its streams capture the prefixed subjects, and nothing
// it publishes lands on the default rotation.* subjects. A change sent on the default subject
// is not acted on.
func TestSubjectPrefixEndToEnd(t *testing.T) {
	const prefix = "acme.rotation"
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	v.PutKV(t, "prefix/app", map[string]any{"password": "canary-prefix-app-31"})
	v.PutKV(t, "prefix/default", map[string]any{"password": "canary-prefix-default-32"})
	cfg := harness.AgentConfig(t, v, v.AgentToken(t), n)
	cfg.SubjectPrefix = prefix
	ra := harness.StartAgent(t, cfg)
	bus := harness.WatchBusWithPrefix(t, n, prefix)

	// A change on the default subject, which no stream captures now: it must not be acted on.
	nc := n.Connect(t)
	if err := nc.Publish("rotation.changes.completed", harness.ChangeEvent(t, "CHG-PFX-DEFAULT", kvRef("prefix/default"))); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	bus.PublishTo(t, prefix+".changes.completed", []byte(`{"specversion": "1.0", not json`), "")
	bus.PublishTo(t, prefix+".changes.completed", harness.ChangeEvent(t, "CHG-PFX-1", kvRef("prefix/app")), "")
	ev := bus.WaitEvidence(t, "CHG-PFX-1", waitEvidence) // on acme.rotation.evidence.CHG-PFX-1
	if ev.Data.Status != events.StatusReconciled {
		t.Fatalf("evidence: %+v", ev.Data)
	}
	rejections := bus.WaitRejections(t, 1, waitEvidence) // on acme.rotation.rejections
	if rejections[0].Data.ReasonCode != events.ReasonMalformedJSON || rejections[0].Data.Subject != prefix+".changes.completed" {
		t.Errorf("rejection %+v, want %s of a message on %s.changes.completed", rejections[0].Data, events.ReasonMalformedJSON, prefix)
	}
	ra.Stop(t)

	if got := v.KV(t, "prefix/app", 0).VersionMetadata.Version; got != 2 {
		t.Errorf("prefix/app at version %d, want 2", got)
	}
	if got := v.KV(t, "prefix/default", 0).VersionMetadata.Version; got != 1 {
		t.Errorf("the change on the default subject was acted on: prefix/default at version %d", got)
	}
	if got := bus.Evidence(t, "CHG-PFX-DEFAULT"); len(got) != 0 {
		t.Errorf("evidence for the change on the default subject: %+v", got)
	}

	// Everything the agent published is under the prefix; the only rotation.* message is the
	// test's own change on the default subject.
	var onDefault []string
	for _, m := range bus.Payloads() {
		subject, _, _ := strings.Cut(m, " ")
		if strings.HasPrefix(subject, "rotation.") && subject != "rotation.changes.completed" {
			onDefault = append(onDefault, subject)
		}
	}
	if len(onDefault) > 0 {
		t.Errorf("messages on default subjects: %q", onDefault)
	}

	js, err := jetstream.New(n.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for stream, want := range map[string]string{"ROTATION_CHANGES": prefix + ".changes.>", "ROTATION_EVIDENCE": prefix + ".evidence.>"} {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		subjects := s.CachedInfo().Config.Subjects
		if !slices.Contains(subjects, want) {
			t.Errorf("stream %s captures %q, want %s among them", stream, subjects, want)
		}
		for _, subj := range subjects {
			if !strings.HasPrefix(subj, prefix+".") {
				t.Errorf("stream %s captures %s, outside the prefix", stream, subj)
			}
		}
	}
}
