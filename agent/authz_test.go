package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"

	"github.com/rotation-agent/rotation-agent/events"
)

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func userPublicKey(t *testing.T) (nkeys.KeyPair, string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	return kp, pub
}

func TestRotateAuthorisation(t *testing.T) {
	_, key := userPublicKey(t)
	a, err := loadRotateAuthz(writeTemp(t, `requesters:
  - name: team-payments
    key: `+key+`
    allow:
      - select: {services: [payments, payments-worker]}
        kinds: [kv-v2]
      - select: {services: [payments], environments: [staging]}
        emergency: true
`))
	if err != nil {
		t.Fatal(err)
	}
	kv := events.CredentialRef{Kind: "kv-v2", Mount: "secret", Path: "a"}
	pki := events.CredentialRef{Kind: "pki", Mount: "pki", Path: "web"}
	tests := []struct {
		name    string
		req     events.RotateRequest
		creds   []events.CredentialRef
		wantErr string
	}{
		{"allowed service and kind", events.RotateRequest{RequesterKey: key, Selector: events.Targets{Services: []string{"Payments"}}}, []events.CredentialRef{kv}, ""},
		{"two allowed services", events.RotateRequest{RequesterKey: key, Selector: events.Targets{Services: []string{"payments", "payments-worker"}}}, []events.CredentialRef{kv}, ""},
		{"other service", events.RotateRequest{RequesterKey: key, Selector: events.Targets{Services: []string{"billing"}}}, nil, "may not rotate selector services=billing"},
		{"extra selector key", events.RotateRequest{RequesterKey: key, Selector: events.Targets{Services: []string{"payments"}, Hosts: []string{"db1"}}}, nil, "may not rotate selector"},
		{"kind not allowed by the first rule", events.RotateRequest{RequesterKey: key, Selector: events.Targets{Services: []string{"payments-worker"}}}, []events.CredentialRef{pki}, "may not rotate pki:pki/web"},
		{"any kind by the second rule", events.RotateRequest{RequesterKey: key, Selector: events.Targets{Services: []string{"payments"}, Environments: []string{"staging"}}}, []events.CredentialRef{pki}, ""},
		{"emergency by the second rule", events.RotateRequest{RequesterKey: key, Emergency: true, Selector: events.Targets{Services: []string{"payments"}, Environments: []string{"staging"}}}, []events.CredentialRef{kv}, ""},
		{"emergency refused by the first rule", events.RotateRequest{RequesterKey: key, Emergency: true, Selector: events.Targets{Services: []string{"payments"}}}, []events.CredentialRef{kv}, "may not ask for an emergency rotation"},
		{"unknown key", events.RotateRequest{RequesterKey: "UNKNOWN", Selector: events.Targets{Services: []string{"payments"}}}, nil, "is not allowed to rotate anything"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.authorise(tt.req, tt.creds)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error = %v, want %q", err, tt.wantErr)
			}
		})
	}
	none, err := loadRotateAuthz("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := none.authorise(tests[0].req, tests[0].creds); err == nil {
		t.Error("without an authorisation file every request must be refused")
	}
}

func TestRotateAuthorisationFileErrors(t *testing.T) {
	_, err := loadRotateAuthz(writeTemp(t, `requesters:
  - name: ""
    key: SUAKEY
    allow:
      - select: {service: [x]}
  - name: nobody
    key: UNOTAKEY
`))
	if err == nil {
		t.Fatal("a bad file was accepted")
	}
	for _, want := range []string{"name is required", "nkey user public key", `unknown selector "service"`, "allow needs at least one rule"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if _, err := loadRotateAuthz(writeTemp(t, "requesters: []\nextra: 1\n")); err == nil {
		t.Error("an unknown field was accepted")
	}
}

func TestSignatureVerification(t *testing.T) {
	kp, key := userPublicKey(t)
	_, other := userPublicKey(t)
	seed, _ := kp.Seed()
	body := []byte(`{"request_id":"r"}`)
	sig, err := SignRotateRequest(seed, body)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifySignature(key, body, sig); err != nil {
		t.Errorf("a good signature was refused: %v", err)
	}
	for name, check := range map[string]error{
		"other key":     verifySignature(other, body, sig),
		"changed body":  verifySignature(key, []byte(`{"request_id":"s"}`), sig),
		"no signature":  verifySignature(key, body, ""),
		"not base64url": verifySignature(key, body, "!!"),
	} {
		if check == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if pub, err := NkeyPublicKey(seed); err != nil || pub != key {
		t.Errorf("NkeyPublicKey = %q %v, want %q", pub, err, key)
	}
}

func TestReviewConfigParsing(t *testing.T) {
	r := ReviewConfig{Deadlines: "production=4h, staging=72h", Reminders: []string{"4h", "1h"}}
	d, err := r.deadlines()
	if err != nil || d["production"].Hours() != 4 || d["staging"].Hours() != 72 {
		t.Errorf("deadlines = %v %v", d, err)
	}
	if rem, err := r.reminders(); err != nil || len(rem) != 2 || rem[0].Hours() != 4 {
		t.Errorf("reminders = %v %v", rem, err)
	}
	for _, bad := range []ReviewConfig{{Deadlines: "production"}, {Deadlines: "production=soon"}, {Deadlines: "=4h"}} {
		if _, err := bad.deadlines(); err == nil {
			t.Errorf("deadlines %q accepted", bad.Deadlines)
		}
	}
	for _, bad := range [][]string{{"1h", "4h"}, {"0s"}, {"x"}} {
		if _, err := (ReviewConfig{Reminders: bad}).reminders(); err == nil {
			t.Errorf("reminders %v accepted", bad)
		}
	}
	cfg := Defaults()
	cfg.Vault.Addr, cfg.Vault.Token = "https://vault.example:8200", "t"
	cfg.Review.OverdueAction, cfg.Schedule.DriftCheck, cfg.Schedule.Interval = "explode", "never", 0
	err = cfg.Validate()
	for _, want := range []string{"REVIEW_OVERDUE_ACTION", "SCHEDULE_DRIFT_CHECK", "SCHEDULE_INTERVAL"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want a problem naming %s", err, want)
		}
	}
}
