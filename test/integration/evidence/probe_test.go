package evidence

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// An AppRole role and a token role whose policy grants update on a declared path where only
// read is approved: the agent logs in once as each (a single-use secret id, a short-lived token),
// Vault reports the extra capability, and afterwards no secret id or token the probes created
// remains, and neither appears in the agent's log or on the bus.
func TestCapabilityProbeOfRolesAgainstVault(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	root := v.Root
	v.PutKV(t, "pay/db", map[string]any{"password": "canary-probe-5d2a"})
	if err := root.Sys().PutPolicy("pay-write", `path "secret/data/pay/*" { capabilities = ["read", "update"] }`); err != nil {
		t.Fatal(err)
	}
	appRoleWithPolicies(t, root, "pay", "pay-write")
	if _, err := root.Logical().Write("auth/token/roles/deployer", map[string]any{"allowed_policies": []string{"pay-write"}, "orphan": true}); err != nil {
		t.Fatal(err)
	}
	declared := map[string][]string{"secret/data/pay/db": {"read"}}
	approved := []events.ApprovedEntitlements{
		{Identity: "approle:approle/pay", Policies: []string{"pay-write"}, Capabilities: declared},
		{Identity: "token-role:deployer", Policies: []string{"pay-write"}, Capabilities: declared},
	}
	cfg := harness.AgentConfig(t, v, v.AgentToken(t), n)
	ra := harness.StartAgent(t, cfg)
	before := v.List(t, "auth/token/accessors")
	if len(before) == 0 {
		t.Fatal("Vault lists no token accessors, not even the root token's")
	}

	bus.Publish(t, changeWith(t, "CHG-PROBE", approved, kvRef("pay/db")), "evt-CHG-PROBE")
	ev := bus.WaitEvidence(t, "CHG-PROBE", waitEvidence)

	if ev.Data.Status != events.StatusDrift {
		t.Errorf("status = %s, want drift", ev.Data.Status)
	}
	if len(ev.Data.Entitlements) != 2 {
		t.Fatalf("entitlements = %+v, want two", ev.Data.Entitlements)
	}
	for _, e := range ev.Data.Entitlements {
		if e.Status != events.EntitlementDrift || len(e.ExtraPolicies)+len(e.MissingPolicies) != 0 || len(e.Capabilities) != 1 {
			t.Errorf("%s = %+v, want drift on capabilities only", e.Identity, e)
			continue
		}
		c := e.Capabilities[0]
		if c.Status != events.CapabilityDrift || !reflect.DeepEqual(c.Actual, []string{"read", "update"}) || !reflect.DeepEqual(c.Extra, []string{"update"}) ||
			len(c.Missing) != 0 || c.MeasuredBy != events.MeasuredByProbeLogin || c.Note != "" {
			t.Errorf("%s capability = %+v, want drift with extra [update] measured by probe-login and no clean-up note", e.Identity, c)
		}
	}

	// Nothing the probes created is left: the role has no secret id, and Vault knows exactly
	// the tokens it knew before the change.
	if ids := v.List(t, "auth/approle/role/pay/secret-id"); len(ids) != 0 {
		t.Errorf("the role still has secret ids: %v", ids)
	}
	// Vault invalidates a revoked token at once but removes its entry (and accessor) in the
	// background, so an accessor may stay listed for a moment: wait for the list to settle.
	after := v.List(t, "auth/token/accessors")
	for deadline := time.Now().Add(30 * time.Second); !reflect.DeepEqual(after, before) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		after = v.List(t, "auth/token/accessors")
	}
	if !reflect.DeepEqual(after, before) {
		t.Errorf("token accessors changed across the probes: before %v, after %v", before, after)
	}
	// No token appears in the agent's log or on the bus (Vault tokens start with hvs.).
	for where, text := range map[string]string{"agent log": ra.Log.String(), "bus": strings.Join(bus.Payloads(), "\n")} {
		if strings.Contains(text, "hvs.") {
			t.Errorf("a Vault token appears in the %s", where)
		}
	}
}
