package integration

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// A KV v2 rotation whose verify keeps failing ends, through the running agent, in published
// evidence saying needs_reconcile and why. The credential names a broken Vault password policy
// that can only produce the secret's current value, so verify finds the field unchanged: the
// change is redelivered and verify fails again; after three failures the agent starts over and
// draws a fresh value from the policy, written as a new version; after the second round it gives
// up. Vault shows one new version per round, and nothing carries the value.
func TestKVNeedsReconcileThroughTheAgent(t *testing.T) {
	ctx := context.Background()
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	const policy = "length = 24\nrule \"charset\" {\n  charset = \"z\"\n}\n"
	if _, err := v.Root.Logical().Write("sys/policies/password/stuck", map[string]any{"policy": policy}); err != nil {
		t.Fatal(err)
	}
	token := v.AgentTokenWithPolicy(t, "generate-stuck", `path "sys/policies/password/stuck/generate" { capabilities = ["read"] }`)
	stuck := strings.Repeat("z", 24)
	v.PutKV(t, "stuck/app", map[string]any{"password": stuck, "username": "app"})
	ref := kvRef("stuck/app", "password")
	ref.Options = map[string]string{"password_policy": "stuck"}

	ra := harness.StartAgent(t, harness.AgentConfig(t, v, token, n))
	bus.Publish(t, harness.ChangeEvent(t, "CHG-KV-STUCK", ref), "")
	// Six deliveries with the agent's back-off between them (about a minute).
	ev := bus.WaitEvidence(t, "CHG-KV-STUCK", 4*time.Minute)
	if ev.Data.Status != events.StatusFailed || len(ev.Data.Credentials) != 1 {
		t.Fatalf("evidence status %s with %d credentials, want failed with 1", ev.Data.Status, len(ev.Data.Credentials))
	}
	c := ev.Data.Credentials[0]
	if c.Outcome != events.OutcomeNeedsReconcile || c.Verified || c.OldCredential != "" {
		t.Errorf("credential evidence = %+v, want needs_reconcile, not verified, no old credential retired", c)
	}
	for _, want := range []string{"needs reconcile", "after " + strconv.Itoa(rotators.MaxRounds) + " attempts with fresh values", "verify", `field "password"`, "empty or unchanged"} {
		if !strings.Contains(c.Error, want) {
			t.Errorf("evidence error %q does not say %q", c.Error, want)
		}
	}
	if c.Before["version"] != "1" || c.Before["fields"] != "password" {
		t.Errorf("before = %v, want the original version 1", c.Before)
	}

	// One version per round: each round drew a value from the policy and wrote it once; the
	// retries in between wrote nothing.
	meta, err := v.Root.KVv2("secret").GetMetadata(ctx, "stuck/app")
	if err != nil {
		t.Fatal(err)
	}
	if meta.CurrentVersion != 1+rotators.MaxRounds || len(meta.Versions) != 1+rotators.MaxRounds {
		t.Fatalf("secret at version %d with %d versions, want %d: the original and one per round", meta.CurrentVersion, len(meta.Versions), 1+rotators.MaxRounds)
	}
	for version := 2; version <= 1+rotators.MaxRounds; version++ {
		got := v.KV(t, "stuck/app", version)
		if got.Data["password"] != stuck || got.Data["username"] != "app" {
			t.Errorf("version %d does not hold the policy's only value with the other field kept", version)
		}
		if prev := meta.Versions[strconv.Itoa(version-1)]; !got.VersionMetadata.CreatedTime.After(prev.CreatedTime) {
			t.Errorf("version %d was not written after version %d", version, version-1)
		}
	}
	ra.Stop(t)
	assertNoLeak(t, map[string]string{"agent token": token, "generated value": stuck},
		map[string][]string{"agent log": {ra.Log.String()}, "bus": bus.Payloads()})
}
