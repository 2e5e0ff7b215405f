package events

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestOverallStatusDeferred(t *testing.T) {
	rotated, deferred, failed := CredentialEvidence{Outcome: OutcomeRotated}, CredentialEvidence{Outcome: OutcomeDeferred}, CredentialEvidence{Outcome: OutcomeFailed}
	tests := []struct {
		creds []CredentialEvidence
		want  Status
	}{
		{[]CredentialEvidence{deferred}, StatusDeferred},
		{[]CredentialEvidence{rotated, deferred}, StatusDeferred},
		{[]CredentialEvidence{failed, deferred}, StatusFailed},
		{[]CredentialEvidence{rotated, failed, deferred}, StatusPartial},
	}
	for _, tt := range tests {
		if got := OverallStatus(tt.creds); got != tt.want {
			t.Errorf("OverallStatus(%v) = %s, want %s", tt.creds, got, tt.want)
		}
	}
}

func TestDecodeRotateRequest(t *testing.T) {
	good := `{"request_id":"req-1","requester_key":"UCKM3ALQ4OT6GWKOJLK6Z4WKG6DXVRSNUVV2B3G5ZKXFHVNCDBFXPWVP","selector":{"services":["payments"]},"kind":"kv-v2","reason":"quarterly","issued_at":"2026-11-30T06:00:00Z"}`
	var req RotateRequest
	if err := DecodeRequest([]byte(good), RotateRequestSchema, &req); err != nil {
		t.Fatalf("valid request refused: %v", err)
	}
	if req.RequestID != "req-1" || req.Selector.Services[0] != "payments" || !req.IssuedAt.Equal(time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)) {
		t.Errorf("decoded %+v", req)
	}
	bad := map[string]string{
		"empty selector":   `{"request_id":"r","requester_key":"UCKM3ALQ4OT6GWKOJLK6Z4WKG6DXVRSNUVV2B3G5ZKXFHVNCDBFXPWVP","selector":{},"reason":"x","issued_at":"2026-11-30T06:00:00Z"}`,
		"no reason":        `{"request_id":"r","requester_key":"UCKM3ALQ4OT6GWKOJLK6Z4WKG6DXVRSNUVV2B3G5ZKXFHVNCDBFXPWVP","selector":{"services":["a"]},"issued_at":"2026-11-30T06:00:00Z"}`,
		"not a user key":   `{"request_id":"r","requester_key":"SUAXYZ","selector":{"services":["a"]},"reason":"x","issued_at":"2026-11-30T06:00:00Z"}`,
		"unknown field":    `{"request_id":"r","requester_key":"UCKM3ALQ4OT6GWKOJLK6Z4WKG6DXVRSNUVV2B3G5ZKXFHVNCDBFXPWVP","selector":{"services":["a"]},"reason":"x","issued_at":"2026-11-30T06:00:00Z","admin":true}`,
		"malformed":        `{"request_id":`,
		"wildcard in id":   `{"request_id":"a.>","requester_key":"UCKM3ALQ4OT6GWKOJLK6Z4WKG6DXVRSNUVV2B3G5ZKXFHVNCDBFXPWVP","selector":{"services":["a"]},"reason":"x","issued_at":"2026-11-30T06:00:00Z"}`,
		"attest as rotate": `{"change_id":"CHG1","by":"x","decision":"approve"}`,
	}
	for name, body := range bad {
		var r RotateRequest
		err := DecodeRequest([]byte(body), RotateRequestSchema, &r)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if !strings.Contains(err.Error(), "request") {
			t.Errorf("%s: error %q does not say the request is wrong", name, err)
		}
	}
}

func TestReviewTypesMatchSchemas(t *testing.T) {
	at := time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)
	review := Review{ChangeID: "CHG1", Status: ReviewRejected, Event: ReviewAttested, OpenedAt: at, Deadline: at.Add(24 * time.Hour),
		Environments: []string{"production"}, Attestations: []Attestation{{By: "alice", Decision: DecisionReject, Note: "n", At: at}},
		Granted: []string{"token:token/acc"}, CleanupChangeID: "review:CHG1", EscalatedAt: &at, Agent: AgentInfo{ID: "a", Version: "v"}}
	env := Envelope[Review]{SpecVersion: SpecVersion, ID: "review:CHG1:attested:1", Source: "rotation-agent/a", Type: TypeReview,
		Subject: "CHG1", Time: at, DataContentType: "application/json", Data: review}
	raw, _ := json.Marshal(env)
	s, err := Schema("schema/review.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	_ = json.Unmarshal(raw, &doc)
	if err := s.Validate(doc); err != nil {
		t.Errorf("review record does not match its schema: %v", err)
	}
	for _, tc := range []struct {
		schema string
		keys   []string
		value  any
	}{
		{"schema/review.schema.json", []string{"$defs", "review"}, review},
		{"schema/review.schema.json", []string{"$defs", "attestation"}, review.Attestations[0]},
		{ReviewAttestSchema, nil, AttestRequest{ChangeID: "c", By: "b", Decision: DecisionApprove, Note: "n"}},
		{RotateRequestSchema, nil, RotateRequest{RequestID: "r", RequesterKey: "U", Selector: Targets{Services: []string{"a"}}, Kind: "k", Reason: "r", DryRun: true, Emergency: true, IssuedAt: at}},
	} {
		if got, want := schemaPropertyNames(t, tc.schema, tc.keys...), jsonKeys(t, tc.value); !reflect.DeepEqual(got, want) {
			t.Errorf("%s %v: schema properties %q, Go fields %q", tc.schema, tc.keys, got, want)
		}
	}
}
