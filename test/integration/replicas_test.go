package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/failpoint"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// Two replicas share the consumer; two changes touching the same secret arrive together. The
// credential's lock makes the second wait for the first instead of racing it: both changes
// are reconciled, one version each, and neither overwrites or claims the other's write.
func TestReplicasSerialiseOneCredential(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	token := v.AgentToken(t)
	v.PutKV(t, "shared/app", map[string]any{"password": "canary-shared-replicas-0"})
	// Each replica pauses after recording its intent, so both hold a change at once.
	env := processEnv(v, token, n, failpoint.EnvVar+"="+failpoint.AfterJournal+"apply=2s")
	a := harness.StartProcess(t, agentBinary, env)
	b := harness.StartProcess(t, agentBinary, env)
	a.WaitReady(t, 30*time.Second)
	b.WaitReady(t, 30*time.Second)

	bus.Publish(t, harness.ChangeEvent(t, "CHG-REP-1", kvRef("shared/app")), "")
	bus.Publish(t, harness.ChangeEvent(t, "CHG-REP-2", kvRef("shared/app")), "")
	first := bus.WaitEvidence(t, "CHG-REP-1", 60*time.Second).Data
	second := bus.WaitEvidence(t, "CHG-REP-2", 60*time.Second).Data
	if first.Status != events.StatusReconciled || second.Status != events.StatusReconciled {
		t.Fatalf("statuses %s and %s, want both reconciled:\n%+v\n%+v\nA:\n%s\nB:\n%s", first.Status, second.Status,
			first.Credentials, second.Credentials, a.Output.String(), b.Output.String())
	}
	versions := map[string]bool{first.Credentials[0].After["version"]: true, second.Credentials[0].After["version"]: true}
	if !versions["2"] || !versions["3"] {
		t.Errorf("the two changes wrote versions %v, want 2 and 3", versions)
	}
	if got := v.KV(t, "shared/app", 0).VersionMetadata.Version; got != 3 {
		t.Errorf("secret at version %d, want 3 (one rotation per change)", got)
	}
	logs := a.Output.String() + b.Output.String()
	if !strings.Contains(logs, "credential is locked by another worker") {
		t.Errorf("neither replica waited for the lock; the changes did not overlap")
	}
}

// A replica that dies holding a credential's lock releases it by expiry: a restarted agent
// takes the expired lock over and finishes the rotation once.
func TestDeadHolderReleasesLockByExpiry(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	token := v.AgentToken(t)
	v.PutKV(t, "lock/app", map[string]any{"password": "canary-lock-expiry-0"})
	dying := harness.StartProcess(t, agentBinary, processEnv(v, token, n, failpoint.EnvVar+"="+failpoint.AfterJournal+"apply"))
	dying.WaitReady(t, 30*time.Second)
	bus.Publish(t, harness.ChangeEvent(t, "CHG-LOCK-1", kvRef("lock/app")), "")
	if code := dying.Wait(t, 30*time.Second); code != failpoint.ExitCode {
		t.Fatalf("exit %d, want the failpoint's", code)
	}
	survivor := harness.StartProcess(t, agentBinary, processEnv(v, token, n))
	ev := bus.WaitEvidence(t, "CHG-LOCK-1", 60*time.Second).Data
	if ev.Status != events.StatusReconciled || v.KV(t, "lock/app", 0).VersionMetadata.Version != 2 {
		t.Fatalf("after the holder died: %+v\n%s", ev, survivor.Output.String())
	}
}
