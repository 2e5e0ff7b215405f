package integration

import (
	"context"
	"testing"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/fixtures"
	"github.com/rotation-agent/rotation-agent/test/harness"
	"github.com/rotation-agent/rotation-agent/test/harness/postgres"
)

// One change naming one credential of every kind: the agent, running under the documented
// least-privilege policy, rotates or revokes each as asked, verifies each against its real
// target, and publishes one evidence record carrying every fingerprint and no secret. Each
// fixture's Check compares the kind's fingerprint keys, before and after, with Vault's own
// state (versions, last_vault_rotation, serials, key versions, accessors, lease counts).
func TestOneChangeEveryKind(t *testing.T) {
	ctx := context.Background()
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	pg := postgres.Start(t)
	bus := harness.WatchBus(t, n)
	token := v.AgentToken(t)

	all := append(fixtures.Vault(), fixtures.Database(pg)...)
	all = append(all, fixtures.Identity()...)
	refs := make([]events.CredentialRef, len(all))
	for i, f := range all {
		ref, err := f.Seed(ctx, v.Root)
		if err != nil {
			t.Fatalf("seed %s: %v", f.Name, err)
		}
		refs[i] = ref
	}
	kinds := map[string]bool{}
	for _, r := range refs {
		kinds[r.Kind] = true
	}

	ra := harness.StartAgent(t, harness.AgentConfig(t, v, token, n))
	bus.Publish(t, harness.ChangeEvent(t, "CHG-ALL-1", refs...), "CHG-ALL-1")
	ev := bus.WaitEvidence(t, "CHG-ALL-1", 2*waitEvidence)
	if ev.Data.Status != events.StatusReconciled || len(ev.Data.Credentials) != len(refs) {
		t.Fatalf("evidence status %s with %d credentials, want reconciled with %d:\n%+v", ev.Data.Status, len(ev.Data.Credentials), len(refs), ev.Data.Credentials)
	}
	for i, f := range all {
		c := ev.Data.Credentials[i]
		if c.Credential != refs[i].ID() || !c.Verified || c.OldCredential != "retired" || len(c.Before) == 0 || len(c.After) == 0 {
			t.Errorf("%s: evidence %+v, want verified, old credential retired, fingerprints before and after", f.Name, c)
			continue
		}
		wantAction, wantOutcome := events.ActionRotate, events.OutcomeRotated
		if c.Kind == "token" || c.Kind == "lease-prefix" {
			wantAction, wantOutcome = events.ActionRevoke, events.OutcomeRevoked
		}
		if c.Action != wantAction || c.Outcome != wantOutcome {
			t.Errorf("%s: action %s outcome %s, want %s %s", f.Name, c.Action, c.Outcome, wantAction, wantOutcome)
		}
		summary, err := f.Check(ctx, v.Root, refs[i], c)
		if err != nil {
			t.Errorf("%s: %v", f.Name, err)
			continue
		}
		t.Logf("%s: %s", c.Kind, summary)
	}
	if len(kinds) != 8 {
		t.Errorf("the change covered only %d kinds: %v", len(kinds), kinds)
	}
	ra.Stop(t)
	assertNoLeak(t, map[string]string{"agent token": token, "postgres superuser password": pg.Password},
		map[string][]string{"agent log": {ra.Log.String()}, "bus": bus.Payloads()})
}
