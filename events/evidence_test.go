package events

import (
	"reflect"
	"testing"
)

func TestOverallStatus(t *testing.T) {
	ok := CredentialEvidence{Outcome: OutcomeRotated}
	bad := CredentialEvidence{Outcome: OutcomeFailed}
	tests := []struct {
		name  string
		creds []CredentialEvidence
		want  Status
	}{
		{"nil", nil, StatusNoCredentials},
		{"empty", []CredentialEvidence{}, StatusNoCredentials},
		{"one rotated", []CredentialEvidence{ok}, StatusReconciled},
		{"all rotated", []CredentialEvidence{ok, ok, ok}, StatusReconciled},
		{"one failed", []CredentialEvidence{bad}, StatusFailed},
		{"all failed", []CredentialEvidence{bad, bad}, StatusFailed},
		{"some failed", []CredentialEvidence{ok, bad, ok}, StatusPartial},
		{"failed first", []CredentialEvidence{bad, ok}, StatusPartial},
	}
	for _, tc := range tests {
		if got := OverallStatus(tc.creds); got != tc.want {
			t.Errorf("%s: OverallStatus = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestCredentialRef(t *testing.T) {
	ref := CredentialRef{Kind: "kv-v2", Mount: "secret", Path: "payments/db"}
	if got, want := ref.ID(), "kv-v2:secret/payments/db"; got != want {
		t.Errorf("ID = %q, want %q", got, want)
	}
	if got := ref.EffectiveAction(); got != ActionRotate {
		t.Errorf("EffectiveAction with no action = %q, want %q", got, ActionRotate)
	}
	ref.Action = ActionVerify
	if got := ref.EffectiveAction(); got != ActionVerify {
		t.Errorf("EffectiveAction = %q, want %q", got, ActionVerify)
	}
}

func TestWithEntitlements(t *testing.T) {
	match := EntitlementEvidence{Status: EntitlementMatch}
	remediated := EntitlementEvidence{Status: EntitlementRemediated}
	drift := EntitlementEvidence{Status: EntitlementDrift}
	unchecked := EntitlementEvidence{Status: EntitlementError}
	tests := []struct {
		in   Status
		ents []EntitlementEvidence
		want Status
	}{
		{StatusReconciled, nil, StatusReconciled},
		{StatusReconciled, []EntitlementEvidence{match, remediated}, StatusReconciled},
		{StatusReconciled, []EntitlementEvidence{match, drift}, StatusDrift},
		{StatusReconciled, []EntitlementEvidence{unchecked}, StatusDrift},
		{StatusNoCredentials, []EntitlementEvidence{drift}, StatusDrift},
		{StatusNoCredentials, []EntitlementEvidence{match}, StatusNoCredentials},
		{StatusPartial, []EntitlementEvidence{drift}, StatusPartial},
		{StatusFailed, []EntitlementEvidence{drift}, StatusFailed},
	}
	for _, tc := range tests {
		if got := WithEntitlements(tc.in, tc.ents); got != tc.want {
			t.Errorf("WithEntitlements(%s, %+v) = %s, want %s", tc.in, tc.ents, got, tc.want)
		}
	}
}

func TestControlsFor(t *testing.T) {
	rotated := CredentialEvidence{Outcome: OutcomeRotated}
	revoked := CredentialEvidence{Outcome: OutcomeRevoked}
	failed := CredentialEvidence{Outcome: OutcomeFailed}
	ent := []EntitlementEvidence{{Status: EntitlementMatch}}
	tests := []struct {
		name string
		ev   Evidence
		want []string
	}{
		{"nothing done", Evidence{Credentials: []CredentialEvidence{failed}}, []string{ControlNISTAccessPermissions}},
		{"rotated", Evidence{Credentials: []CredentialEvidence{rotated}}, []string{ControlNISTAccessPermissions, ControlNHISecretLeakage, ControlNHILongLived}},
		{"revoked", Evidence{Credentials: []CredentialEvidence{revoked}}, []string{ControlNISTAccessPermissions, ControlNHIOffboarding}},
		{"everything", Evidence{Credentials: []CredentialEvidence{rotated, revoked}, Entitlements: ent},
			[]string{ControlNISTAccessPermissions, ControlNHIOffboarding, ControlNHISecretLeakage, ControlNHIOverprivileged, ControlNHILongLived}},
	}
	for _, tc := range tests {
		if got := ControlsFor(tc.ev); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: ControlsFor = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestDecodeEvidenceRequest(t *testing.T) {
	if req, err := DecodeEvidenceRequest([]byte(`{"change_id":"CHG0031337"}`)); err != nil || req.ChangeID != "CHG0031337" {
		t.Errorf("valid request: %+v, %v", req, err)
	}
	for _, bad := range []string{``, `[]`, `{}`, `{"change_id":""}`, `{"change_id":"*.>"}`, `{"change_id":"C","x":1}`, `{"change_id":"C"} {}`} {
		if _, err := DecodeEvidenceRequest([]byte(bad)); err == nil {
			t.Errorf("request %q accepted", bad)
		}
	}
}

func TestClosureAnswerMatchesSchema(t *testing.T) {
	yes := ClosureAnswer{ChangeID: "CHG1", MayClose: true, Status: StatusReconciled, Reasons: []string{}, Records: 2, CheckedAt: testStart}
	no := ClosureAnswer{ChangeID: "CHG1", Reasons: []string{"no evidence record for the change yet"}, CheckedAt: testStart}
	for name, a := range map[string]ClosureAnswer{"yes": yes, "no": no} {
		if err := validateMarshalled(t, ClosureAnswerSchema, a); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	inconsistent := []ClosureAnswer{
		{ChangeID: "CHG1", MayClose: true, Reasons: []string{"why"}, CheckedAt: testStart},
		{ChangeID: "CHG1", MayClose: false, Reasons: []string{}, CheckedAt: testStart},
	}
	for _, a := range inconsistent {
		if err := validateMarshalled(t, ClosureAnswerSchema, a); err == nil {
			t.Errorf("%+v accepted", a)
		}
	}
	if got, want := schemaPropertyNames(t, ClosureAnswerSchema), jsonKeys(t, yes); !reflect.DeepEqual(got, want) {
		t.Errorf("schema properties %q, Go fields %q", got, want)
	}
}

func TestEvidenceReplyMatchesSchema(t *testing.T) {
	full := evidenceEnvelope(ChangeNormal, []CredentialEvidence{credentialEvidence(OutcomeRotated, true)}, true)
	for name, reply := range map[string]EvidenceReply{
		"records": {ChangeID: "CHG0031337", Records: []Record{full, evidenceEnvelope(ChangeNormal, []CredentialEvidence{}, false)}},
		"none":    {ChangeID: "CHG0031337", Records: []Record{}},
	} {
		if err := validateMarshalled(t, EvidenceReplySchema, reply); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := EvidenceReply{ChangeID: "CHG0031337", Records: []Record{full}}
	bad.Records[0].Data.Status = "ok"
	if err := validateMarshalled(t, EvidenceReplySchema, bad); err == nil {
		t.Error("a reply holding an invalid record was accepted: the records are not checked against the evidence schema")
	}
}
