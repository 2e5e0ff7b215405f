package evidence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
)

var t0 = time.Date(2026, 3, 14, 16, 5, 13, 902000000, time.UTC)

// record builds a realistic change record with every optional part set.
func record(changeID string) events.Record {
	retireAt := t0.Add(time.Hour)
	cred := events.CredentialEvidence{
		Credential: "kv-v2:secret/payments/db", Kind: "kv-v2", Mount: "secret", Path: "payments/db",
		Fields: []string{"password"}, Action: events.ActionRotate, Outcome: events.OutcomeRotated,
		Before: events.Fingerprint{"version": "7"}, After: events.Fingerprint{"version": "8", "created_time": "2026-03-14T16:05:14Z"},
		Verified: true, OldCredential: "retire_pending", RetireAt: &retireAt, MatchedBy: "binding payments selects services=<payments>&co",
		StartedAt: t0, FinishedAt: t0.Add(395 * time.Millisecond), DurationMS: 395,
	}
	ent := events.EntitlementEvidence{
		Identity: "approle:approle/payments", Kind: "approle-role", Source: "change event", Status: events.EntitlementDrift,
		ApprovedPolicies: []string{"payments-read"}, ActualPolicies: []string{"admin", "payments-read"}, ExtraPolicies: []string{"admin"},
		Capabilities: []events.CapabilityEvidence{{Path: "secret/data/payments/db", Status: events.CapabilityNotComputed, Approved: []string{"read"}, Note: "no token accessor is known"}},
		CheckedAt:    t0.Add(time.Second),
	}
	ev := events.Evidence{
		SchemaVersion: events.EvidenceSchemaVersion, ChangeID: changeID, EventID: "ev-" + changeID,
		ChangeType: events.ChangeNormal, Trigger: events.TriggerEvent, Agent: events.AgentInfo{ID: "agent-0", Version: "1.2.3"},
		StartedAt: t0, FinishedAt: t0.Add(time.Second), Credentials: []events.CredentialEvidence{cred},
		Entitlements: []events.EntitlementEvidence{ent},
	}
	ev.Status = events.WithEntitlements(events.OverallStatus(ev.Credentials), ev.Entitlements)
	ev.Controls = events.ControlsFor(ev)
	return events.Record{
		SpecVersion: events.SpecVersion, ID: "evidence:" + changeID + ":" + ev.EventID, Source: "rotation-agent/agent-0",
		Type: events.TypeEvidence, Subject: changeID, Time: ev.FinishedAt, DataContentType: "application/json", Data: ev,
	}
}

// chainOf seals records into one agent's chain and returns the export (JSON Lines).
func chainOf(t *testing.T, s Signer, ids ...string) []byte {
	t.Helper()
	var out bytes.Buffer
	prev := events.GenesisHash
	for i, id := range ids {
		rec := record(id)
		rec.Data.Chain = &events.ChainLink{Sequence: uint64(i + 1), PreviousSHA256: prev}
		_, line, err := Seal(func(msg []byte) (events.Signature, error) { return s.Sign(context.Background(), msg) }, rec)
		if err != nil {
			t.Fatal(err)
		}
		prev = events.RecordHash(line)
		out.Write(line)
		out.WriteByte('\n')
	}
	return out.Bytes()
}

func newSigner(t *testing.T) (*FileSigner, Keyring) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := NewFileSigner(key)
	pubs, _ := s.PublicKeys(context.Background())
	return s, Keyring{Keys: pubs}
}

func TestVerifyAcceptsAnIntactChain(t *testing.T) {
	s, keys := newSigner(t)
	export := chainOf(t, s, "CHG1", "CHG2", "CHG3")
	rep, err := Verify(bytes.NewReader(export), keys)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Records != 3 || rep.Broken != nil {
		t.Fatalf("report = %+v, want 3 records verified", rep)
	}
	if len(rep.Chains) != 1 || rep.Chains[0].First != 1 || rep.Chains[0].Last != 3 {
		t.Errorf("chains = %+v", rep.Chains)
	}
	if len(rep.Keys) != 1 || rep.Keys[0].KeyVersion != 1 || rep.Keys[0].Records != 3 || !strings.HasPrefix(rep.Keys[0].KeyID, "file:") {
		t.Errorf("keys = %+v", rep.Keys)
	}
}

// TestVerifyDetectsEveryByteEdit flips each byte of the middle record, one at a time, in
// several ways, and requires verification to fail at that record every time.
func TestVerifyDetectsEveryByteEdit(t *testing.T) {
	s, keys := newSigner(t)
	export := chainOf(t, s, "CHG1", "CHG2", "CHG3")
	lines := bytes.SplitAfter(export, []byte("\n"))
	start := len(lines[0])
	end := start + len(lines[1]) - 1 // the middle record, without its newline
	for _, mask := range []byte{0x01, 0x20, 0x80} {
		for i := start; i < end; i++ {
			edited := append([]byte(nil), export...)
			edited[i] ^= mask
			if edited[i] == '\n' {
				continue // splits the record in two lines: checked below
			}
			rep, err := Verify(bytes.NewReader(edited), keys)
			if err != nil {
				t.Fatalf("byte %d ^ %#x: %v", i-start, mask, err)
			}
			if rep.OK || rep.Broken == nil || rep.Broken.Line != 2 {
				t.Fatalf("byte %d (%q) ^ %#x not detected at line 2: %+v", i-start, export[i], mask, rep)
			}
		}
	}
	// A newline inserted inside the record, and the record removed, are detected too.
	split := append(append(append([]byte(nil), export[:start+10]...), '\n'), export[start+10:]...)
	if rep, _ := Verify(bytes.NewReader(split), keys); rep.OK || rep.Broken.Line != 2 {
		t.Errorf("split record: %+v", rep)
	}
	removed := append(append([]byte(nil), lines[0]...), lines[2]...)
	rep, _ := Verify(bytes.NewReader(removed), keys)
	if rep.OK || rep.Broken.Line != 2 || !strings.Contains(rep.Broken.Reason, "sequence 3 follows 1") {
		t.Errorf("removed record: %+v", rep.Broken)
	}
}

func TestVerifyRefuses(t *testing.T) {
	s, keys := newSigner(t)
	export := chainOf(t, s, "CHG1", "CHG2")
	lines := bytes.SplitAfter(export, []byte("\n"))
	other, otherKeys := newSigner(t)
	unsigned := record("CHG9")
	unsigned.Data.Chain = &events.ChainLink{Sequence: 1, PreviousSHA256: events.GenesisHash}
	_, unsignedLine, err := Seal(nil, unsigned)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		export []byte
		keys   Keyring
		line   int
		reason string
	}{
		{"swapped order", append(append([]byte(nil), lines[1]...), lines[0]...), keys, 2, "sequence 1 follows 2"},
		{"unknown key", export, otherKeys, 1, "no public key"},
		{"other signer's record spliced in", append(append([]byte(nil), lines[0]...), chainOf(t, other, "CHG2")...), keys, 2, "no public key"},
		{"unsigned", append(unsignedLine, '\n'), keys, 1, "not signed"},
		{"trailing data", []byte(strings.TrimSuffix(string(lines[0]), "\n") + " {}\n"), keys, 1, "after the record"},
		{"empty line", append([]byte("\n"), export...), keys, 1, "empty line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Verify(bytes.NewReader(tc.export), tc.keys)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || rep.Broken == nil || rep.Broken.Line != tc.line || !strings.Contains(rep.Broken.Reason, tc.reason) {
				t.Errorf("report = %+v, want a break at line %d mentioning %q", rep.Broken, tc.line, tc.reason)
			}
		})
	}
}

func TestVerifySkipsByteIdenticalDuplicates(t *testing.T) {
	s, keys := newSigner(t)
	export := chainOf(t, s, "CHG1", "CHG2")
	lines := bytes.SplitAfter(export, []byte("\n"))
	dup := append(append(append([]byte(nil), lines[0]...), lines[1]...), lines[1]...)
	rep, _ := Verify(bytes.NewReader(dup), keys)
	if !rep.OK || rep.Duplicates != 1 || rep.Records != 2 {
		t.Errorf("report = %+v, want 2 records and 1 duplicate", rep)
	}
}

func TestLoadFileSigner(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	pemBytes, err := MarshalPrivateKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(good, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := LoadFileSigner(good)
	if err != nil {
		t.Fatal(err)
	}
	if s.keyID != NewFileSigner(key).keyID {
		t.Errorf("key id %s differs from the key's", s.keyID)
	}
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a key at all, secret-ish content"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadFileSigner(bad)
	if err == nil || strings.Contains(err.Error(), "secret-ish") {
		t.Errorf("bad key file: err = %v, want an error that does not quote the file", err)
	}
	if _, err := LoadFileSigner(filepath.Join(dir, "missing.pem")); err == nil {
		t.Error("missing key file accepted")
	}
}
