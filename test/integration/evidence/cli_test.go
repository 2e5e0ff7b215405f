package evidence

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rotation-agent/rotation-agent/test/harness"
)

// cli runs the rotation-agent command with env (see harness.RunCLI) and returns its exit code
// and output.
func cli(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	r := harness.RunCLI(t, agentBinary, env, args...)
	return r.Code, r.Stdout, r.Stderr
}

// The evidence commands as an auditor runs them: get one change, export everything, write the
// keyring, verify the export offline, and list gaps.
func TestEvidenceCommands(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	cfg := harness.AgentConfig(t, v, v.AgentToken(t), n)
	harness.StartAgent(t, cfg)
	for _, id := range []string{"CHG-CLI-1", "CHG-CLI-2"} {
		v.PutKV(t, "cli/"+id, map[string]any{"password": "canary-" + id})
		bus.Publish(t, harness.ChangeEvent(t, id, kvRef("cli/"+id)), "evt-"+id)
		bus.WaitEvidence(t, id, waitEvidence)
	}
	env := []string{
		"ROTATION_AGENT_NATS_URL=" + n.URL,
		"ROTATION_AGENT_EVIDENCE_SIGNER=file", "ROTATION_AGENT_EVIDENCE_KEY_FILE=" + cfg.Evidence.KeyFile,
	}
	dir := t.TempDir()
	exportFile, keysFile := filepath.Join(dir, "evidence.jsonl"), filepath.Join(dir, "keyring.json")

	code, out, errOut := cli(t, env, "evidence", "get", "CHG-CLI-2")
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"change_id":"CHG-CLI-2"`) || !strings.Contains(out, `"signature":{`) {
		t.Fatalf("evidence get: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, _, errOut = cli(t, env, "evidence", "get", "CHG-NONE"); code != 1 || !strings.Contains(errOut, "no evidence record for change CHG-NONE") {
		t.Errorf("evidence get of an unknown change: exit %d, %s", code, errOut)
	}
	if code, _, errOut = cli(t, env, "evidence", "export", "--out", exportFile); code != 0 || !strings.Contains(errOut, "exported 2 evidence records") {
		t.Fatalf("evidence export: exit %d, %s", code, errOut)
	}
	code, out, errOut = cli(t, env, "evidence", "keys")
	if code != 0 {
		t.Fatalf("evidence keys: exit %d, %s", code, errOut)
	}
	if err := os.WriteFile(keysFile, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = cli(t, nil, "evidence", "verify", "--keys", keysFile, exportFile)
	if code != 0 || !strings.Contains(out, `"ok": true`) || !strings.Contains(out, `"records": 2`) {
		t.Fatalf("evidence verify (offline): exit %d\n%s\n%s", code, out, errOut)
	}
	raw, _ := os.ReadFile(exportFile)
	tampered := bytes.Replace(raw, []byte(`"change_id":"CHG-CLI-2"`), []byte(`"change_id":"CHG-CLI-3"`), 1)
	if err := os.WriteFile(exportFile, tampered, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = cli(t, nil, "evidence", "verify", "--keys", keysFile, exportFile)
	if code != 1 || !strings.Contains(errOut, "verification failed at line 2 (record evidence:CHG-CLI-2:") {
		t.Errorf("evidence verify of a tampered export: exit %d, %s", code, errOut)
	}
	if code, out, errOut = cli(t, env, "evidence", "gaps", "--since", "1h"); code != 0 || out != "" {
		t.Errorf("evidence gaps: exit %d, %q, %s", code, out, errOut)
	}
}
