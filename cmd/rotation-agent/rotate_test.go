package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
)

func TestSelectorFlag(t *testing.T) {
	var s selectorFlag
	for _, v := range []string{"service=payments,billing", "env=production", "host=db1", "ci=CI1", "owner=team", "identity=svc"} {
		if err := s.Set(v); err != nil {
			t.Fatalf("Set(%q): %v", v, err)
		}
	}
	want := events.Targets{Services: []string{"payments", "billing"}, Environments: []string{"production"}, Hosts: []string{"db1"},
		ConfigurationItems: []string{"CI1"}, Owners: []string{"team"}, Identities: []string{"svc"}}
	if describeTargets(s.targets) != describeTargets(want) {
		t.Errorf("targets = %+v", s.targets)
	}
	for _, bad := range []string{"payments", "service=", "colour=blue"} {
		if err := s.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}

func TestRotateAndReviewUsage(t *testing.T) {
	for _, args := range [][]string{
		{"rotate"},
		{"rotate", "--selector", "service=payments"},
		{"rotate", "--selector", "service=payments", "--reason", "x"}, // no key
		{"review"},
		{"review", "attest"},
		{"review", "attest", "CHG1", "--by", "alice"},
		{"review", "attest", "CHG1", "--by", "alice", "--decision", "maybe"},
	} {
		var out, errOut bytes.Buffer
		t.Setenv("ROTATION_AGENT_REQUEST_NKEY_SEED_FILE", "")
		if code := runCLI(context.Background(), args, &out, &errOut, nil); code != exitUsage {
			t.Errorf("%v exited %d, want %d (usage)", args, code, exitUsage)
		}
		if !strings.Contains(errOut.String(), "rotation-agent") {
			t.Errorf("%v: no usage message: %q", args, errOut.String())
		}
	}
}

func TestPrintEvidenceExitCode(t *testing.T) {
	until := time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC)
	ok := events.Envelope[events.Evidence]{Data: events.Evidence{ChangeID: "manual:r", Status: events.StatusDeferred, Credentials: []events.CredentialEvidence{
		{Credential: "kv-v2:secret/a", Outcome: events.OutcomeRotated}, {Credential: "kv-v2:secret/b", Outcome: events.OutcomeDeferred, DeferredUntil: &until}}}}
	var out bytes.Buffer
	if code := printEvidence(&out, ok); code != exitOK || !strings.Contains(out.String(), "deferred until 2026-12-05T02:00:00Z") {
		t.Errorf("deferred evidence exited %d:\n%s", code, out.String())
	}
	failed := ok
	failed.Data.Credentials = []events.CredentialEvidence{{Credential: "kv-v2:secret/a", Outcome: events.OutcomeFailed, Error: "permission denied"}}
	out.Reset()
	if code := printEvidence(&out, failed); code != exitFailed || !strings.Contains(out.String(), "permission denied") {
		t.Errorf("failed evidence exited %d:\n%s", code, out.String())
	}
}
