package integration

import (
	"testing"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// must fails the test on an error.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// write writes body to path with c and fails the test on an error.
func write(t *testing.T, c *vaultapi.Client, path string, body map[string]any) *vaultapi.Secret {
	t.Helper()
	s, err := c.Logical().Write(path, body)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return s
}

// targetedChange is a change-completed event that names targets and no credential.
func targetedChange(t *testing.T, id string, targets events.Targets) []byte {
	t.Helper()
	var ev events.ChangeEvent
	mustUnmarshal(t, harness.ChangeEvent(t, id), &ev)
	ev.Data.Targets = targets
	return mustMarshal(t, ev)
}

// wantKVChangeReconciled publishes the change id naming the KV secret at path and fails the
// test unless its evidence, within waitEvidence, says reconciled; what names the change in the
// failure.
func wantKVChangeReconciled(t *testing.T, bus *harness.Bus, id, path, what string) {
	t.Helper()
	bus.Publish(t, harness.ChangeEvent(t, id, kvRef(path)), "")
	if ev := bus.WaitEvidence(t, id, waitEvidence); ev.Data.Status != events.StatusReconciled {
		t.Fatalf("%s: %+v", what, ev.Data)
	}
}
