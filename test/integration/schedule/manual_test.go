package schedule

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/rotation-agent/rotation-agent/agent"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

const manualInventory = `version: 1
bindings:
  - name: payments-db
    select: {services: [payments]}
    credential: {kind: kv-v2, mount: secret, path: payments/db}
  - name: payments-api-key
    select: {services: [payments]}
    credential: {kind: kv-v2, mount: secret, path: payments/api}
  - name: billing-db
    select: {services: [billing]}
    credential: {kind: kv-v2, mount: secret, path: billing/db}
`

// userKey creates an nkey user and returns its seed file and public key.
func userKey(t *testing.T) (seedFile, public string, kp nkeys.KeyPair) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	public, _ = kp.PublicKey()
	return writeFile(t, "seed.nk", string(seed)), public, kp
}

// signedRequest builds a rotate request signed by kp.
func signedRequest(t *testing.T, kp nkeys.KeyPair, req events.RotateRequest) ([]byte, nats.Header) {
	t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	sig, err := agent.SignRotateRequest(seed, body)
	if err != nil {
		t.Fatal(err)
	}
	return body, nats.Header{events.SignatureHeader: []string{sig}}
}

// A platform team rotates its own service's credentials from the command line and sees each
// one's outcome; asking for another team's service, signing with an unknown key, replaying
// an old request or forging the signature is refused with a reason and a rejection record,
// and Vault is not written.
func TestManualRotationIsAuthorised(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	for _, p := range []string{"payments/db", "payments/api", "billing/db"} {
		v.PutKV(t, p, map[string]any{"password": "canary-manual-" + p})
	}
	seedFile, public, kp := userKey(t)
	_, strangerPublic, stranger := userKey(t)
	authz := writeFile(t, "authz.yaml", fmt.Sprintf(`requesters:
  - name: team-payments
    key: %s
    allow:
      - select: {services: [payments]}
        kinds: [kv-v2]
`, public))
	cfg := config(t, v, n)
	cfg.InventoryFile = writeFile(t, "inventory.yaml", manualInventory)
	cfg.Manual.AuthFile = authz
	ra := harness.StartAgent(t, cfg)
	nc := n.Connect(t)
	issued := time.Now().UTC()

	refusals := []struct {
		name string
		kp   nkeys.KeyPair
		req  events.RotateRequest
		want string
	}{
		{"another team's service", kp, events.RotateRequest{RequestID: "r-billing", RequesterKey: public, Selector: events.Targets{Services: []string{"billing"}}, Reason: "curious", IssuedAt: issued},
			"team-payments may not rotate selector services=billing"},
		{"unknown requester", stranger, events.RotateRequest{RequestID: "r-stranger", RequesterKey: strangerPublic, Selector: events.Targets{Services: []string{"payments"}}, Reason: "x", IssuedAt: issued},
			"is not allowed to rotate anything"},
		{"forged signature", stranger, events.RotateRequest{RequestID: "r-forged", RequesterKey: public, Selector: events.Targets{Services: []string{"payments"}}, Reason: "x", IssuedAt: issued},
			"signature does not verify"},
		{"replayed request", kp, events.RotateRequest{RequestID: "r-old", RequesterKey: public, Selector: events.Targets{Services: []string{"payments"}}, Reason: "x", IssuedAt: issued.Add(-time.Hour)},
			"outside the accepted 5m0s"},
		{"emergency not allowed", kp, events.RotateRequest{RequestID: "r-emergency", RequesterKey: public, Selector: events.Targets{Services: []string{"payments"}}, Reason: "x", Emergency: true, IssuedAt: issued},
			"may not ask for an emergency rotation"},
	}
	for _, tc := range refusals {
		body, header := signedRequest(t, tc.kp, tc.req)
		var reply events.RotateReply
		request(t, nc, "rotation.rotate", body, header, &reply)
		if reply.Status != events.RotateRefused || !contains(reply.Reason, tc.want) {
			t.Errorf("%s: reply %+v, want refused saying %q", tc.name, reply, tc.want)
		}
	}
	rejections := bus.WaitRejections(t, len(refusals), waitEvidence)
	for _, r := range rejections {
		if r.Data.ReasonCode != events.ReasonUnauthorized || r.Data.Subject != "rotation.rotate" || r.Data.Reason == "" {
			t.Errorf("rejection = %+v, want unauthorized with a reason", r.Data)
		}
	}

	// From the command line: refused and non-zero.
	env := []string{"ROTATION_AGENT_NATS_URL=" + n.URL}
	out, code := runCLI(t, env, "rotate", "--selector", "service=billing", "--reason", "curious", "--nkey-seed", seedFile, "--wait")
	if code == 0 || !contains(out, "refused", "may not rotate selector services=billing") {
		t.Errorf("refused rotate exited %d:\n%s", code, out)
	}
	// Nothing was written to Vault by any refused request.
	for _, p := range []string{"payments/db", "payments/api", "billing/db"} {
		if got := v.KV(t, p, 0).VersionMetadata.Version; got != 1 {
			t.Errorf("%s is at version %d after refused requests, want 1", p, got)
		}
	}

	// A dry run says what would be done and changes nothing.
	out, code = runCLI(t, env, "rotate", "--selector", "service=payments", "--reason", "check", "--nkey-seed", seedFile, "--dry-run")
	if code != 0 || !contains(out, "kv-v2:secret/payments/db", "kv-v2:secret/payments/api") {
		t.Errorf("dry run exited %d:\n%s", code, out)
	}
	if got := v.KV(t, "payments/db", 0).VersionMetadata.Version; got != 1 {
		t.Errorf("a dry run wrote version %d", got)
	}

	// The allowed request rotates both payments credentials and shows each.
	out, code = runCLI(t, env, "rotate", "--selector", "service=payments", "--kind", "kv-v2", "--reason", "quarterly rotation",
		"--nkey-seed", seedFile, "--request-id", "req-q4", "--wait")
	if code != 0 || !contains(out, "accepted: change manual:req-q4, 2 credential(s)", "kv-v2:secret/payments/db", "rotated", "change manual:req-q4: reconciled") {
		t.Fatalf("allowed rotate exited %d:\n%s", code, out)
	}
	ev := bus.WaitEvidence(t, "manual:req-q4", waitEvidence)
	if ev.Data.Trigger != events.TriggerManual || len(ev.Data.Credentials) != 2 {
		t.Errorf("manual evidence = %+v", ev.Data)
	}
	for _, p := range []string{"payments/db", "payments/api"} {
		if got := v.KV(t, p, 0).VersionMetadata.Version; got != 2 {
			t.Errorf("%s is at version %d, want 2", p, got)
		}
	}
	if got := v.KV(t, "billing/db", 0).VersionMetadata.Version; got != 1 {
		t.Errorf("billing/db was rotated by the payments request")
	}
	// No secret, old or new, on the bus or in the log; nor the requester's seed.
	seed, _ := kp.Seed()
	secrets := []string{string(seed)}
	for _, p := range []string{"payments/db", "payments/api"} {
		for _, version := range []int{1, 2} {
			secrets = append(secrets, v.KV(t, p, version).Data["password"].(string))
		}
	}
	ra.Stop(t)
	haystacks := append(bus.Payloads(), ra.Log.String())
	for _, secret := range secrets {
		for _, h := range haystacks {
			if contains(h, secret) {
				t.Fatalf("a secret value appears on the bus or in the log")
			}
		}
	}
}
