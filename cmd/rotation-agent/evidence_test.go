package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/evidence"
)

// writeExport seals n records into one chain and writes the export and the keyring.
func writeExport(t *testing.T, n int) (exportFile, keysFile string, lines []string) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer := evidence.NewFileSigner(key)
	prev := events.GenesisHash
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= n; i++ {
		id := "CHG" + string(rune('0'+i))
		rec := events.Record{SpecVersion: events.SpecVersion, ID: "evidence:" + id + ":e", Source: "rotation-agent/a", Type: events.TypeEvidence, Time: at,
			Data: events.Evidence{SchemaVersion: 1, ChangeID: id, EventID: "e", ChangeType: events.ChangeNormal, Trigger: events.TriggerEvent,
				Agent: events.AgentInfo{ID: "a", Version: "1"}, Status: events.StatusNoCredentials, StartedAt: at, FinishedAt: at,
				Credentials: []events.CredentialEvidence{}, Chain: &events.ChainLink{Sequence: uint64(i), PreviousSHA256: prev}}}
		_, line, err := evidence.Seal(func(msg []byte) (events.Signature, error) { return signer.Sign(context.Background(), msg) }, rec)
		if err != nil {
			t.Fatal(err)
		}
		prev = events.RecordHash(line)
		lines = append(lines, string(line))
	}
	dir := t.TempDir()
	exportFile, keysFile = filepath.Join(dir, "evidence.jsonl"), filepath.Join(dir, "keyring.json")
	if err := os.WriteFile(exportFile, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pubs, _ := signer.PublicKeys(context.Background())
	raw, _ := json.Marshal(evidence.Keyring{Keys: pubs})
	if err := os.WriteFile(keysFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return exportFile, keysFile, lines
}

func TestEvidenceVerifyCommand(t *testing.T) {
	cleanEnv(t)
	exportFile, keysFile, lines := writeExport(t, 3)
	code, stdout, stderr := run(t, "evidence", "verify", "--keys", keysFile, exportFile)
	if code != exitOK || !strings.Contains(stdout, `"ok": true`) || !strings.Contains(stdout, `"records": 3`) {
		t.Fatalf("verify intact: code %d\n%s\n%s", code, stdout, stderr)
	}
	lines[1] = strings.Replace(lines[1], `"change_id":"CHG2"`, `"change_id":"CHG9"`, 1)
	if err := os.WriteFile(exportFile, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = run(t, "evidence", "verify", "--keys", keysFile, exportFile)
	if code != exitFailed || !strings.Contains(stderr, "verification failed at line 2 (record evidence:CHG2:e, agent a, sequence 2): signature by file:") {
		t.Errorf("verify tampered: code %d, stderr %s", code, stderr)
	}
}

func TestEvidenceCommandUsage(t *testing.T) {
	cleanEnv(t)
	for _, args := range [][]string{
		{"evidence"}, {"evidence", "nope"}, {"evidence", "verify", "file.jsonl"}, {"evidence", "verify", "--keys", "k.json"},
		{"evidence", "get"}, {"evidence", "get", "a", "b"}, {"evidence", "gaps"}, {"evidence", "export", "extra"},
	} {
		if code, _, _ := run(t, args...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
	}
	t.Setenv("ROTATION_AGENT_EVIDENCE_SIGNER", "none")
	code, _, stderr := run(t, "evidence", "keys")
	if code != exitFailed || !strings.Contains(stderr, "EVIDENCE_SIGNER is none") {
		t.Errorf("keys without a signer: exit %d, %s", code, stderr)
	}
}
