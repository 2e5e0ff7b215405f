package failpoint

import (
	"reflect"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	type armed = map[string]time.Duration
	tests := []struct {
		name string
		in   string
		want armed
	}{
		{"unset", "", nil},
		{"one", AfterVaultWrite, armed{"after-vault-write": 0}},
		{"journal step", AfterJournal + "apply", armed{"after-journal-apply": 0}},
		{"several", "after-vault-write,after-step-apply", armed{"after-vault-write": 0, "after-step-apply": 0}},
		{"spaces trimmed", "  after-vault-write , after-journal-apply\t", armed{"after-vault-write": 0, "after-journal-apply": 0}},
		{"empty items skipped", ",,after-vault-write,,", armed{"after-vault-write": 0}},
		{"only separators", " , ,", armed{}},
		{"duplicates", "a,a", armed{"a": 0}},
		{"case kept", "After-Vault-Write", armed{"After-Vault-Write": 0}},
		{"pause", "after-journal-apply=1500ms", armed{"after-journal-apply": 1500 * time.Millisecond}},
		{"bad pause exits", "after-journal-apply=soon", armed{"after-journal-apply": 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := parse(tc.in)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parse(%q) = %#v, want %#v", tc.in, got, tc.want)
			}
			if _, ok := got["after-vault-write-not"]; ok {
				t.Errorf("parse(%q) armed an unlisted name: %v", tc.in, got)
			}
		})
	}
}
