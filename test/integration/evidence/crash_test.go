package evidence

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rotation-agent/rotation-agent/agent"
	"github.com/rotation-agent/rotation-agent/evidence"
	"github.com/rotation-agent/rotation-agent/internal/failpoint"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// An agent killed while publishing evidence (its record reserved in the chain but not
// published, or published but not yet confirmed) resumes without forking its chain: after a
// restart the export holds one record per change and verifies as one unbroken chain.
func TestCrashWhilePublishingEvidenceKeepsTheChain(t *testing.T) {
	v := harness.StartVault(t)
	token := v.AgentToken(t)
	for i, point := range []string{failpoint.AfterEvidenceReserved, failpoint.AfterEvidencePublished} {
		t.Run(point, func(t *testing.T) {
			n := harness.StartNATS(t)
			bus := harness.WatchBus(t, n)
			cfg := harness.AgentConfig(t, v, token, n)
			first, second := "CHG-CRASH-"+string(rune('A'+i)), "CHG-AFTER-"+string(rune('A'+i))
			for _, id := range []string{first, second} {
				v.PutKV(t, "crash/"+id, map[string]any{"password": "canary-" + id})
			}

			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // generous: CI machines are busy
			defer cancel()
			crashing := harness.StartProcess(t, agentBinary, harness.ProcessEnv(cfg, failpoint.EnvVar+"="+point))
			crashing.WaitReady(t, time.Minute)
			bus.Publish(t, harness.ChangeEvent(t, first, kvRef("crash/"+first)), "evt-"+first)
			if code := crashing.Wait(t, time.Minute); code != failpoint.ExitCode {
				t.Fatalf("agent exited %d, want the failpoint's %d; output:\n%s", code, failpoint.ExitCode, crashing.Output.String())
			}

			harness.StartAgent(t, cfg) // same agent id, key and chain
			bus.WaitEvidence(t, first, waitEvidence)
			bus.Publish(t, harness.ChangeEvent(t, second, kvRef("crash/"+second)), "evt-"+second)
			bus.WaitEvidence(t, second, waitEvidence)
			js, err := jetstream.New(n.Connect(t))
			if err != nil {
				t.Fatal(err)
			}
			// The crashed delivery of the first change comes back after the ack wait; once it is
			// settled a third change must still extend the same chain.
			cons, err := js.Consumer(context.Background(), cfg.NATS.ChangeStream, cfg.NATS.Consumer)
			if err != nil {
				t.Fatal(err)
			}
			for {
				info, err := cons.Info(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if info.NumAckPending == 0 && info.NumPending == 0 {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("the first change was never settled: %+v", info)
				}
				time.Sleep(100 * time.Millisecond)
			}
			third := "CHG-THIRD-" + string(rune('A'+i))
			v.PutKV(t, "crash/"+third, map[string]any{"password": "canary-" + third})
			bus.Publish(t, harness.ChangeEvent(t, third, kvRef("crash/"+third)), "evt-"+third)
			bus.WaitEvidence(t, third, waitEvidence)

			var export bytes.Buffer
			count, err := agent.ExportEvidence(context.Background(), js, cfg.NATS.EvidenceStream, subjects, time.Time{}, &export)
			if err != nil {
				t.Fatal(err)
			}
			signer, err := evidence.LoadFileSigner(cfg.Evidence.KeyFile)
			if err != nil {
				t.Fatal(err)
			}
			pubs, _ := signer.PublicKeys(context.Background())
			rep, err := evidence.Verify(bytes.NewReader(export.Bytes()), evidence.Keyring{Keys: pubs})
			if err != nil || !rep.OK || rep.Records != 3 || len(rep.Chains) != 1 || rep.Chains[0].First != 1 || rep.Chains[0].Last != 3 {
				t.Fatalf("export of %d messages: %+v, %v; want one chain 1..3\n%s", count, rep, err, export.String())
			}
			if strings.Count(export.String(), `"change_id":"`+first+`"`) != rep.Duplicates+1 {
				t.Errorf("change %s has more than one distinct record:\n%s", first, export.String())
			}
		})
	}
}
