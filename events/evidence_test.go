package events

import "testing"

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
