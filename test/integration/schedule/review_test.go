package schedule

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/clock"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// An emergency change is reconciled at once and opens a review with the production deadline;
// reminders come before it; when it passes with no attestation, the escalation is published and
// the token the change granted is revoked in Vault, with evidence naming the emergency change.
// Two replicas share the work and the fake clock; only one acts on the deadline.
func TestEmergencyReviewOverdueRevokesGrantedToken(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	reviews := watchReviews(t, n)
	v.PutKV(t, "payments/db", map[string]any{"password": "canary-emergency-old-7d1e"})
	v.PutKV(t, "breakglass/admin", map[string]any{"password": "canary-breakglass-old-2b4c"})
	granted := tokenAccessor(t, v)
	inventory := writeFile(t, "inventory.yaml", `version: 1
bindings:
  - name: payments-db
    select: {services: [payments]}
    credential: {kind: kv-v2, mount: secret, path: payments/db}
    maintenance_windows:
      - {start: "0 2 * * SAT", duration: 1h}
  - name: vault-break-glass
    select: {services: [vault-admin]}
    credential: {kind: kv-v2, mount: secret, path: breakglass/admin}
    break_glass: true
`)
	clk := clock.NewFake(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)) // a Tuesday: outside the window
	cfg := config(t, v, n)
	cfg.InventoryFile = inventory
	cfg.Review.Deadlines = "production=8h"
	for range 2 {
		harness.StartAgentWith(t, cfg, agentOptions(clk))
	}

	ref := events.CredentialRef{Kind: "token", Mount: "token", Path: granted}
	bus.Publish(t, changeEvent(t, "CHG9001", events.ChangeEmergency, []string{"payments"}, []string{"production"}, ref), "evt-CHG9001")
	ev := bus.WaitEvidence(t, "CHG9001", waitEvidence)
	if ev.Data.Status != events.StatusReconciled || len(ev.Data.Credentials) != 2 || ev.Data.Credentials[0].Outcome != events.OutcomeRotated {
		t.Fatalf("emergency change evidence = %+v, want its credential rotated at once despite the window, and the break-glass one", ev.Data)
	}
	if ev.Data.Trigger != events.TriggerEmergency {
		t.Errorf("emergency change evidence has trigger %q, want emergency", ev.Data.Trigger)
	}
	if bg := ev.Data.Credentials[1]; bg.Credential != "kv-v2:secret/breakglass/admin" || bg.Outcome != events.OutcomeRotated || bg.MatchedBy != "break-glass binding vault-break-glass (emergency change)" {
		t.Errorf("break-glass evidence = %+v", bg)
	}
	if got := v.KV(t, "breakglass/admin", 0).VersionMetadata.Version; got != 2 {
		t.Errorf("break-glass credential at version %d after an emergency change, want 2", got)
	}
	opened := reviews.wait(t, "CHG9001", events.ReviewOpened)
	if want := clk.Now().Add(8 * time.Hour); !opened.Data.Deadline.Equal(want) || opened.Data.Status != events.ReviewOpen {
		t.Fatalf("review opened with %+v, want open until %s (the production deadline)", opened.Data, want)
	}
	if !tokenAlive(t, v, granted) {
		t.Fatal("the granted token was revoked before the review deadline")
	}

	clk.Advance(4 * time.Hour) // 4h before the deadline
	reviews.wait(t, "CHG9001", events.ReviewReminder)
	clk.Advance(4*time.Hour + time.Minute) // past the deadline
	overdue := reviews.wait(t, "CHG9001", events.ReviewEscalate)
	if overdue.Data.Status != events.ReviewOverdue || overdue.Data.CleanupChangeID != "review:CHG9001" {
		t.Fatalf("escalation = %+v", overdue.Data)
	}

	cleanup := bus.WaitEvidence(t, "review:CHG9001", waitEvidence)
	if cleanup.Data.Trigger != events.TriggerReview || cleanup.Data.RelatedChangeID != "CHG9001" {
		t.Errorf("clean-up evidence trigger %q related %q, want review and CHG9001", cleanup.Data.Trigger, cleanup.Data.RelatedChangeID)
	}
	if len(cleanup.Data.Credentials) != 1 || cleanup.Data.Credentials[0].Outcome != events.OutcomeRevoked {
		t.Fatalf("clean-up evidence = %+v, want the granted token revoked", cleanup.Data.Credentials)
	}
	if tokenAlive(t, v, granted) {
		t.Error("Vault still knows the granted token after the overdue clean-up")
	}

	// One replica acted: the stream holds one escalation and one clean-up change.
	overdueRecords := 0
	for _, raw := range stored(t, n, cfg.NATS.EvidenceStream, "rotation.reviews.CHG9001") {
		var env events.Envelope[events.Review]
		_ = json.Unmarshal(raw, &env)
		if env.Data.Event == events.ReviewEscalate {
			overdueRecords++
		}
	}
	if overdueRecords != 1 {
		t.Errorf("the evidence stream holds %d escalations, want 1", overdueRecords)
	}
	if got := len(stored(t, n, cfg.NATS.EvidenceStream, "rotation.evidence.review_CHG9001")); got != 1 {
		t.Errorf("the clean-up has %d evidence records, want 1", got)
	}

	// The review list shows it overdue; a late approval is recorded too.
	nc := n.Connect(t)
	var list events.ReviewReply
	request(t, nc, "rotation.review.list", []byte("{}"), nil, &list)
	if len(list.Reviews) != 1 || list.Reviews[0].Status != events.ReviewOverdue {
		t.Fatalf("review list = %+v", list)
	}
	var attested events.ReviewReply
	body, _ := json.Marshal(events.AttestRequest{ChangeID: "CHG9001", By: "alice", Decision: events.DecisionApprove, Note: "late, but fine"})
	request(t, nc, "rotation.review.attest", body, nil, &attested)
	if attested.Error != "" || attested.Reviews[0].Status != events.ReviewApproved || attested.Reviews[0].Attestations[0].By != "alice" {
		t.Fatalf("attest reply = %+v", attested)
	}
	rec := reviews.wait(t, "CHG9001", events.ReviewAttested)
	if rec.Data.Attestations[0].Note != "late, but fine" {
		t.Errorf("attestation record = %+v", rec.Data)
	}
}

// A reviewer who rejects an emergency change triggers the same clean-up; attesting a change
// with no review is refused with a reason; the command-line client lists and attests.
func TestRejectedReviewRunsCleanup(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	reviews := watchReviews(t, n)
	granted := tokenAccessor(t, v)
	clk := clock.NewFake(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	cfg := config(t, v, n)
	harness.StartAgentWith(t, cfg, agentOptions(clk))

	ref := events.CredentialRef{Kind: "token", Mount: "token", Path: granted}
	bus.Publish(t, changeEvent(t, "CHG9002", events.ChangeEmergency, []string{"payments"}, nil, ref), "evt-CHG9002")
	ev := bus.WaitEvidence(t, "CHG9002", waitEvidence)
	if ev.Data.Status != events.StatusNoCredentials {
		t.Fatalf("evidence = %+v", ev.Data)
	}
	opened := reviews.wait(t, "CHG9002", events.ReviewOpened)
	if want := clk.Now().Add(24 * time.Hour); !opened.Data.Deadline.Equal(want) {
		t.Errorf("deadline = %s, want the default 24h (%s)", opened.Data.Deadline, want)
	}

	env := []string{"ROTATION_AGENT_NATS_URL=" + n.URL}
	out, code := runCLI(t, env, "review", "attest", "CHG-NONE", "--by", "bob", "--decision", "reject")
	if code == 0 {
		t.Errorf("attesting a change with no review succeeded: %s", out)
	}
	out, code = runCLI(t, env, "review", "attest", "CHG9002", "--by", "bob", "--decision", "reject", "--note", "not justified")
	if code != 0 {
		t.Fatalf("review attest exited %d: %s", code, out)
	}
	cleanup := bus.WaitEvidence(t, "review:CHG9002", waitEvidence)
	if len(cleanup.Data.Credentials) != 1 || cleanup.Data.Credentials[0].Outcome != events.OutcomeRevoked || tokenAlive(t, v, granted) {
		t.Fatalf("rejection clean-up = %+v; token alive %v", cleanup.Data.Credentials, tokenAlive(t, v, granted))
	}
	out, code = runCLI(t, env, "review", "list")
	if code != 0 || !contains(out, "CHG9002", "rejected", "bob (reject)", "review:CHG9002") {
		t.Errorf("review list exited %d:\n%s", code, out)
	}
}

// A review opened by one agent process is escalated by the next one after a restart: the
// review lives in JetStream, not in the process.
func TestReviewDeadlineSurvivesRestart(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	reviews := watchReviews(t, n)
	granted := tokenAccessor(t, v)
	clk := clock.NewFake(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	cfg := config(t, v, n)
	first := harness.StartAgentWith(t, cfg, agentOptions(clk))

	ref := events.CredentialRef{Kind: "token", Mount: "token", Path: granted}
	bus.Publish(t, changeEvent(t, "CHG9003", events.ChangeEmergency, nil, nil, ref), "evt-CHG9003")
	bus.WaitEvidence(t, "CHG9003", waitEvidence)
	reviews.wait(t, "CHG9003", events.ReviewOpened)
	first.Stop(t)

	clk.Advance(25 * time.Hour)
	harness.StartAgentWith(t, cfg, agentOptions(clk))
	reviews.wait(t, "CHG9003", events.ReviewEscalate)
	cleanup := bus.WaitEvidence(t, "review:CHG9003", waitEvidence)
	if cleanup.Data.Credentials[0].Outcome != events.OutcomeRevoked || tokenAlive(t, v, granted) {
		t.Fatalf("after a restart the overdue clean-up = %+v; token alive %v", cleanup.Data.Credentials, tokenAlive(t, v, granted))
	}
}
