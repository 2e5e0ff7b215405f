package schedule

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rotation-agent/rotation-agent/agent"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/evidence"
	"github.com/rotation-agent/rotation-agent/internal/failpoint"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// An agent killed while recording an attestation (after the review is updated in the journal
// bucket, before anything is published) or while publishing it (after its evidence record is
// published, before the chain head and the review record it) loses nothing and evidences the
// attestation once: after a restart the change's evidence holds exactly one attestation
// record, and the export verifies as one unbroken chain that carries on with the next change.
func TestCrashWhileAttestingKeepsOneSealedRecord(t *testing.T) {
	v := harness.StartVault(t)
	for i, point := range []string{failpoint.AfterReviewRecorded, failpoint.AfterEvidencePublished + "@3"} {
		t.Run(point, func(t *testing.T) {
			n := harness.StartNATS(t)
			bus := harness.WatchBus(t, n)
			cfg := config(t, v, n)
			changeID, next := "CHG-ATTEST-CRASH-"+string(rune('A'+i)), "CHG-ATTEST-NEXT-"+string(rune('A'+i))
			env := harness.ProcessEnv(cfg, failpoint.EnvVar+"="+point)
			crashing := harness.StartProcess(t, agentBinary, env)
			crashing.WaitReady(t, 30*time.Second)
			bus.Publish(t, changeEvent(t, changeID, events.ChangeEmergency, []string{"payments"}, nil), "evt-"+changeID)
			bus.WaitEvidence(t, changeID, waitEvidence)
			waitReviewStep(t, bus, changeID, events.ReviewOpened)

			body, _ := json.Marshal(events.AttestRequest{ChangeID: changeID, By: "alice", Decision: events.DecisionApprove, Note: "verified after the incident"})
			_, _ = n.Connect(t).Request("rotation.review.attest", body, 5*time.Second) // no reply: the agent dies
			if code := crashing.Wait(t, 30*time.Second); code != failpoint.ExitCode {
				t.Fatalf("agent exited %d, want the failpoint's %d; output:\n%s", code, failpoint.ExitCode, crashing.Output.String())
			}

			harness.StartAgent(t, cfg) // same agent id, key and chain
			sealed := waitReviewStep(t, bus, changeID, events.ReviewAttested).Data.Review
			if sealed.Status != events.ReviewApproved || sealed.Attestations[0].Note != "verified after the incident" {
				t.Errorf("sealed attestation after the crash = %+v", sealed)
			}
			bus.Publish(t, changeEvent(t, next, events.ChangeNormal, []string{"payments"}, nil), "evt-"+next)
			bus.WaitEvidence(t, next, waitEvidence)

			js, err := jetstream.New(n.Connect(t))
			if err != nil {
				t.Fatal(err)
			}
			var export bytes.Buffer
			if _, err := agent.ExportEvidence(context.Background(), js, cfg.NATS.EvidenceStream, events.Subjects{Prefix: events.DefaultSubjectPrefix}, time.Time{}, &export); err != nil {
				t.Fatal(err)
			}
			signer, err := evidence.LoadFileSigner(cfg.Evidence.KeyFile)
			if err != nil {
				t.Fatal(err)
			}
			pubs, _ := signer.PublicKeys(context.Background())
			rep, err := evidence.Verify(bytes.NewReader(export.Bytes()), evidence.Keyring{Keys: pubs})
			// The change, the opening, the attestation and the next change: one chain 1..4.
			if err != nil || !rep.OK || rep.Records != 4 || len(rep.Chains) != 1 || rep.Chains[0].First != 1 || rep.Chains[0].Last != 4 {
				t.Fatalf("export: %+v, %v; want one chain 1..4\n%s", rep, err, export.String())
			}
			if got := strings.Count(export.String(), `"event_id":"review:`+changeID+`:attested:1"`); got != rep.Duplicates+1 {
				t.Errorf("the attestation has %d records (%d byte-identical copies), want one:\n%s", got, rep.Duplicates, export.String())
			}
		})
	}
}
