package failpoint

import (
	"reflect"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	type armed = map[string]time.Duration // pause, or -n for an exit at the nth hit
	tests := []struct {
		name string
		in   string
		want armed
	}{
		{"unset", "", nil},
		{"one", AfterVaultWrite, armed{"after-vault-write": -1}},
		{"journal step", AfterJournal + "apply", armed{"after-journal-apply": -1}},
		{"several", "after-vault-write,after-step-apply", armed{"after-vault-write": -1, "after-step-apply": -1}},
		{"spaces trimmed", "  after-vault-write , after-journal-apply\t", armed{"after-vault-write": -1, "after-journal-apply": -1}},
		{"empty items skipped", ",,after-vault-write,,", armed{"after-vault-write": -1}},
		{"only separators", " , ,", armed{}},
		{"duplicates", "a,a", armed{"a": -1}},
		{"case kept", "After-Vault-Write", armed{"After-Vault-Write": -1}},
		{"pause", "after-journal-apply=1500ms", armed{"after-journal-apply": 1500 * time.Millisecond}},
		{"bad pause exits", "after-journal-apply=soon", armed{"after-journal-apply": -1}},
		{"nth hit", "after-step-apply@7", armed{"after-step-apply": -7}},
		{"bad count exits at once", "after-step-apply@x", armed{"after-step-apply": -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got armed
			if parsed := parse(tc.in); parsed != nil {
				got = armed{}
				for name, a := range parsed {
					got[name] = a.pause
					if a.pause == 0 {
						got[name] = -time.Duration(a.nth)
					}
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parse(%q) = %#v, want %#v", tc.in, got, tc.want)
			}
			if _, ok := got["after-vault-write-not"]; ok {
				t.Errorf("parse(%q) armed an unlisted name: %v", tc.in, got)
			}
		})
	}
}
