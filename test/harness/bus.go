package harness

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rotation-agent/rotation-agent/events"
)

// Bus records every message on a NATS server, so a test can wait for evidence and rejections
// and scan everything that crossed the bus for leaked secrets.
type Bus struct {
	mu       sync.Mutex
	all      []*nats.Msg
	changed  chan struct{}
	subjects events.Subjects
	js       jetstream.JetStream
}

// WatchBus subscribes to every subject of n, including JetStream API and key-value traffic.
func WatchBus(t testing.TB, n *NATS) *Bus {
	t.Helper()
	return WatchBusWithPrefix(t, n, events.DefaultSubjectPrefix)
}

// WatchBusWithPrefix is WatchBus for an agent configured with another subject prefix: it
// publishes changes and looks for evidence and rejections on subjects under prefix.
func WatchBusWithPrefix(t testing.TB, n *NATS, prefix string) *Bus {
	t.Helper()
	nc := n.Connect(t)
	b := &Bus{changed: make(chan struct{}, 1), subjects: events.Subjects{Prefix: prefix}}
	if _, err := nc.Subscribe(">", func(m *nats.Msg) {
		b.mu.Lock()
		b.all = append(b.all, m)
		b.mu.Unlock()
		select {
		case b.changed <- struct{}{}:
		default:
		}
	}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	js, err := jetstream.New(n.Connect(t))
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	b.js = js
	return b
}

// Publish publishes a change-completed event the way an ITSM bridge does, with Nats-Msg-Id set.
func (b *Bus) Publish(t testing.TB, payload []byte, msgID string) {
	t.Helper()
	b.PublishTo(t, b.subjects.ChangeCompleted(), payload, msgID)
}

// PublishTo publishes payload on subject through JetStream.
func (b *Bus) PublishTo(t testing.TB, subject string, payload []byte, msgID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := []jetstream.PublishOpt{}
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	if _, err := b.js.Publish(ctx, subject, payload, opts...); err != nil {
		t.Fatalf("publish change: %v", err)
	}
}

// Payloads returns the data and headers of every message seen so far, as text.
func (b *Bus) Payloads() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, 0, len(b.all))
	for _, m := range b.all {
		var sb strings.Builder
		sb.WriteString(m.Subject)
		for k, vs := range m.Header {
			sb.WriteString(" " + k + ":" + strings.Join(vs, ","))
		}
		sb.WriteString(" ")
		sb.Write(m.Data)
		out = append(out, sb.String())
	}
	return out
}

// Evidence returns every evidence envelope published for changeID so far.
func (b *Bus) Evidence(t testing.TB, changeID string) []events.Envelope[events.Evidence] {
	t.Helper()
	subject := b.subjects.Evidence(changeID)
	var out []events.Envelope[events.Evidence]
	for _, m := range b.messages(subject) {
		var env events.Envelope[events.Evidence]
		if err := json.Unmarshal(m.Data, &env); err != nil {
			t.Fatalf("evidence on %s is not JSON: %v", subject, err)
		}
		out = append(out, env)
	}
	return out
}

// Impact returns the impact reports published for changeID so far.
func (b *Bus) Impact(t testing.TB, changeID string) []events.Envelope[events.Impact] {
	t.Helper()
	var out []events.Envelope[events.Impact]
	for _, m := range b.messages(b.subjects.Impact(changeID)) {
		var env events.Envelope[events.Impact]
		if err := json.Unmarshal(m.Data, &env); err != nil {
			t.Fatalf("impact report is not JSON: %v", err)
		}
		out = append(out, env)
	}
	return out
}

// WaitImpact waits for the impact report of changeID.
func (b *Bus) WaitImpact(t testing.TB, changeID string, timeout time.Duration) events.Envelope[events.Impact] {
	t.Helper()
	b.waitFor(t, timeout, "impact report for "+changeID, func() bool { return len(b.Impact(t, changeID)) > 0 })
	return b.Impact(t, changeID)[0]
}

// Rejections returns every rejection envelope published so far.
func (b *Bus) Rejections(t testing.TB) []events.Envelope[events.Rejection] {
	t.Helper()
	var out []events.Envelope[events.Rejection]
	for _, m := range b.messages(b.subjects.Rejections()) {
		var env events.Envelope[events.Rejection]
		if err := json.Unmarshal(m.Data, &env); err != nil {
			t.Fatalf("rejection is not JSON: %v", err)
		}
		out = append(out, env)
	}
	return out
}

// WaitEvidence waits until evidence for changeID was published and returns the first one.
func (b *Bus) WaitEvidence(t testing.TB, changeID string, timeout time.Duration) events.Envelope[events.Evidence] {
	t.Helper()
	b.waitFor(t, timeout, "evidence for "+changeID, func() bool { return len(b.Evidence(t, changeID)) > 0 })
	return b.Evidence(t, changeID)[0]
}

// WaitRejections waits until at least n rejections were published and returns them all.
func (b *Bus) WaitRejections(t testing.TB, n int, timeout time.Duration) []events.Envelope[events.Rejection] {
	t.Helper()
	b.waitFor(t, timeout, "rejections", func() bool { return len(b.Rejections(t)) >= n })
	return b.Rejections(t)
}

// WaitEvidenceCount waits until at least n evidence records were published for changeID (the
// first rotation and a later retirement, say) and returns them all, in the order published.
func (b *Bus) WaitEvidenceCount(t testing.TB, changeID string, n int, timeout time.Duration) []events.Envelope[events.Evidence] {
	t.Helper()
	b.waitFor(t, timeout, strconv.Itoa(n)+" evidence records for "+changeID, func() bool { return len(b.Evidence(t, changeID)) >= n })
	return b.Evidence(t, changeID)
}

func (b *Bus) messages(subject string) []*nats.Msg {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*nats.Msg
	for _, m := range b.all {
		if m.Subject == subject {
			out = append(out, m)
		}
	}
	return out
}

func (b *Bus) waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case <-b.changed:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}
