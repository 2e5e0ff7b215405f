package events

import (
	"strings"
	"testing"
)

func TestToken(t *testing.T) {
	tests := []struct {
		name, id, want string
	}{
		{"plain change id", "CHG0031337", "CHG0031337"},
		{"dash and underscore kept", "chg-42_b", "chg-42_b"},
		{"dot would add a token", "CHG.1", "CHG_1"},
		{"colon", "sn:CHG1", "sn_CHG1"},
		{"single-token wildcard", "CHG*", "CHG_"},
		{"multi-token wildcard", ">", "_"},
		{"wildcard token after dot", "a.>", "a__"},
		{"space", "CHG 1", "CHG_1"},
		{"tab and newline", "a\tb\nc", "a_b_c"},
		{"path traversal", "../x", "___x"},
		{"multi-byte rune becomes one underscore", "änd", "_nd"},
		{"empty string", "", "_"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Token(tc.id)
			if got != tc.want {
				t.Errorf("Token(%q) = %q, want %q", tc.id, got, tc.want)
			}
			if got == "" || strings.ContainsAny(got, ".*> \t\r\n") {
				t.Errorf("Token(%q) = %q is not a single literal subject token", tc.id, got)
			}
		})
	}
}

func TestSubjects(t *testing.T) {
	def := Subjects{Prefix: DefaultSubjectPrefix}
	custom := Subjects{Prefix: "acme.rot"}
	tests := []struct {
		name, got, want string
	}{
		{"default prefix", DefaultSubjectPrefix, "rotation"},
		{"changes wildcard", def.ChangesWildcard(), "rotation.changes.>"},
		{"change completed", def.ChangeCompleted(), "rotation.changes.completed"},
		{"evidence wildcard", def.EvidenceWildcard(), "rotation.evidence.>"},
		{"evidence", def.Evidence("CHG0031337"), "rotation.evidence.CHG0031337"},
		{"evidence of a dotted id", def.Evidence("CHG.1"), "rotation.evidence.CHG_1"},
		{"evidence of a wildcard id", def.Evidence("*.>"), "rotation.evidence.___"},
		{"evidence of an empty id", def.Evidence(""), "rotation.evidence._"},
		{"rejections", def.Rejections(), "rotation.rejections"},
		{"custom changes wildcard", custom.ChangesWildcard(), "acme.rot.changes.>"},
		{"custom change completed", custom.ChangeCompleted(), "acme.rot.changes.completed"},
		{"custom evidence wildcard", custom.EvidenceWildcard(), "acme.rot.evidence.>"},
		{"custom evidence", custom.Evidence("CHG 7"), "acme.rot.evidence.CHG_7"},
		{"custom rejections", custom.Rejections(), "acme.rot.rejections"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	// The change stream captures the inbound subject and not what the agent publishes; the
	// evidence stream captures evidence (rejections are added to it by name).
	if !strings.HasPrefix(def.ChangeCompleted(), strings.TrimSuffix(def.ChangesWildcard(), ">")) {
		t.Error("changes wildcard does not cover the change-completed subject")
	}
	for _, s := range []string{def.Evidence("x"), def.Rejections()} {
		if strings.HasPrefix(s, strings.TrimSuffix(def.ChangesWildcard(), ">")) {
			t.Errorf("changes wildcard covers published subject %s", s)
		}
	}
	if !strings.HasPrefix(def.Evidence("x"), strings.TrimSuffix(def.EvidenceWildcard(), ">")) {
		t.Error("evidence wildcard does not cover evidence subjects")
	}
}
