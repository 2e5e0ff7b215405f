package events

import (
	"fmt"
	"reflect"
	"testing"
)

func TestAssessImpact(t *testing.T) {
	kv := func(path, overlap string) CredentialImpact {
		return CredentialImpact{Credential: "kv-v2:secret/" + path, Kind: "kv-v2", Action: ActionRotate, Overlap: overlap}
	}
	revoke := CredentialImpact{Credential: "token:token/acc1", Kind: "token", Action: ActionRevoke}
	broken := CredentialImpact{Credential: "pki:pki/web", Kind: "pki", Action: ActionRevoke, Error: `pki supports the rotate action only, not "revoke"`}
	root := CredentialImpact{Credential: "database-root:database/pg", Kind: "database-root", Action: ActionRotate, Overlap: "1h0m0s"}
	many := make([]CredentialImpact, HighImpactCredentials)
	for i := range many {
		many[i] = kv(fmt.Sprint("app", i), "15m0s")
	}
	tests := []struct {
		name    string
		creds   []CredentialImpact
		level   ImpactLevel
		reasons []string
	}{
		{"no credential", nil, ImpactNone, []string{"the change touches no credential"}},
		{"rotations with overlap windows", []CredentialImpact{kv("a", "15m0s"), kv("b", "24h0m0s")}, ImpactLow, []string{
			"kv-v2:secret/a will be rotated with a 15m0s overlap window before the old credential is retired",
			"kv-v2:secret/b will be rotated with a 24h0m0s overlap window before the old credential is retired",
		}},
		{"overlap not known", []CredentialImpact{kv("a", "")}, ImpactLow, []string{"kv-v2:secret/a will be rotated"}},
		{"exposure: rotated with no overlap window", []CredentialImpact{kv("leaked", "0s"), kv("other", "15m0s")}, ImpactHigh, []string{
			"kv-v2:secret/leaked will be rotated with no overlap window: the old credential is retired as soon as the new one is in place, leaving its users no time to switch",
		}},
		{"revocation", []CredentialImpact{revoke}, ImpactHigh, []string{"token:token/acc1 will be revoked: it stops working at once"}},
		{"cannot be acted on", []CredentialImpact{broken}, ImpactHigh, []string{`pki:pki/web cannot be acted on: pki supports the rotate action only, not "revoke"`}},
		{"root credential", []CredentialImpact{root}, ImpactHigh, []string{"database-root:database/pg is a root credential"}},
		{"many credentials", many, ImpactHigh, []string{"the change touches many credentials at once"}},
		{"one reason per credential cut off", []CredentialImpact{kv("a", "0s"), revoke, kv("b", "1m0s")}, ImpactHigh, []string{
			"kv-v2:secret/a will be rotated with no overlap window: the old credential is retired as soon as the new one is in place, leaving its users no time to switch",
			"token:token/acc1 will be revoked: it stops working at once",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			level, reasons := AssessImpact(tt.creds)
			if level != tt.level || !reflect.DeepEqual(reasons, tt.reasons) {
				t.Errorf("AssessImpact = %s %q, want %s %q", level, reasons, tt.level, tt.reasons)
			}
		})
	}
}
