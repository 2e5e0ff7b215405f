package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// `rotation-agent plan` says what a change would do to each credential and writes nothing.
func TestPlanIsADryRun(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	token := v.AgentToken(t)
	v.PutKV(t, "plan/db", map[string]any{"username": "u", "password": "canary-plan-password-1"})
	v.PutKV(t, "plan/db", map[string]any{"username": "u", "password": "canary-plan-password-2"})
	event := harness.ChangeEvent(t, "CHG-PLAN-1",
		kvRef("plan/db", "password"),
		kvRef("plan/missing"),
		events.CredentialRef{Kind: "no-such-kind", Mount: "m", Path: "p"},
	)
	file := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(file, event, 0o600); err != nil {
		t.Fatal(err)
	}

	table := harness.StartProcess(t, agentBinary, processEnv(v, token, n), "plan", "--event", file)
	if code := table.Wait(t, 30*time.Second); code != 1 {
		t.Fatalf("plan exit %d, want 1 (two credentials cannot be rotated); output:\n%s", code, table.Output.String())
	}
	out := table.Output.String()
	for _, want := range []string{"SOURCE", "kv-v2:secret/plan/db", "write version 3", "check-and-set on version 2", "cannot:", "unknown credential kind"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan table lacks %q:\n%s", want, out)
		}
	}

	js := harness.StartProcess(t, agentBinary, processEnv(v, token, n), "plan", "--event", file, "--output", "json")
	js.Wait(t, 30*time.Second)
	var impact events.Impact
	if err := json.Unmarshal([]byte(js.Output.String()), &impact); err != nil {
		t.Fatalf("plan --output json is not JSON: %v\n%s", err, js.Output.String())
	}
	plans := impact.Credentials
	if len(plans) != 3 || plans[0].Current["version"] != "2" || plans[0].Error != "" || plans[1].Error == "" || plans[2].Error == "" {
		t.Errorf("plans = %+v", plans)
	}
	// No overlap option and the agent's default overlap (0s): the old version is retired at once.
	if len(plans) > 0 && plans[0].Overlap != "0s" {
		t.Errorf("overlap = %q, want 0s (ROTATION_AGENT_OVERLAP's default)", plans[0].Overlap)
	}
	if impact.Level != events.ImpactHigh || plans[0].MatchedBy != "named in the event" || plans[0].Source != "event" {
		t.Errorf("impact %s (two credentials cannot be acted on), matched_by %q, source %q", impact.Level, plans[0].MatchedBy, plans[0].Source)
	}
	if got := v.KV(t, "plan/db", 0).VersionMetadata.Version; got != 2 {
		t.Errorf("plan wrote to Vault: version %d", got)
	}
	assertNoLeak(t, map[string]string{"password": "canary-plan-password-2", "token": token}, map[string][]string{"plan output": {out, js.Output.String()}})
}

// vaultState is what a plan must leave as it was: KV versions and metadata times, the
// certificates issued, the secret ids of a role and the tokens.
func vaultState(t *testing.T, v *harness.Vault) map[string]string {
	t.Helper()
	state := map[string]string{}
	for _, p := range []string{"apps/checkout/db", "certs/web", "ci/approle"} {
		m, err := v.Root.KVv2("secret").GetMetadata(context.Background(), p)
		must(t, err)
		state["kv "+p] = fmt.Sprintf("version %d updated %s custom %v", m.CurrentVersion, m.UpdatedTime, m.CustomMetadata)
	}
	state["pki certs"] = strings.Join(v.List(t, "pki/certs"), ",")
	for name, path := range map[string]string{"secret ids": "auth/approle/role/ci/secret-id", "tokens": "auth/token/accessors"} {
		state[name] = strings.Join(v.List(t, path), ",")
	}
	return state
}

// With discovery configured, `rotation-agent plan` runs it once and lists what it finds (a
// tagged KV secret, a certificate by its host, an AppRole secret id by its metadata) with the
// discovery source, in the table and in JSON, and writes nothing to Vault.
func TestPlanListsDiscoveredCredentials(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	putTaggedKV(t, v, "apps/checkout/db", map[string]any{"user": "checkout", "password": "canary-plan-discovered-1"},
		map[string]any{"service": "checkout", "rotate_fields": "password"})
	serial := deliverWebCert(t, v)
	sid := deliverCISecretID(t, v)

	token := v.AgentTokenWithPolicy(t, "discovery", discoveryPolicy+kvDiscoveryPolicy)
	dir := t.TempDir()
	discoveryFile := filepath.Join(dir, "discovery.yaml")
	must(t, os.WriteFile(discoveryFile, []byte("kv:\n  - mount: secret\n    prefix: apps\npki:\n  - mount: pki\n    role: web\n    deliver_to: secret/certs\napprole:\n  - mount: approle\n"), 0o600))
	eventFile := filepath.Join(dir, "event.json")
	must(t, os.WriteFile(eventFile, targetedChange(t, "CHG-PLAN-DISC",
		events.Targets{Services: []string{"checkout", "ci"}, Hosts: []string{"web.example.internal"}}), 0o600))
	env := processEnv(v, token, n, "ROTATION_AGENT_DISCOVERY_FILE="+discoveryFile)
	before := vaultState(t, v)

	table := harness.StartProcess(t, agentBinary, env, "plan", "--event", eventFile)
	if code := table.Wait(t, 60*time.Second); code != 0 {
		t.Fatalf("plan exit %d, want 0; output:\n%s", code, table.Output.String())
	}
	out := table.Output.String()
	for _, want := range []string{
		"kv-v2:secret/apps/checkout/db", "binding discovery:kv-v2:secret/apps/checkout/db selects services=checkout",
		"pki:pki/web", "binding discovery:pki:pki/cert/" + serial + " selects hosts=web.example.internal",
		"approle-secret-id:approle/ci", "binding discovery:approle:approle/role/ci selects services=ci",
		"discovery: complete (kv-v2:secret/apps, pki:pki/web, approle:approle)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan table lacks %q:\n%s", want, out)
		}
	}

	js := harness.StartProcess(t, agentBinary, env, "plan", "--event", eventFile, "--output", "json")
	if code := js.Wait(t, 60*time.Second); code != 0 {
		t.Fatalf("plan --output json exit %d; output:\n%s", code, js.Output.String())
	}
	var impact events.Impact
	if err := json.Unmarshal([]byte(js.Output.String()), &impact); err != nil {
		t.Fatalf("plan --output json is not JSON: %v\n%s", err, js.Output.String())
	}
	kinds := map[string]string{}
	for _, c := range impact.Credentials {
		kinds[c.Kind] = c.MatchedBy
		if c.Error != "" || len(c.WouldDo) == 0 {
			t.Errorf("%s: error %q, would do %v", c.Credential, c.Error, c.WouldDo)
		}
	}
	for _, kind := range []string{"kv-v2", "pki", "approle-secret-id"} {
		if !strings.HasPrefix(kinds[kind], "binding discovery:") {
			t.Errorf("JSON plan: %s matched by %q, want a discovery binding", kind, kinds[kind])
		}
	}
	if len(impact.Credentials) != 3 {
		t.Errorf("JSON plan lists %d credentials, want 3: %+v", len(impact.Credentials), impact.Credentials)
	}
	if d := impact.Discovery; d == nil || d.Status != events.DiscoveryComplete || len(d.Sources) != 3 || len(d.Failed) != 0 {
		t.Errorf("discovery = %+v", d)
	}

	after := vaultState(t, v)
	for k, b := range before {
		if after[k] != b {
			t.Errorf("plan changed Vault: %s was %q, is %q", k, b, after[k])
		}
	}
	assertNoLeak(t, map[string]string{"password": "canary-plan-discovered-1", "secret id": sid.Data["secret_id"].(string), "token": token},
		map[string][]string{"plan output": {out, js.Output.String()}})
}

// A discovery source plan cannot read makes the plan incomplete: it says which source
// failed and exits 1, still listing what the other sources and the event give.
func TestPlanSaysWhenDiscoveryIsIncomplete(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	token := v.AgentToken(t) // no discovery policy: listing secret/metadata/apps is denied
	dir := t.TempDir()
	discoveryFile := filepath.Join(dir, "discovery.yaml")
	must(t, os.WriteFile(discoveryFile, []byte("kv:\n  - mount: secret\n    prefix: apps\n"), 0o600))
	v.PutKV(t, "plan/db", map[string]any{"password": "canary-plan-incomplete-1"})
	eventFile := filepath.Join(dir, "event.json")
	must(t, os.WriteFile(eventFile, harness.ChangeEvent(t, "CHG-PLAN-INC", kvRef("plan/db", "password")), 0o600))
	p := harness.StartProcess(t, agentBinary, processEnv(v, token, n, "ROTATION_AGENT_DISCOVERY_FILE="+discoveryFile), "plan", "--event", eventFile)
	if code := p.Wait(t, 60*time.Second); code != 1 {
		t.Fatalf("plan exit %d, want 1 (discovery incomplete); output:\n%s", code, p.Output.String())
	}
	out := p.Output.String()
	for _, want := range []string{"kv-v2:secret/plan/db", "write version 2", "discovery: incomplete", "kv-v2:secret/apps: ", "permission denied"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan output lacks %q:\n%s", want, out)
		}
	}
}
