package integration

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

const waitEvidence = 30 * time.Second

func kvRef(path string, fields ...string) events.CredentialRef {
	return events.CredentialRef{Kind: "kv-v2", Mount: "secret", Path: path, Fields: fields}
}

// A change naming a KV v2 secret gets a new version with a new password, the other fields and
// the old version untouched, and evidence with both version numbers and no secret anywhere.
func TestKVRotationEndToEnd(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	token := v.AgentToken(t)
	const oldPassword = "canary-old-password-5f1d2c"
	v.PutKV(t, "payments/db", map[string]any{"username": "payments_app", "password": oldPassword})

	ra := harness.StartAgent(t, harness.AgentConfig(t, v, token, n))
	bus.Publish(t, harness.ChangeEvent(t, "CHG0001", kvRef("payments/db", "password")), "evt-CHG0001")
	ev := bus.WaitEvidence(t, "CHG0001", waitEvidence)

	// Vault's own state: a new version, a new password, the rest unchanged.
	current := v.KV(t, "payments/db", 0)
	if current.VersionMetadata.Version != 2 {
		t.Fatalf("current version = %d, want 2", current.VersionMetadata.Version)
	}
	newPassword, _ := current.Data["password"].(string)
	if newPassword == "" || newPassword == oldPassword {
		t.Fatalf("password was not changed")
	}
	if len(newPassword) != 32 {
		t.Errorf("new password has %d characters, want the configured 32", len(newPassword))
	}
	if current.Data["username"] != "payments_app" {
		t.Errorf("username changed to %v; only the named field may change", current.Data["username"])
	}
	if old := v.KV(t, "payments/db", 1); old.Data["password"] != oldPassword {
		t.Errorf("version 1 is no longer readable with the old password (overlap for consumers)")
	}

	// The evidence.
	if ev.Type != events.TypeEvidence || ev.Data.ChangeID != "CHG0001" || ev.Data.Status != events.StatusReconciled {
		t.Fatalf("evidence = %+v", ev)
	}
	if len(ev.Data.Credentials) != 1 {
		t.Fatalf("evidence has %d credentials, want 1", len(ev.Data.Credentials))
	}
	c := ev.Data.Credentials[0]
	if c.Outcome != events.OutcomeRotated || c.Before["version"] != "1" || c.After["version"] != "2" {
		t.Errorf("credential evidence = %+v, want rotated 1 -> 2", c)
	}
	if c.Credential != "kv-v2:secret/payments/db" || c.Action != events.ActionRotate {
		t.Errorf("credential evidence names %q action %q", c.Credential, c.Action)
	}
	if ev.Data.Agent.ID != "test-agent" || ev.Data.FinishedAt.Before(ev.Data.StartedAt) {
		t.Errorf("evidence agent/timing wrong: %+v", ev.Data)
	}
	raw, _ := json.Marshal(ev)
	schema, err := events.Schema("schema/evidence.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	_ = json.Unmarshal(raw, &doc)
	if err := schema.Validate(doc); err != nil {
		t.Errorf("published evidence does not match its schema: %v", err)
	}

	ra.Stop(t)
	assertNoLeak(t,
		map[string]string{"old password": oldPassword, "new password": newPassword, "agent token": token},
		map[string][]string{"agent log": {ra.Log.String()}, "bus": bus.Payloads()})
}

// The same change delivered again — re-sent by the bridge outside the de-duplication window, or
// redelivered — re-publishes the same evidence and never rotates a second time.
func TestRepeatedChangeRotatesOnce(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	v.PutKV(t, "orders/api", map[string]any{"api_key": "canary-orders-key-0a9b8c"})
	harness.StartAgent(t, harness.AgentConfig(t, v, v.AgentToken(t), n))

	event := harness.ChangeEvent(t, "CHG0002", kvRef("orders/api"))
	bus.Publish(t, event, "first")
	first := bus.WaitEvidence(t, "CHG0002", waitEvidence)
	bus.Publish(t, event, "second") // a different Nats-Msg-Id: not de-duplicated by the stream
	bus.Publish(t, event, "second") // the same Nats-Msg-Id: de-duplicated by the stream

	all := bus.WaitEvidenceCount(t, "CHG0002", 2, waitEvidence)
	if len(all) != 2 {
		t.Fatalf("got %d evidence messages, want 2 (original and re-published)", len(all))
	}
	if all[1].ID != first.ID || all[1].Data.Credentials[0].After["version"] != "2" {
		t.Errorf("re-published evidence differs: %+v", all[1].Data)
	}
	if got := v.KV(t, "orders/api", 0).VersionMetadata.Version; got != 2 {
		t.Errorf("secret is at version %d after three deliveries of one change, want 2 (one rotation)", got)
	}
}

// A change that names no credential still gets evidence, so "nothing to do" is told apart
// from "never looked"; a credential that cannot be rotated gives failed evidence, not silence.
func TestNoCredentialsAndFailuresAreEvidenced(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	harness.StartAgent(t, harness.AgentConfig(t, v, v.AgentToken(t), n))

	bus.Publish(t, harness.ChangeEvent(t, "CHG0003"), "")
	if ev := bus.WaitEvidence(t, "CHG0003", waitEvidence); ev.Data.Status != events.StatusNoCredentials || len(ev.Data.Credentials) != 0 {
		t.Errorf("evidence for a change without credentials = %+v", ev.Data)
	}

	v.PutKV(t, "multi/field", map[string]any{"user": "u", "password": "canary-multi-pass-77aa"})
	bus.Publish(t, harness.ChangeEvent(t, "CHG0004",
		kvRef("missing/secret"),
		kvRef("multi/field"),
		events.CredentialRef{Kind: "no-such-kind", Mount: "x", Path: "y"},
	), "")
	ev := bus.WaitEvidence(t, "CHG0004", waitEvidence)
	if ev.Data.Status != events.StatusFailed || len(ev.Data.Credentials) != 3 {
		t.Fatalf("evidence = %+v, want failed with 3 credentials", ev.Data)
	}
	for _, c := range ev.Data.Credentials {
		if c.Outcome != events.OutcomeFailed || c.Error == "" {
			t.Errorf("credential %s: outcome %s error %q, want failed with a reason", c.Credential, c.Outcome, c.Error)
		}
	}
	if got := v.KV(t, "multi/field", 0).VersionMetadata.Version; got != 1 {
		t.Errorf("multi-field secret without named fields was written (version %d)", got)
	}
}

// versionOf reads a fingerprint version as a number.
func versionOf(t *testing.T, fp events.Fingerprint) int {
	t.Helper()
	n, err := strconv.Atoi(fp["version"])
	if err != nil {
		t.Fatalf("fingerprint %v has no version", fp)
	}
	return n
}

// With an overlap window the old version stays readable until the window ends; then the agent
// destroys it as the credential asks and publishes evidence of the retirement.
func TestKVOverlapThenDestroyOldVersion(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	cfg := harness.AgentConfig(t, v, v.AgentToken(t), n)
	cfg.RetireInterval = time.Second
	harness.StartAgent(t, cfg)
	const oldValue = "canary-overlap-old-value-31"
	v.PutKV(t, "overlap/app", map[string]any{"password": oldValue})

	ref := kvRef("overlap/app")
	ref.Options = map[string]string{"overlap": "3s", "retire": "destroy"}
	published := time.Now()
	bus.Publish(t, harness.ChangeEvent(t, "CHG-OV-1", ref), "")
	first := bus.WaitEvidence(t, "CHG-OV-1", waitEvidence)
	c := first.Data.Credentials[0]
	if c.Outcome != events.OutcomeRotated || c.OldCredential != "retire_pending" || c.RetireAt == nil {
		t.Fatalf("first evidence = %+v, want rotated with the old version pending retirement", c)
	}
	if c.RetireAt.Before(published.Add(3*time.Second)) || c.RetireAt.After(time.Now().Add(3*time.Second)) {
		t.Errorf("retire_at %s is not 3s after the rotation", c.RetireAt)
	}
	if old := v.KV(t, "overlap/app", 1); old.Data["password"] != oldValue {
		t.Fatalf("old version not readable during the overlap window")
	}

	second := bus.WaitEvidenceCount(t, "CHG-OV-1", 2, waitEvidence)[1] // the retirement
	rc := second.Data.Credentials[0]
	if second.Data.Trigger != events.TriggerSchedule || rc.OldCredential != "retired" || rc.RetiredAt == nil || rc.After["old_version"] != "destroyed" {
		t.Fatalf("retirement evidence = %+v", second.Data)
	}
	if rc.RetiredAt.Before(*c.RetireAt) {
		t.Errorf("retired at %s, before the overlap ended at %s", rc.RetiredAt, c.RetireAt)
	}
	meta, err := v.Root.KVv2("secret").GetMetadata(context.Background(), "overlap/app")
	if err != nil {
		t.Fatal(err)
	}
	if !meta.Versions["1"].Destroyed || meta.Versions["2"].Destroyed || meta.CurrentVersion != 2 {
		t.Errorf("vault metadata after retirement: %+v", meta.Versions)
	}
}

// A credential naming a Vault password policy gets a value generated by that policy.
func TestKVPasswordPolicy(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	policy := `length = 24
rule "charset" {
  charset = "0123456789"
}`
	if _, err := v.Root.Logical().Write("sys/policies/password/digits-24", map[string]any{"policy": policy}); err != nil {
		t.Fatal(err)
	}
	// The agent policy gains the right to generate from this one policy only.
	token := v.AgentTokenWithPolicy(t, "generate-digits", `path "sys/policies/password/digits-24/generate" { capabilities = ["read"] }`)
	harness.StartAgent(t, harness.AgentConfig(t, v, token, n))
	v.PutKV(t, "policy/app", map[string]any{"pin": "canary-policy-pin-0000"})
	ref := kvRef("policy/app")
	ref.Options = map[string]string{"password_policy": "digits-24"}
	bus.Publish(t, harness.ChangeEvent(t, "CHG-PP-1", ref), "")
	if ev := bus.WaitEvidence(t, "CHG-PP-1", waitEvidence); ev.Data.Status != events.StatusReconciled {
		t.Fatalf("evidence: %+v", ev.Data)
	}
	pin, _ := v.KV(t, "policy/app", 0).Data["pin"].(string)
	if len(pin) != 24 || strings.Trim(pin, "0123456789") != "" {
		t.Errorf("new value does not follow the policy (24 digits): %d characters", len(pin))
	}
}
