package integration

import (
	"encoding/json"
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
