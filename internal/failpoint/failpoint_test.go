package failpoint

import (
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]bool
	}{
		{"unset", "", nil},
		{"one", AfterVaultWrite, map[string]bool{"after-vault-write": true}},
		{"journal step", AfterJournal + "writing", map[string]bool{"after-journal-writing": true}},
		{"several", "after-vault-write,after-journal-written", map[string]bool{"after-vault-write": true, "after-journal-written": true}},
		{"spaces trimmed", "  after-vault-write , after-journal-writing\t", map[string]bool{"after-vault-write": true, "after-journal-writing": true}},
		{"empty items skipped", ",,after-vault-write,,", map[string]bool{"after-vault-write": true}},
		{"only separators", " , ,", map[string]bool{}},
		{"duplicates", "a,a", map[string]bool{"a": true}},
		{"case kept", "After-Vault-Write", map[string]bool{"After-Vault-Write": true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := parse(tc.in)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parse(%q) = %#v, want %#v", tc.in, got, tc.want)
			}
			// Whatever the input, a name not listed is never armed.
			if got["after-vault-write-not"] || got[""] {
				t.Errorf("parse(%q) armed an unlisted name: %v", tc.in, got)
			}
		})
	}
}
