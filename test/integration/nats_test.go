package integration

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// Losing NATS is logged and reconnected, not fatal: after a restart of the server the agent
// goes on consuming from the same durable consumer.
func TestAgentSurvivesNATSRestart(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	v.PutKV(t, "restart/before", map[string]any{"password": "canary-restart-before-1"})
	v.PutKV(t, "restart/after", map[string]any{"password": "canary-restart-after-22"})
	ra := harness.StartAgent(t, harness.AgentConfig(t, v, v.AgentToken(t), n))

	bus := harness.WatchBus(t, n)
	bus.Publish(t, harness.ChangeEvent(t, "CHG-NR-1", kvRef("restart/before")), "")
	bus.WaitEvidence(t, "CHG-NR-1", waitEvidence)

	n.Restart(500 * time.Millisecond)
	bus = harness.WatchBus(t, n) // the watcher's own connection was made for the first server
	bus.Publish(t, harness.ChangeEvent(t, "CHG-NR-2", kvRef("restart/after")), "")
	if ev := bus.WaitEvidence(t, "CHG-NR-2", 60*time.Second); ev.Data.Status != events.StatusReconciled {
		t.Fatalf("evidence after NATS restart: %+v", ev.Data)
	}
	log := ra.Log.String()
	if !strings.Contains(log, "nats disconnected") || !strings.Contains(log, "nats reconnected") {
		t.Errorf("the agent did not log the disconnect and the reconnect")
	}
}

// The agent authenticates to NATS with user and password, and refuses to start with wrong ones.
func TestNATSUserPassword(t *testing.T) {
	v := harness.StartVault(t)
	const user, password = "rotation-agent", "canary-nats-password-4c3b"
	n := harness.StartNATSWith(t, func(o *server.Options) { o.Username, o.Password = user, password })
	token := v.AgentToken(t)

	cfg := harness.AgentConfig(t, v, token, n)
	cfg.NATS.User, cfg.NATS.Password = user, "wrong-password-000"
	p := harness.StartProcess(t, agentBinary, processEnv(v, token, n, "ROTATION_AGENT_NATS_USER="+user, "ROTATION_AGENT_NATS_PASSWORD=wrong-password-000"))
	if code := p.Wait(t, 30*time.Second); code != 1 || !strings.Contains(p.Output.String(), "Authorization Violation") {
		t.Errorf("wrong NATS password: exit %d, output %q", code, p.Output.String())
	}

	cfg.NATS.Password = password
	ra := harness.StartAgent(t, cfg)
	nc, err := nats.Connect(n.URL, nats.UserInfo(user, password))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	evidence, err := nc.SubscribeSync("rotation.evidence.>")
	if err != nil {
		t.Fatal(err)
	}
	v.PutKV(t, "natsauth/app", map[string]any{"password": "canary-natsauth-app-9"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, "rotation.changes.completed", harness.ChangeEvent(t, "CHG-NA-1", kvRef("natsauth/app"))); err != nil {
		t.Fatal(err)
	}
	msg, err := evidence.NextMsg(waitEvidence)
	if err != nil {
		t.Fatalf("no evidence: %v\nlog:\n%s", err, ra.Log.String())
	}
	if !strings.Contains(string(msg.Data), `"status":"reconciled"`) {
		t.Errorf("evidence: %s", msg.Data)
	}
	ra.Stop(t)
	assertNoLeak(t, map[string]string{"nats password": password}, map[string][]string{"agent log": {ra.Log.String()}})
}

// With operator-managed streams, bucket and consumer the agent binds to what exists and
// creates or changes nothing; when one is missing it says which one, and what to create.
func TestBindToOperatorManagedStreams(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	token := v.AgentToken(t)
	bindEnv := processEnv(v, token, n, "ROTATION_AGENT_NATS_BIND_STREAMS=true")

	p := harness.StartProcess(t, agentBinary, bindEnv)
	if code := p.Wait(t, 30*time.Second); code != 1 {
		t.Errorf("missing operator stream: exit %d, output %q", code, p.Output.String())
	}
	assertOneErrorLine(t, p.Output.String(), "bind to stream ROTATION_CHANGES")

	js, err := jetstream.New(n.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The operator's own choices: other retention, three-day age limit.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ROTATION_CHANGES", Subjects: []string{"rotation.changes.>"}, MaxAge: 72 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ROTATION_EVIDENCE", Subjects: []string{"rotation.evidence.>", "rotation.rejections"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "ROTATION_JOURNAL"}); err != nil {
		t.Fatal(err)
	}

	// Streams and bucket exist, the consumer does not: the agent does not create it.
	p = harness.StartProcess(t, agentBinary, bindEnv)
	if code := p.Wait(t, 30*time.Second); code != 1 {
		t.Errorf("missing operator consumer: exit %d, output %q", code, p.Output.String())
	}
	assertOneErrorLine(t, p.Output.String(), "bind to consumer rotation-agent on stream ROTATION_CHANGES: it does not exist")
	assertOneErrorLine(t, p.Output.String(), "nats consumer add ROTATION_CHANGES rotation-agent --pull --ack explicit")
	if _, err := js.Consumer(ctx, "ROTATION_CHANGES", "rotation-agent"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("after the refused start the consumer lookup gives %v, want not found", err)
	}

	// The operator's consumer, with settings of its own.
	operator := jetstream.ConsumerConfig{
		Durable:        "rotation-agent",
		Description:    "managed by the messaging team",
		FilterSubjects: []string{"rotation.changes.completed", "rotation.changes.planned"},
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        45 * time.Second,
		MaxDeliver:     4,
		MaxAckPending:  16,
	}
	if _, err := js.CreateConsumer(ctx, "ROTATION_CHANGES", operator); err != nil {
		t.Fatal(err)
	}
	cfg := harness.AgentConfig(t, v, token, n)
	cfg.NATS.BindStreams = true
	ra := harness.StartAgent(t, cfg)
	bus := harness.WatchBus(t, n)
	v.PutKV(t, "bind/app", map[string]any{"password": "canary-bind-app-77"})
	wantKVChangeReconciled(t, bus, "CHG-BIND-1", "bind/app", "evidence")
	if got := v.KV(t, "bind/app", 0); got.VersionMetadata.Version != 2 || got.Data["password"] == "canary-bind-app-77" {
		t.Errorf("secret not rotated: version %d", got.VersionMetadata.Version)
	}
	ra.Stop(t)

	info, err := js.Stream(ctx, "ROTATION_CHANGES")
	if err != nil {
		t.Fatal(err)
	}
	if got := info.CachedInfo().Config.MaxAge; got != 72*time.Hour {
		t.Errorf("the agent changed the operator's stream: MaxAge %s", got)
	}
	cons, err := js.Consumer(ctx, "ROTATION_CHANGES", "rotation-agent")
	if err != nil {
		t.Fatal(err)
	}
	got := cons.CachedInfo().Config
	if got.Description != operator.Description || got.AckWait != operator.AckWait || got.MaxDeliver != operator.MaxDeliver || got.MaxAckPending != operator.MaxAckPending {
		t.Errorf("the agent changed the operator's consumer: %+v", got)
	}
	log := ra.Log.String()
	for _, want := range []string{
		"bound to operator-managed consumer; using its settings",
		"ack_wait: 45s (configured 5s)",
		"max_deliver: 4 (configured 10)",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the agent log does not say %q", want)
		}
	}
}

// assertOneErrorLine checks that output has exactly one "rotation-agent: " error line, that it
// mentions want, and that there is no stack trace.
// want may list alternatives separated by "|": the line must mention one of them.
func assertOneErrorLine(t *testing.T, output, want string) {
	t.Helper()
	var errLines []string
	for _, line := range strings.Split(strings.TrimSpace(output), "\n") {
		if strings.HasPrefix(line, "rotation-agent: ") {
			errLines = append(errLines, line)
		}
	}
	mentions := func(line string) bool {
		for _, alt := range strings.Split(want, "|") {
			if strings.Contains(line, alt) {
				return true
			}
		}
		return false
	}
	if len(errLines) != 1 || !mentions(errLines[0]) {
		t.Errorf("want one error line mentioning %q, got %q", want, errLines)
	}
	if strings.Contains(output, "goroutine ") || strings.Contains(output, "panic") {
		t.Errorf("output has a stack trace:\n%s", output)
	}
}
