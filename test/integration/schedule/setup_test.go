// Package schedule runs the agent's own work against a real in-process Vault core and a real
// NATS JetStream server: post-change reviews of emergency changes and their overdue clean-up,
// manual rotation requests and their authorisation, rotations deferred to a maintenance
// window, and scheduled rotations. Time is a fake clock the tests move; nothing sleeps for
// a deadline.
package schedule

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rotation-agent/rotation-agent/agent"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

const waitEvidence = 60 * time.Second

// agentBinary is the rotation-agent command, built once for the command-line tests.
var agentBinary string

func TestMain(m *testing.M) {
	harness.RunWithAgent(m, &agentBinary)
}

// config is an agent configuration for the tests: a short scheduler interval and no jitter,
// so due work is found within a fraction of a second of the fake clock reaching it.
func config(t *testing.T, v *harness.Vault, n *harness.NATS) agent.Config {
	t.Helper()
	cfg := harness.AgentConfig(t, v, v.AgentToken(t), n)
	cfg.Schedule.Interval = 200 * time.Millisecond
	cfg.Schedule.Jitter = 0
	return cfg
}

// writeFile writes content to a file in a temporary directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// changeEvent is a change-completed event of the given type touching services.
func changeEvent(t *testing.T, changeID string, typ events.ChangeType, services []string, envs []string, granted ...events.CredentialRef) []byte {
	t.Helper()
	now := time.Now().UTC()
	ev := events.ChangeEvent{
		SpecVersion: events.SpecVersion, ID: "evt-" + changeID, Source: "itsm://test", Type: events.TypeChangeCompleted,
		Time: now, Data: events.Change{
			ID: changeID, Type: typ, State: "implemented", CompletedAt: now, Requester: events.Person{ID: "u-1"},
			Targets: events.Targets{Services: services, Environments: envs}, Granted: granted,
		},
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// records collects the review records published on the bus.
type records struct {
	mu  sync.Mutex
	all []events.Envelope[events.Review]
}

func watchReviews(t *testing.T, n *harness.NATS) *records {
	t.Helper()
	r := &records{}
	nc := n.Connect(t)
	if _, err := nc.Subscribe("rotation.reviews.>", func(m *nats.Msg) {
		var env events.Envelope[events.Review]
		if err := json.Unmarshal(m.Data, &env); err == nil {
			r.mu.Lock()
			r.all = append(r.all, env)
			r.mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return r
}

// wait returns the first record of changeID with the given event, failing after a minute.
func (r *records) wait(t *testing.T, changeID string, event events.ReviewEvent) events.Envelope[events.Review] {
	t.Helper()
	deadline := time.Now().Add(waitEvidence)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, env := range r.all {
			if env.Data.ChangeID == changeID && env.Data.Event == event {
				r.mu.Unlock()
				return env
			}
		}
		r.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no %s review record for %s", event, changeID)
	return events.Envelope[events.Review]{}
}

// stored returns the data of every message the stream holds on subject.
func stored(t *testing.T, n *harness.NATS, stream, subject string) [][]byte {
	t.Helper()
	js, err := jetstream.New(n.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		batch, err := cons.FetchNoWait(100)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			out = append(out, m.Data())
			got++
		}
		if got == 0 {
			return out
		}
	}
}

// request sends a NATS request and decodes the reply into out.
func request(t *testing.T, nc *nats.Conn, subject string, body []byte, header nats.Header, out any) {
	t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data, msg.Header = body, header
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	resp, err := nc.RequestMsg(msg, 30*time.Second)
	if err != nil {
		t.Fatalf("request on %s: %v", subject, err)
	}
	if err := json.Unmarshal(resp.Data, out); err != nil {
		t.Fatalf("reply on %s: %v: %s", subject, err, resp.Data)
	}
}

// tokenAccessor creates a token as root, as an emergency change would have granted it, and
// returns its accessor.
func tokenAccessor(t *testing.T, v *harness.Vault) string {
	t.Helper()
	s, err := v.Root.Logical().Write("auth/token/create", map[string]any{"policies": []string{"default"}, "ttl": "48h", "display_name": "emergency-access"})
	if err != nil {
		t.Fatal(err)
	}
	return s.Auth.Accessor
}

// tokenAlive reports whether Vault still knows the token behind an accessor.
func tokenAlive(t *testing.T, v *harness.Vault, accessor string) bool {
	t.Helper()
	_, err := v.Root.Logical().Write("auth/token/lookup-accessor", map[string]any{"accessor": accessor})
	if err != nil && !strings.Contains(err.Error(), "invalid accessor") && !strings.Contains(err.Error(), "400") {
		t.Fatalf("lookup accessor: %v", err)
	}
	return err == nil
}

func decodeEvidence(t *testing.T, raw []byte) events.Envelope[events.Evidence] {
	t.Helper()
	var env events.Envelope[events.Evidence]
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("evidence is not JSON: %v", err)
	}
	return env
}

// waitKey waits until the journal bucket holds a key matching filter (the scheduler has seen
// a schedule, for example).
func waitKey(t *testing.T, n *harness.NATS, bucket, filter string) {
	t.Helper()
	js, err := jetstream.New(n.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitEvidence)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		kv, err := js.KeyValue(ctx, bucket)
		if err == nil {
			if lister, err := kv.ListKeysFiltered(ctx, filter); err == nil {
				for range lister.Keys() {
					cancel()
					return
				}
			}
		}
		cancel()
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no key %s in %s", filter, bucket)
}
