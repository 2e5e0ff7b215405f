// Package evidence tests the evidence records an auditor relies on, against real Vault and
// NATS: entitlement drift and its remediation, tamper-evident exports and the closure gate.
package evidence

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rotation-agent/rotation-agent/agent"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/evidence"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

const waitEvidence = 30 * time.Second

func kvRef(path string) events.CredentialRef {
	return events.CredentialRef{Kind: "kv-v2", Mount: "secret", Path: path, Fields: []string{"password"}}
}

// changeWith is a change event naming creds and approving the entitlements.
func changeWith(t *testing.T, changeID string, ents []events.ApprovedEntitlements, creds ...events.CredentialRef) []byte {
	t.Helper()
	var ev events.ChangeEvent
	if err := json.Unmarshal(harness.ChangeEvent(t, changeID, creds...), &ev); err != nil {
		t.Fatal(err)
	}
	ev.Data.ApprovedEntitlements = ents
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// appRoleWithPolicies enables AppRole at approle/ and creates role with policies.
func appRoleWithPolicies(t *testing.T, root *vaultapi.Client, role string, policies ...string) {
	t.Helper()
	if err := root.Sys().EnableAuthWithOptions("approle", &vaultapi.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/approle/role/"+role, map[string]any{"token_policies": policies}); err != nil {
		t.Fatal(err)
	}
}

func rolePolicies(t *testing.T, root *vaultapi.Client, role string) []string {
	t.Helper()
	sec, err := root.Logical().Read("auth/approle/role/" + role + "/policies")
	if err != nil || sec == nil {
		t.Fatalf("read role policies: %v", err)
	}
	var out []string
	for _, p := range sec.Data["token_policies"].([]any) {
		out = append(out, p.(string))
	}
	sort.Strings(out)
	return out
}

// request asks the agent's evidence service.
func request(t *testing.T, nc *nats.Conn, subject, changeID string, out any) {
	t.Helper()
	msg, err := nc.Request(subject, []byte(`{"change_id":"`+changeID+`"}`), 10*time.Second)
	if err != nil {
		t.Fatalf("request %s: %v", subject, err)
	}
	if e := msg.Header.Get("Nats-Service-Error"); e != "" {
		t.Fatalf("request %s: service error %s", subject, e)
	}
	if err := json.Unmarshal(msg.Data, out); err != nil {
		t.Fatalf("decode reply of %s: %v", subject, err)
	}
}

var subjects = events.Subjects{Prefix: events.DefaultSubjectPrefix}

// An AppRole role that gained a policy after approval is reported as drift, with the extra
// policy named, and the closure gate refuses the change; with remediation on, the approved
// policies are written back, read back from Vault, and the change may close.
func TestEntitlementDriftAndRemediation(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	v.PutKV(t, "payments/db", map[string]any{"password": "canary-old-7c1e"})
	appRoleWithPolicies(t, v.Root, "payments", "payments-read")
	for name, caps := range map[string]string{"payments-read": `["read"]`, "admin": `["read", "update"]`} {
		if err := v.Root.Sys().PutPolicy(name, `path "secret/data/payments/*" { capabilities = `+caps+` }`); err != nil {
			t.Fatal(err)
		}
	}
	// After approval, someone attaches admin to the role.
	if _, err := v.Root.Logical().Write("auth/approle/role/payments/policies", map[string]any{"token_policies": []string{"payments-read", "admin"}}); err != nil {
		t.Fatal(err)
	}
	approved := []events.ApprovedEntitlements{{Identity: "approle:approle/payments", Policies: []string{"payments-read"},
		Capabilities: map[string][]string{"secret/data/payments/db": {"read"}}}}

	cfg := harness.AgentConfig(t, v, v.AgentToken(t), n)
	ra := harness.StartAgent(t, cfg)
	bus.Publish(t, changeWith(t, "CHG-DRIFT", approved, kvRef("payments/db")), "evt-CHG-DRIFT")
	ev := bus.WaitEvidence(t, "CHG-DRIFT", waitEvidence)
	if ev.Data.Status != events.StatusDrift {
		t.Fatalf("status = %q, want drift", ev.Data.Status)
	}
	if len(ev.Data.Entitlements) != 1 {
		t.Fatalf("entitlements = %+v", ev.Data.Entitlements)
	}
	e := ev.Data.Entitlements[0]
	if e.Status != events.EntitlementDrift || !reflect.DeepEqual(e.ExtraPolicies, []string{"admin"}) || len(e.MissingPolicies) != 0 {
		t.Errorf("entitlement = %+v, want drift with extra [admin]", e)
	}
	// The extra policy shows on the declared path too, measured by a probe login as the role.
	if len(e.Capabilities) != 1 || e.Capabilities[0].Status != events.CapabilityDrift || !reflect.DeepEqual(e.Capabilities[0].Extra, []string{"update"}) ||
		e.Capabilities[0].MeasuredBy != events.MeasuredByProbeLogin {
		t.Errorf("capabilities = %+v, want drift with extra [update] measured by probe-login", e.Capabilities)
	}
	if got := rolePolicies(t, v.Root, "payments"); !reflect.DeepEqual(got, []string{"admin", "payments-read"}) {
		t.Errorf("without remediation the role changed: %v", got)
	}
	if !containsAll(ev.Data.Controls, events.ControlNISTAccessPermissions, events.ControlNHIOverprivileged, events.ControlNHILongLived) {
		t.Errorf("controls = %v", ev.Data.Controls)
	}
	nc := n.Connect(t)
	var gate events.ClosureAnswer
	request(t, nc, subjects.ClosureCheck(), "CHG-DRIFT", &gate)
	if gate.MayClose || !strings.Contains(strings.Join(gate.Reasons, "\n"), "extra policies [admin]") {
		t.Errorf("closure gate = %+v, want no naming the extra policy", gate)
	}
	ra.Stop(t)

	// Remediation on: the agent needs the optional remediation rules as well.
	cfg.Vault.Token = v.AgentTokenWith(t, harness.RemediationPolicyFile)
	cfg.Evidence.RemediateEntitlements = true
	harness.StartAgent(t, cfg)
	bus.Publish(t, changeWith(t, "CHG-REMEDIATE", approved, kvRef("payments/db")), "evt-CHG-REMEDIATE")
	ev = bus.WaitEvidence(t, "CHG-REMEDIATE", waitEvidence)
	if ev.Data.Status != events.StatusReconciled {
		t.Fatalf("status = %q, want reconciled after remediation; entitlements %+v", ev.Data.Status, ev.Data.Entitlements)
	}
	e = ev.Data.Entitlements[0]
	if e.Status != events.EntitlementRemediated || e.Remediation == nil || !e.Remediation.Verified ||
		!reflect.DeepEqual(e.Remediation.SetPolicies, []string{"payments-read"}) || !reflect.DeepEqual(e.ExtraPolicies, []string{"admin"}) {
		t.Errorf("entitlement = %+v, want remediated, recording the extra admin it removed", e)
	}
	if got := rolePolicies(t, v.Root, "payments"); !reflect.DeepEqual(got, []string{"payments-read"}) {
		t.Errorf("role policies after remediation = %v, want [payments-read]", got)
	}
	// The capabilities are recorded as found, with what a second probe found after remediation.
	if len(e.Capabilities) != 1 || e.Capabilities[0].Status != events.CapabilityDrift || !strings.Contains(e.Capabilities[0].Note, "after remediation: match") {
		t.Errorf("capabilities after remediation = %+v, want the drift found and a match after remediation", e.Capabilities)
	}
	request(t, nc, subjects.ClosureCheck(), "CHG-REMEDIATE", &gate)
	if !gate.MayClose || len(gate.Reasons) != 0 {
		t.Errorf("closure gate = %+v, want yes", gate)
	}
	// The restarted agent continued its chain: one chain, sequences 1 and 2.
	if ev.Data.Chain == nil || ev.Data.Chain.Sequence != 2 {
		t.Errorf("chain link after restart = %+v, want sequence 2", ev.Data.Chain)
	}
}

func containsAll(list []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, l := range list {
			found = found || l == w
		}
		if !found {
			return false
		}
	}
	return true
}

// The closure gate says no before the change is reconciled and while the old credential is
// still inside its overlap window, and yes once the retirement is recorded.
func TestClosureGateWaitsForReconciliation(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	v.PutKV(t, "orders/db", map[string]any{"password": "canary-old-91ab"})
	cfg := harness.AgentConfig(t, v, v.AgentToken(t), n)
	cfg.RetireInterval = time.Second
	harness.StartAgent(t, cfg)
	nc := n.Connect(t)

	// A malformed request gets a service error naming the problem.
	for _, subject := range []string{subjects.ClosureCheck(), subjects.EvidenceGet()} {
		msg, err := nc.Request(subject, []byte(`{"change_id":"*.>"}`), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Header.Get("Nats-Service-Error-Code") != "400" || !strings.Contains(msg.Header.Get("Nats-Service-Error"), "/change_id") {
			t.Errorf("%s with a bad change id: headers %v", subject, msg.Header)
		}
	}
	var gate events.ClosureAnswer
	request(t, nc, subjects.ClosureCheck(), "CHG-GATE", &gate)
	if gate.MayClose || !strings.Contains(strings.Join(gate.Reasons, "\n"), "no evidence record") {
		t.Fatalf("gate before the change = %+v, want no: no evidence", gate)
	}
	ref := kvRef("orders/db")
	ref.Options = map[string]string{"overlap": "10s"} // long enough to ask the gate inside it on a busy machine
	bus.Publish(t, harness.ChangeEvent(t, "CHG-GATE", ref), "evt-CHG-GATE")
	ev := bus.WaitEvidence(t, "CHG-GATE", waitEvidence)
	if ev.Data.Credentials[0].OldCredential != "retire_pending" {
		t.Fatalf("old credential = %q, want retire_pending", ev.Data.Credentials[0].OldCredential)
	}
	request(t, nc, subjects.ClosureCheck(), "CHG-GATE", &gate)
	if gate.MayClose || !strings.Contains(strings.Join(gate.Reasons, "\n"), "still works") {
		t.Fatalf("gate during the overlap = %+v, want no: old credential still works", gate)
	}
	deadline := time.Now().Add(waitEvidence)
	for {
		request(t, nc, subjects.ClosureCheck(), "CHG-GATE", &gate)
		if gate.MayClose {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gate still says no after the overlap: %+v", gate)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if gate.Records != 2 || gate.Status != events.StatusReconciled {
		t.Errorf("gate = %+v, want yes on the change and retirement records", gate)
	}
	var reply events.EvidenceReply
	request(t, nc, subjects.EvidenceGet(), "CHG-GATE", &reply)
	if len(reply.Records) != 2 || reply.Records[1].Data.Trigger != events.TriggerSchedule {
		t.Errorf("evidence get returned %d records: %+v", len(reply.Records), reply.Records)
	}
}

// An export of real records verifies with the signer's public keys; editing one byte of the
// second record makes verification fail at that record; the gaps report is empty.
func TestTamperedExportFailsAtTheEditedRecord(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	cfg := harness.AgentConfig(t, v, v.AgentToken(t), n)
	ra := harness.StartAgent(t, cfg)
	for _, id := range []string{"CHG-A", "CHG-B", "CHG-C"} {
		v.PutKV(t, "app/"+id, map[string]any{"password": "canary-" + id})
		bus.Publish(t, harness.ChangeEvent(t, id, kvRef("app/"+id)), "evt-"+id)
		bus.WaitEvidence(t, id, waitEvidence)
	}
	ctx := context.Background()
	js, err := jetstream.New(n.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	var export bytes.Buffer
	count, err := agent.ExportEvidence(ctx, js, cfg.NATS.EvidenceStream, subjects, time.Time{}, &export)
	if err != nil || count != 3 {
		t.Fatalf("export: %d records, %v", count, err)
	}
	signer, err := evidence.LoadFileSigner(cfg.Evidence.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	pubs, _ := signer.PublicKeys(ctx)
	keys := evidence.Keyring{Keys: pubs}
	rep, err := evidence.Verify(bytes.NewReader(export.Bytes()), keys)
	if err != nil || !rep.OK || rep.Records != 3 || rep.Chains[0].First != 1 || rep.Chains[0].Last != 3 {
		t.Fatalf("verify intact export: %+v, %v", rep, err)
	}
	// Change the second record's outcome text by one byte: "rotated" -> "rotatee".
	lines := bytes.SplitAfter(export.Bytes(), []byte("\n"))
	i := bytes.Index(lines[1], []byte(`"outcome":"rotated"`))
	if i < 0 {
		t.Fatalf("second record has no rotated outcome: %s", lines[1])
	}
	lines[1][i+len(`"outcome":"rotate`)] = 'e'
	rep, err = evidence.Verify(bytes.NewReader(bytes.Join(lines, nil)), keys)
	if err != nil || rep.OK || rep.Broken == nil || rep.Broken.Line != 2 || rep.Broken.RecordID == "" {
		t.Fatalf("tampered export: %+v, want a break at line 2", rep.Broken)
	}
	gaps, err := agent.EvidenceGaps(ctx, js, cfg.NATS, subjects, time.Now().Add(-time.Hour))
	if err != nil || len(gaps) != 0 {
		t.Errorf("gaps = %+v, %v; want none", gaps, err)
	}
	// A change the agent never saw (published to the stream while no agent runs) is a gap.
	ra.Stop(t)
	bus.Publish(t, harness.ChangeEvent(t, "CHG-UNSEEN", kvRef("app/CHG-A")), "evt-CHG-UNSEEN")
	gaps, err = agent.EvidenceGaps(ctx, js, cfg.NATS, subjects, time.Now().Add(-time.Hour))
	if err != nil || len(gaps) != 1 || gaps[0].ChangeID != "CHG-UNSEEN" || !strings.Contains(gaps[0].Reason, "no final evidence") {
		t.Errorf("gaps = %+v, %v; want CHG-UNSEEN", gaps, err)
	}
	// The signing key never appears in the log or on the bus.
	pemBytes, err := os.ReadFile(cfg.Evidence.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Split(string(pemBytes), "\n")[1]
	if strings.Contains(ra.Log.String(), body) || strings.Contains(strings.Join(bus.Payloads(), "\n"), body) {
		t.Error("the evidence signing key leaked into the log or onto the bus")
	}
}

// With a Vault transit ed25519 key, records are signed through transit/sign; after the key is
// rotated, new records carry the new key version, and the keyring of every version read
// from transit/keys verifies the whole export.
func TestTransitSignedExportVerifies(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	if err := v.Root.Sys().Mount("transit", &vaultapi.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Root.Logical().Write("transit/keys/evidence", map[string]any{"type": "ed25519"}); err != nil {
		t.Fatal(err)
	}
	cfg := harness.AgentConfig(t, v, v.AgentToken(t), n)
	cfg.Evidence.Signer, cfg.Evidence.KeyFile, cfg.Evidence.TransitKey = agent.SignerTransit, "", "evidence"
	harness.StartAgent(t, cfg)
	publish := func(id string) events.Envelope[events.Evidence] {
		v.PutKV(t, "app/"+id, map[string]any{"password": "canary-" + id})
		bus.Publish(t, harness.ChangeEvent(t, id, kvRef("app/"+id)), "evt-"+id)
		return bus.WaitEvidence(t, id, waitEvidence)
	}
	first := publish("CHG-T1")
	if _, err := v.Root.Logical().Write("transit/keys/evidence/rotate", nil); err != nil {
		t.Fatal(err)
	}
	second := publish("CHG-T2")
	if first.Data.Signature == nil || first.Data.Signature.KeyID != "transit:transit/evidence" || first.Data.Signature.KeyVersion != 1 ||
		second.Data.Signature == nil || second.Data.Signature.KeyVersion != 2 {
		t.Fatalf("signatures = %+v, %+v; want transit:transit/evidence versions 1 then 2", first.Data.Signature, second.Data.Signature)
	}
	ctx := context.Background()
	keys, err := agent.SignerPublicKeys(ctx, cfg)
	if err != nil || len(keys) != 2 {
		t.Fatalf("public keys = %+v, %v; want two versions", keys, err)
	}
	js, err := jetstream.New(n.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	var export bytes.Buffer
	if _, err := agent.ExportEvidence(ctx, js, cfg.NATS.EvidenceStream, subjects, time.Time{}, &export); err != nil {
		t.Fatal(err)
	}
	rep, err := evidence.Verify(bytes.NewReader(export.Bytes()), evidence.Keyring{Keys: keys})
	if err != nil || !rep.OK || rep.Records != 2 || len(rep.Keys) != 2 {
		t.Fatalf("verify = %+v, %v; want both records verified with two key versions", rep, err)
	}
	// Without the rotated version's key the second record fails, by name.
	rep, _ = evidence.Verify(bytes.NewReader(export.Bytes()), evidence.Keyring{Keys: keys[:1]})
	if rep.OK || rep.Broken.Line != 2 || !strings.Contains(rep.Broken.Reason, "version 2") {
		t.Errorf("verify with version 1 only = %+v, want a break at line 2 naming version 2", rep.Broken)
	}
}
