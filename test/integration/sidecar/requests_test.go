package sidecar

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// A sidecar answers none of the central agent's requests: manual rotations, reviews, evidence
// and the closure gate read the central journal, so with only a sidecar on the bus a request
// finds no responder (and publishes no rejection), and once the central agent runs it answers.
func TestSidecarLeavesRequestsToTheCentralAgent(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	token := v.AgentToken(t)
	dir := t.TempDir()
	a := &app{t: t, file: filepath.Join(dir, "db.env"), confirm: true, oldReadable: func() bool { return true }}
	srv := httptest.NewServer(a.handler())
	defer srv.Close()
	harness.StartAgent(t, sidecarConfig(t, v, token, n, srv.URL, dir))

	subjects := events.Subjects{Prefix: events.DefaultSubjectPrefix}
	nc := n.Connect(t)
	// No harness.WatchBus here: its subscription to every subject would be a responder.
	rejections, err := nc.SubscribeSync(subjects.Rejections())
	if err != nil {
		t.Fatal(err)
	}
	requests := map[string][]byte{
		subjects.Rotate():       []byte(`{"request_id":"r-1","selector":{"services":["payments"]},"reason":"x"}`),
		subjects.ReviewAttest(): []byte(`{"change_id":"CHG-SC-R"}`),
		subjects.ReviewList():   []byte(`{}`),
		subjects.EvidenceGet():  []byte(`{"change_id":"CHG-SC-R"}`),
		subjects.ClosureCheck(): []byte(`{"change_id":"CHG-SC-R"}`),
	}
	for subject, body := range requests {
		if _, err := nc.Request(subject, body, 30*time.Second); !errors.Is(err, nats.ErrNoResponders) {
			t.Errorf("%s with only a sidecar running: error %v, want no responders", subject, err)
		}
	}

	central := harness.AgentConfig(t, v, token, n)
	central.AgentID = "central"
	harness.StartAgent(t, central)
	for subject, body := range requests {
		if _, err := nc.Request(subject, body, 30*time.Second); err != nil {
			t.Errorf("%s with the central agent running: %v", subject, err)
		}
	}
	// The first rejection on the bus is the central agent's, of the unsigned rotate request:
	// the sidecar published none.
	msg, err := rejections.NextMsg(waitEvidence)
	if err != nil {
		t.Fatalf("no rejection of the unsigned rotate request: %v", err)
	}
	var r events.Envelope[events.Rejection]
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		t.Fatal(err)
	}
	if r.Data.Agent.ID != "central" || r.Data.Subject != subjects.Rotate() {
		t.Errorf("first rejection is %+v, want the central agent's of %s", r.Data, subjects.Rotate())
	}
}
