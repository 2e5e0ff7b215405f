package faults

import (
	"testing"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/test/harness"
)

// TestFaults runs every scenario against one in-process Vault. Each must end with every
// change reconciled exactly once: no change lost, no credential rotated twice.
func TestFaults(t *testing.T) {
	s := &suite{v: harness.StartVault(t), events: *eventsPerScenario, keyFile: harness.EvidenceKeyFile(t)}
	s.token = s.v.AgentToken(t)
	if err := s.v.Root.Sys().Mount("transit", &vaultapi.MountInput{Type: "transit"}); err != nil {
		t.Fatalf("mount transit: %v", err)
	}
	var rows []row
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			r := sc.run(t, s)
			r.Name, r.Fault = sc.name, sc.fault
			t.Logf("%s: sent %d, evidence %d, lost %d, duplicate rotations %d, faults %d, recovery %s, took %s",
				r.Name, r.Sent, r.Evidence, r.Lost, r.Duplicates, r.Faults, r.Recovery, r.Duration)
			if r.Sent != s.events || r.Lost != 0 || r.Duplicates != 0 || r.Mismatched != 0 || r.Evidence != r.Sent {
				t.Errorf("%s: %+v; want every change reconciled exactly once", r.Name, r.tally)
			}
			rows = append(rows, r)
		})
	}
	if *reportPath != "" && !t.Failed() {
		if err := writeReport(*reportPath, s.events, rows); err != nil {
			t.Fatal(err)
		}
	}
}
