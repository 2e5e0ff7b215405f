package schedule

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
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

	sealedOverdue := waitReviewStep(t, bus, "CHG9001", events.ReviewEscalate)
	if rv := sealedOverdue.Data.Review; rv.Status != events.ReviewOverdue || rv.EscalatedAt == nil || rv.CleanupChangeID != "review:CHG9001" || sealedOverdue.Data.Signature == nil {
		t.Errorf("sealed escalation = %+v, review %+v; want a signed record of the overdue review naming its clean-up", sealedOverdue.Data, rv)
	}

	cleanup := bus.WaitEvidence(t, "review:CHG9001", waitEvidence)
	if cleanup.Data.Trigger != events.TriggerReview || cleanup.Data.RelatedChangeID != "CHG9001" {
		t.Errorf("clean-up evidence trigger %q related %q, want review and CHG9001", cleanup.Data.Trigger, cleanup.Data.RelatedChangeID)
	}
	if rv := cleanup.Data.Review; rv == nil || rv.ChangeID != "CHG9001" || rv.Status != events.ReviewOverdue || rv.EscalatedAt == nil {
		t.Errorf("clean-up evidence review = %+v, want the overdue review of CHG9001 that started it", rv)
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
	sealedEscalations := 0
	for _, raw := range stored(t, n, cfg.NATS.EvidenceStream, "rotation.evidence.CHG9001") {
		var rec events.Record
		_ = json.Unmarshal(raw, &rec)
		if rec.Data.IsReviewStep() && rec.Data.Review.Event == events.ReviewEscalate {
			sealedEscalations++
		}
	}
	if sealedEscalations != 1 {
		t.Errorf("the evidence of CHG9001 holds %d sealed escalations, want 1", sealedEscalations)
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
	late := waitReviewStep(t, bus, "CHG9001", events.ReviewAttested).Data.Review
	if late.Status != events.ReviewApproved || late.EscalatedAt == nil || late.Attestations[0].Note != "late, but fine" {
		t.Errorf("sealed late approval = %+v, want approved, still saying it was escalated", late)
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

	// The rejection is a signed record of the change's evidence; the clean-up's evidence says
	// which review started it; the closure gate says no.
	sealed := waitReviewStep(t, bus, "CHG9002", events.ReviewAttested)
	if a := sealed.Data.Review.Attestations; sealed.Data.Signature == nil || sealed.Data.Review.Status != events.ReviewRejected || len(a) != 1 ||
		a[0].By != "bob" || a[0].Decision != events.DecisionReject || a[0].Note != "not justified" {
		t.Errorf("sealed rejection = %+v, review %+v", sealed.Data, sealed.Data.Review)
	}
	if rv := cleanup.Data.Review; rv == nil || rv.Status != events.ReviewRejected || len(rv.Attestations) != 1 || rv.Attestations[0].By != "bob" {
		t.Errorf("clean-up evidence review = %+v, want the rejection by bob", rv)
	}
	var gate events.ClosureAnswer
	request(t, n.Connect(t), events.Subjects{Prefix: events.DefaultSubjectPrefix}.ClosureCheck(), []byte(`{"change_id":"CHG9002"}`), nil, &gate)
	if gate.MayClose || len(gate.Reasons) != 1 || !contains(gate.Reasons[0], "post-change review rejected by bob", "not justified") {
		t.Errorf("closure gate after a rejection = %+v", gate)
	}
}

// An approval is a signed, chained record of the emergency change's evidence: `evidence get`
// returns it with the reviewer, the verdict and the note; the exported evidence verifies, and
// fails to once the note is edited; the closure gate says no while the review is open and yes
// once it is approved.
func TestAttestationIsSealedEvidence(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	clk := clock.NewFake(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	cfg := config(t, v, n)
	harness.StartAgentWith(t, cfg, agentOptions(clk))
	subjects := events.Subjects{Prefix: events.DefaultSubjectPrefix}
	nc := n.Connect(t)
	gate := func() events.ClosureAnswer {
		var ans events.ClosureAnswer
		request(t, nc, subjects.ClosureCheck(), []byte(`{"change_id":"CHG9004"}`), nil, &ans)
		return ans
	}

	bus.Publish(t, changeEvent(t, "CHG9004", events.ChangeEmergency, []string{"payments"}, nil), "evt-CHG9004")
	bus.WaitEvidence(t, "CHG9004", waitEvidence)
	opened := waitReviewStep(t, bus, "CHG9004", events.ReviewOpened)
	deadline := opened.Data.Review.Deadline.UTC().Format(time.RFC3339)
	if ans := gate(); ans.MayClose || len(ans.Reasons) != 1 || ans.Reasons[0] != "post-change review open until "+deadline {
		t.Fatalf("closure gate with the review open = %+v, want no until %s", ans, deadline)
	}

	env := []string{"ROTATION_AGENT_NATS_URL=" + n.URL, "ROTATION_AGENT_EVIDENCE_SIGNER=file", "ROTATION_AGENT_EVIDENCE_KEY_FILE=" + cfg.Evidence.KeyFile}
	note := "checked the firewall change"
	if out, code := runCLI(t, env, "review", "attest", "CHG9004", "--by", "alice", "--decision", "approve", "--note", note); code != 0 {
		t.Fatalf("review attest exited %d: %s", code, out)
	}
	waitReviewStep(t, bus, "CHG9004", events.ReviewAttested)

	out, code := runCLI(t, env, "evidence", "get", "CHG9004")
	if code != 0 {
		t.Fatalf("evidence get exited %d: %s", code, out)
	}
	var attested *events.Record
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		rec, err := events.DecodeRecord([]byte(line))
		if err != nil {
			t.Fatalf("evidence get printed a record that does not decode: %v\n%s", err, line)
		}
		if rec.Data.IsReviewStep() && rec.Data.Review.Event == events.ReviewAttested {
			attested = &rec
		}
	}
	if attested == nil {
		t.Fatalf("evidence get returned no attestation record:\n%s", out)
	}
	if a := attested.Data.Review.Attestations; attested.Data.Signature == nil || attested.Data.Chain == nil || len(a) != 1 ||
		a[0].By != "alice" || a[0].Decision != events.DecisionApprove || a[0].Note != note || attested.Data.Review.Status != events.ReviewApproved {
		t.Fatalf("attestation record = %+v, review %+v; want it signed, chained, by alice, approve, with the note", attested.Data, attested.Data.Review)
	}

	dir := t.TempDir()
	exportFile, keysFile := filepath.Join(dir, "evidence.jsonl"), filepath.Join(dir, "keyring.json")
	if out, code := runCLI(t, env, "evidence", "export", "--out", exportFile); code != 0 {
		t.Fatalf("evidence export exited %d: %s", code, out)
	}
	keys, code := runCLI(t, env, "evidence", "keys")
	if code != 0 {
		t.Fatalf("evidence keys exited %d: %s", code, keys)
	}
	if err := os.WriteFile(keysFile, []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := runCLI(t, nil, "evidence", "verify", "--keys", keysFile, exportFile); code != 0 || !contains(out, `"ok": true`, `"records": 3`) {
		t.Fatalf("evidence verify exited %d: %s; want the change, the opening and the attestation verified", code, out)
	}
	raw, err := os.ReadFile(exportFile)
	if err != nil {
		t.Fatal(err)
	}
	tampered := strings.Replace(string(raw), note, "nothing checked", 1)
	if tampered == string(raw) {
		t.Fatal("the export does not hold the attestation's note")
	}
	if err := os.WriteFile(exportFile, []byte(tampered), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := runCLI(t, nil, "evidence", "verify", "--keys", keysFile, exportFile); code == 0 || contains(out, `"ok": true`) {
		t.Errorf("an export with an edited attestation note verified: %s", out)
	}

	if ans := gate(); !ans.MayClose {
		t.Errorf("closure gate after the approval = %+v, want yes", ans)
	}
}

// waitReviewStep waits for the sealed evidence record of a review step of changeID.
func waitReviewStep(t *testing.T, bus *harness.Bus, changeID string, event events.ReviewEvent) events.Envelope[events.Evidence] {
	t.Helper()
	deadline := time.Now().Add(waitEvidence)
	for time.Now().Before(deadline) {
		for _, rec := range bus.Evidence(t, changeID) {
			if rec.Data.IsReviewStep() && rec.Data.Review.Event == event {
				return rec
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no sealed %s record of the review of %s in its evidence", event, changeID)
	return events.Envelope[events.Evidence]{}
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
