package schedule

import (
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/agent"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/clock"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

const windowInventory = `version: 1
bindings:
  - name: payments-db
    select: {services: [payments]}
    credential: {kind: kv-v2, mount: secret, path: payments/db}
    maintenance_windows:
      - {start: "0 2 * * SAT", duration: 4h}
  - name: reports-db
    select: {services: [reports]}
    credential: {kind: kv-v2, mount: secret, path: reports/db}
    schedule: "0 3 * * *"
`

// A change touching a credential outside its maintenance window is answered with deferred
// evidence that says until when, and Vault is not written; when the fake clock reaches the
// window the credential is rotated, with evidence naming the original change.
func TestRotationOutsideWindowIsDeferredThenRuns(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	v.PutKV(t, "payments/db", map[string]any{"password": "canary-window-old-3a9f"})
	clk := clock.NewFake(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)) // Tuesday
	cfg := config(t, v, n)
	cfg.InventoryFile = writeFile(t, "inventory.yaml", windowInventory)
	harness.StartAgentWith(t, cfg, agent.Options{Clock: clk})

	bus.Publish(t, changeEvent(t, "CHG9101", events.ChangeNormal, []string{"payments"}, nil), "evt-CHG9101")
	ev := bus.WaitEvidence(t, "CHG9101", waitEvidence)
	opens := time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC)
	if ev.Data.Status != events.StatusDeferred || len(ev.Data.Credentials) != 1 {
		t.Fatalf("evidence = %+v, want one deferred credential", ev.Data)
	}
	c := ev.Data.Credentials[0]
	if c.Outcome != events.OutcomeDeferred || c.DeferredUntil == nil || !c.DeferredUntil.Equal(opens) {
		t.Fatalf("credential evidence = %+v, want deferred until %s", c, opens)
	}
	if got := v.KV(t, "payments/db", 0).VersionMetadata.Version; got != 1 {
		t.Fatalf("a deferred credential was written (version %d)", got)
	}
	// The change may not close while its credential waits for the window.
	nc := n.Connect(t)
	var gate events.ClosureAnswer
	request(t, nc, events.Subjects{Prefix: events.DefaultSubjectPrefix}.ClosureCheck(), []byte(`{"change_id":"CHG9101"}`), nil, &gate)
	if gate.MayClose || len(gate.Reasons) != 1 || !contains(gate.Reasons[0], "kv-v2:secret/payments/db is deferred to its maintenance window until 2026-12-05T02:00:00Z") {
		t.Errorf("closure gate before the window = %+v, want no, for the deferred credential", gate)
	}

	clk.Set(opens.Add(30 * time.Minute))
	runID := "deferred:CHG9101:"
	var later events.Envelope[events.Evidence]
	deadline := time.Now().Add(waitEvidence)
	for later.ID == "" && time.Now().Before(deadline) {
		for _, raw := range stored(t, n, cfg.NATS.EvidenceStream, "rotation.evidence.>") {
			env := decodeEvidence(t, raw)
			if env.Data.RelatedChangeID == "CHG9101" && len(env.Data.ChangeID) > len(runID) && env.Data.ChangeID[:len(runID)] == runID {
				later = env
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if later.ID == "" {
		t.Fatal("no evidence of the deferred credential once its window opened")
	}
	if later.Data.Status != events.StatusReconciled || later.Data.Trigger != events.TriggerSchedule || later.Data.Credentials[0].Outcome != events.OutcomeRotated {
		t.Fatalf("deferred run evidence = %+v", later.Data)
	}
	if got := v.KV(t, "payments/db", 0).VersionMetadata.Version; got != 2 {
		t.Errorf("payments/db at version %d after its window opened, want 2", got)
	}
	// The gate follows the credential to the change that ran it: the change may close.
	request(t, nc, events.Subjects{Prefix: events.DefaultSubjectPrefix}.ClosureCheck(), []byte(`{"change_id":"CHG9101"}`), nil, &gate)
	if !gate.MayClose {
		t.Errorf("closure gate after the deferred run = %+v, want yes", gate)
	}
}

// A binding with a cron schedule is rotated at each activation the fake clock passes, once,
// through the same journal and evidence as a change.
func TestScheduledRotation(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	v.PutKV(t, "reports/db", map[string]any{"password": "canary-schedule-old-51c2"})
	clk := clock.NewFake(time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC))
	cfg := config(t, v, n)
	cfg.InventoryFile = writeFile(t, "inventory.yaml", windowInventory)
	for range 2 { // two replicas; one rotation
		harness.StartAgentWith(t, cfg, agent.Options{Clock: clk})
	}
	// The scheduler first records when it started knowing the schedule.
	waitKey(t, n, cfg.NATS.JournalBucket, "sched.>")
	clk.Set(time.Date(2026, 12, 1, 3, 0, 30, 0, time.UTC))
	ev := bus.WaitEvidence(t, "schedule:reports-db:20261201T030000Z", waitEvidence)
	if ev.Data.Trigger != events.TriggerSchedule || ev.Data.Status != events.StatusReconciled {
		t.Fatalf("scheduled evidence = %+v", ev.Data)
	}
	if got := v.KV(t, "reports/db", 0).VersionMetadata.Version; got != 2 {
		t.Errorf("reports/db at version %d after one activation, want 2", got)
	}
	if got := len(stored(t, n, cfg.NATS.ChangeStream, "rotation.changes.completed")); got != 1 {
		t.Errorf("the change stream holds %d scheduled changes, want 1 for one activation and two replicas", got)
	}
	// Its change record carries trigger schedule, like a retirement record, and still counts.
	var gate events.ClosureAnswer
	request(t, n.Connect(t), events.Subjects{Prefix: events.DefaultSubjectPrefix}.ClosureCheck(), []byte(`{"change_id":"schedule:reports-db:20261201T030000Z"}`), nil, &gate)
	if !gate.MayClose {
		t.Errorf("closure gate of the scheduled rotation = %+v, want yes", gate)
	}
}
