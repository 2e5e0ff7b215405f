package integration

import (
	"context"
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

// With operator-managed streams the agent binds to what exists and creates nothing; when they
// are missing it says which one.
func TestBindToOperatorManagedStreams(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	token := v.AgentToken(t)

	p := harness.StartProcess(t, agentBinary, processEnv(v, token, n, "ROTATION_AGENT_NATS_BIND_STREAMS=true"))
	if code := p.Wait(t, 30*time.Second); code != 1 || !strings.Contains(p.Output.String(), "bind to stream ROTATION_CHANGES") {
		t.Errorf("missing operator stream: exit %d, output %q", code, p.Output.String())
	}

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
	cfg := harness.AgentConfig(t, v, token, n)
	cfg.NATS.BindStreams = true
	harness.StartAgent(t, cfg)
	bus := harness.WatchBus(t, n)
	v.PutKV(t, "bind/app", map[string]any{"password": "canary-bind-app-77"})
	bus.Publish(t, harness.ChangeEvent(t, "CHG-BIND-1", kvRef("bind/app")), "")
	if ev := bus.WaitEvidence(t, "CHG-BIND-1", waitEvidence); ev.Data.Status != events.StatusReconciled {
		t.Fatalf("evidence: %+v", ev.Data)
	}
	info, err := js.Stream(ctx, "ROTATION_CHANGES")
	if err != nil {
		t.Fatal(err)
	}
	if got := info.CachedInfo().Config.MaxAge; got != 72*time.Hour {
		t.Errorf("the agent changed the operator's stream: MaxAge %s", got)
	}
}
