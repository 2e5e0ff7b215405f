package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/evidence"
)

// chainFixture is a real in-process JetStream with the agent's streams and journal bucket.
type chainFixture struct {
	js   jetstream.JetStream
	kv   jetstream.KeyValue
	cfg  NATSConfig
	subj events.Subjects
	keys evidence.Keyring
	sign evidence.Signer
}

func newChainFixture(t *testing.T) *chainFixture {
	t.Helper()
	js, cfg := embeddedJetStream(t)
	subj := events.Subjects{Prefix: events.DefaultSubjectPrefix}
	res, err := provision(context.Background(), js, cfg, subj, false, logrus.New())
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer := evidence.NewFileSigner(key)
	pubs, _ := signer.PublicKeys(context.Background())
	return &chainFixture{js: js, kv: res.journal, cfg: cfg, subj: subj, keys: evidence.Keyring{Keys: pubs}, sign: signer}
}

func (f *chainFixture) sealer(agentID string) *sealer {
	log := logrus.New()
	log.SetOutput(io.Discard)
	return &sealer{js: f.js, kv: f.kv, signer: f.sign, subjects: f.subj, stream: f.cfg.EvidenceStream, agentID: agentID, log: log}
}

func (f *chainFixture) export(t *testing.T) (evidence.Report, int) {
	t.Helper()
	var buf bytes.Buffer
	n, err := ExportEvidence(context.Background(), f.js, f.cfg.EvidenceStream, f.subj, time.Time{}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := evidence.Verify(&buf, f.keys)
	if err != nil {
		t.Fatal(err)
	}
	return rep, n
}

func unsealed(agentID, changeID string) events.Record {
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	return events.Record{SpecVersion: events.SpecVersion, ID: "evidence:" + changeID + ":e", Source: "rotation-agent/" + agentID,
		Type: events.TypeEvidence, Subject: changeID, Time: at,
		Data: events.Evidence{SchemaVersion: 1, ChangeID: changeID, EventID: "e", ChangeType: events.ChangeNormal, Trigger: events.TriggerEvent,
			Agent: events.AgentInfo{ID: agentID, Version: "t"}, Status: events.StatusNoCredentials, StartedAt: at, FinishedAt: at,
			Credentials: []events.CredentialEvidence{}}}
}

func TestSealerChainsEachAgentAndRepublishesSealedRecordsAsTheyAre(t *testing.T) {
	f := newChainFixture(t)
	ctx := context.Background()
	a, b := f.sealer("agent-a"), f.sealer("agent-b")
	r1, err := a.publish(ctx, unsealed("agent-a", "CHG1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.publish(ctx, unsealed("agent-b", "CHG2")); err != nil {
		t.Fatal(err)
	}
	r3, err := a.publish(ctx, unsealed("agent-a", "CHG3"))
	if err != nil {
		t.Fatal(err)
	}
	line1, _ := events.Canonical(r1)
	if r1.Data.Chain.Sequence != 1 || r1.Data.Chain.PreviousSHA256 != events.GenesisHash ||
		r3.Data.Chain.Sequence != 2 || r3.Data.Chain.PreviousSHA256 != events.RecordHash(line1) {
		t.Fatalf("chain links: %+v then %+v", r1.Data.Chain, r3.Data.Chain)
	}
	// A sealed record (from the journal) is published with the same bytes: de-duplicated.
	if again, err := a.publish(ctx, r1); err != nil || again.Data.Chain.Sequence != 1 {
		t.Fatalf("re-publish: %+v, %v", again.Data.Chain, err)
	}
	rep, n := f.export(t)
	if n != 3 || !rep.OK || len(rep.Chains) != 2 {
		t.Fatalf("export of %d records: %+v", n, rep)
	}
}

func TestSealerStepsBackWhenTheStreamAlreadyHoldsTheRecord(t *testing.T) {
	f := newChainFixture(t)
	ctx := context.Background()
	s := f.sealer("agent-a")
	first, err := s.publish(ctx, unsealed("agent-a", "CHG1"))
	if err != nil {
		t.Fatal(err)
	}
	// The same change's record built again (its journal copy was lost): the stream keeps the
	// first one, the chain steps back, and the caller gets the stored record.
	rebuilt := unsealed("agent-a", "CHG1")
	rebuilt.Data.FinishedAt = rebuilt.Data.FinishedAt.Add(time.Minute)
	got, err := s.publish(ctx, rebuilt)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := events.Canonical(first)
	if line, _ := events.Canonical(got); !bytes.Equal(line, want) {
		t.Errorf("publish of a duplicate returned\n%s\nwant the stored\n%s", line, want)
	}
	next, err := s.publish(ctx, unsealed("agent-a", "CHG2"))
	if err != nil || next.Data.Chain.Sequence != 2 {
		t.Fatalf("next record: %+v, %v; want sequence 2", next.Data.Chain, err)
	}
	if rep, n := f.export(t); n != 2 || !rep.OK {
		t.Errorf("export of %d records: %+v", n, rep)
	}
}

func TestSealerRefusesACorruptPendingRecord(t *testing.T) {
	f := newChainFixture(t)
	ctx := context.Background()
	s := f.sealer("agent-a")
	raw := []byte(`{"sequence":1,"sha256":"00","record_id":"evidence:X:e","subject":"rotation.evidence.X","record":{"a":1},"pending":true}`)
	if _, err := f.kv.Create(ctx, chainKey("agent-a"), raw); err != nil {
		t.Fatal(err)
	}
	if _, err := s.publish(ctx, unsealed("agent-a", "CHG1")); err == nil {
		t.Fatal("published over a chain head whose record does not match its hash")
	}
}

// An agent that reserved a record and died before publishing it, while another agent published
// its own record with the same id (a review step or a redelivered change handled elsewhere),
// does not chain its copy: the stream keeps the other agent's record, and the first agent's
// chain goes on from the link before its reserved record, so the export verifies.
func TestSealerStepsBackWhenAPendingRecordLostToAnotherAgent(t *testing.T) {
	f := newChainFixture(t)
	ctx := context.Background()
	a, b := f.sealer("agent-a"), f.sealer("agent-b")
	first, err := a.publish(ctx, unsealed("agent-a", "CHG1"))
	if err != nil {
		t.Fatal(err)
	}
	// Agent a reserves its record of CHG2 in its chain head, then dies.
	head, rev, err := a.head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reserved := unsealed("agent-a", "CHG2")
	reserved.Data.Chain = &events.ChainLink{Sequence: head.Sequence + 1, PreviousSHA256: head.SHA256}
	sign := func(msg []byte) (events.Signature, error) { return f.sign.Sign(ctx, msg) }
	_, line, err := evidence.Seal(sign, reserved)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.putHead(ctx, chainHead{Sequence: 2, SHA256: events.RecordHash(line), RecordID: reserved.ID,
		Subject: f.subj.Evidence("CHG2"), Record: line, Pending: true}, rev); err != nil {
		t.Fatal(err)
	}
	// Agent b publishes the same record id with its own content.
	theirs, err := b.publish(ctx, unsealed("agent-b", "CHG2"))
	if err != nil {
		t.Fatal(err)
	}
	// Agent a comes back and publishes its next record.
	next, err := a.publish(ctx, unsealed("agent-a", "CHG3"))
	if err != nil {
		t.Fatal(err)
	}
	firstLine, _ := events.Canonical(first)
	if next.Data.Chain.Sequence != 2 || next.Data.Chain.PreviousSHA256 != events.RecordHash(firstLine) {
		t.Errorf("next record of agent a links %+v, want sequence 2 after its first record", next.Data.Chain)
	}
	records, err := ChangeRecords(ctx, f.js, f.cfg.EvidenceStream, f.subj, "CHG2")
	if err != nil || len(records) != 1 || records[0].Data.Agent.ID != "agent-b" {
		t.Fatalf("records of CHG2: %+v, %v; want agent b's only", records, err)
	}
	if theirs.Data.Agent.ID != "agent-b" {
		t.Errorf("agent b published %+v", theirs.Data.Agent)
	}
	if rep, n := f.export(t); n != 3 || !rep.OK || len(rep.Chains) != 2 {
		t.Errorf("export of %d records: %+v", n, rep)
	}
}
