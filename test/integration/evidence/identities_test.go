package evidence

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

func policiesAt(t *testing.T, root *vaultapi.Client, path, key string) []string {
	t.Helper()
	sec, err := root.Logical().Read(path)
	if err != nil || sec == nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var out []string
	list, _ := sec.Data[key].([]any)
	for _, p := range list {
		out = append(out, p.(string))
	}
	sort.Strings(out)
	return out
}

// Token roles, identity entities and groups in drift are remediated under the documented
// remediation rules, and nothing else about them changes; a token's capability drift on a
// declared path is measured with sys/capabilities-accessor and stays open. A change event's
// approval may only take policies away: the group it would give a policy is left in drift,
// while an inventory binding's approval adds the policy another group lacks.
func TestEveryIdentityKindAgainstVault(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	root := v.Root
	write := func(path string, data map[string]any) *vaultapi.Secret {
		t.Helper()
		sec, err := root.Logical().Write(path, data)
		if err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
		return sec
	}
	write("sys/policy/app-read", map[string]any{"policy": `path "secret/data/app/*" { capabilities = ["read"] }`})
	write("sys/policy/app-admin", map[string]any{"policy": `path "secret/data/app/*" { capabilities = ["read", "update", "delete"] }`})
	write("auth/token/roles/ci", map[string]any{"allowed_policies": []string{"app-read", "app-admin"}, "orphan": true, "token_period": "1h"})
	write("identity/entity/name/svc-app", map[string]any{"policies": []string{"app-read", "app-admin"}, "metadata": map[string]any{"team": "payments"}})
	sec, err := root.Logical().Read("identity/entity/name/svc-app")
	if err != nil || sec == nil {
		t.Fatal(err)
	}
	entityID := sec.Data["id"].(string)
	write("identity/group/name/app-team", map[string]any{"policies": []string{"app-admin"}, "member_entity_ids": []string{entityID}})
	write("identity/group/name/ops-team", map[string]any{"policies": []string{"app-admin"}})
	v.PutKV(t, "app/db", map[string]any{"password": "canary-identities-app-db"})
	inventory := filepath.Join(t.TempDir(), "inventory.yaml")
	if err := os.WriteFile(inventory, []byte(`version: 1
bindings:
  - name: app-db
    select: {services: [app]}
    credential: {kind: kv-v2, mount: secret, path: app/db}
    approved_entitlements:
      - identity: group:ops-team
        policies: [app-read]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := root.Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: []string{"app-admin"}, NoDefaultPolicy: true, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}

	approved := []events.ApprovedEntitlements{
		{Identity: "token-role:ci", Policies: []string{"app-read"}},
		{Identity: "entity:svc-app", Policies: []string{"app-read"}},
		{Identity: "group:app-team", Policies: []string{"app-read"}},
		{Identity: "token:" + tok.Auth.Accessor, Policies: []string{"app-admin"}, Capabilities: map[string][]string{"secret/data/app/db": {"read"}}},
	}
	cfg := harness.AgentConfig(t, v, v.AgentTokenWith(t, harness.RemediationPolicyFile), n)
	cfg.Evidence.RemediateEntitlements = true
	cfg.InventoryFile = inventory
	harness.StartAgent(t, cfg)
	var change events.ChangeEvent
	if err := json.Unmarshal(changeWith(t, "CHG-IDS", approved), &change); err != nil {
		t.Fatal(err)
	}
	change.Data.Targets = events.Targets{Services: []string{"app"}}
	raw, err := json.Marshal(change)
	if err != nil {
		t.Fatal(err)
	}
	bus.Publish(t, raw, "evt-CHG-IDS")
	ev := bus.WaitEvidence(t, "CHG-IDS", waitEvidence)

	byID := map[string]events.EntitlementEvidence{}
	for _, e := range ev.Data.Entitlements {
		byID[e.Identity] = e
	}
	for _, id := range []string{"token-role:ci", "entity:svc-app"} {
		e := byID[id]
		if e.Status != events.EntitlementRemediated || !reflect.DeepEqual(e.ExtraPolicies, []string{"app-admin"}) || e.Remediation == nil || !e.Remediation.Verified {
			t.Errorf("%s = %+v, want remediated, extra [app-admin]", id, e)
		}
	}
	// The change event approves app-read, which the group lacks: not written.
	g := byID["group:app-team"]
	if g.Status != events.EntitlementDrift || g.Remediation != nil || !reflect.DeepEqual(g.ExtraPolicies, []string{"app-admin"}) ||
		!reflect.DeepEqual(g.MissingPolicies, []string{"app-read"}) ||
		!strings.HasPrefix(g.Error, "remediation refused: it would add app-read, and only an inventory binding's approval may add policies") {
		t.Errorf("group approved by the event = %+v, want drift, remediation refused", g)
	}
	// The binding approves app-read for ops-team: written, replacing app-admin.
	ops := byID["group:ops-team"]
	if ops.Status != events.EntitlementRemediated || ops.Source != "binding app-db" || ops.Remediation == nil || !ops.Remediation.Verified ||
		!reflect.DeepEqual(ops.MissingPolicies, []string{"app-read"}) {
		t.Errorf("group approved by the binding = %+v, want remediated, app-read added", ops)
	}
	tokEv := byID["token:"+tok.Auth.Accessor]
	if tokEv.Status != events.EntitlementDrift || len(tokEv.Capabilities) != 1 || tokEv.Capabilities[0].Status != events.CapabilityDrift ||
		!reflect.DeepEqual(tokEv.Capabilities[0].Extra, []string{"delete", "update"}) || tokEv.Remediation != nil {
		t.Errorf("token = %+v, want capability drift with extra delete and update, not remediated", tokEv)
	}
	if ev.Data.Status != events.StatusDrift {
		t.Errorf("status = %s, want drift (the token's capability drift stays open)", ev.Data.Status)
	}

	// Vault now holds the approved policies, and nothing else about the objects changed.
	if got := policiesAt(t, root, "auth/token/roles/ci", "allowed_policies"); !reflect.DeepEqual(got, []string{"app-read"}) {
		t.Errorf("token role policies = %v", got)
	}
	role, _ := root.Logical().Read("auth/token/roles/ci")
	if role.Data["orphan"] != true {
		t.Errorf("token role lost its other settings: %v", role.Data)
	}
	if got := policiesAt(t, root, "identity/entity/name/svc-app", "policies"); !reflect.DeepEqual(got, []string{"app-read"}) {
		t.Errorf("entity policies = %v", got)
	}
	ent, _ := root.Logical().Read("identity/entity/name/svc-app")
	if md, _ := ent.Data["metadata"].(map[string]any); md["team"] != "payments" {
		t.Errorf("entity lost its metadata: %v", ent.Data["metadata"])
	}
	if got := policiesAt(t, root, "identity/group/name/app-team", "policies"); !reflect.DeepEqual(got, []string{"app-admin"}) {
		t.Errorf("group policies = %v, want app-admin left as it was", got)
	}
	if got := policiesAt(t, root, "identity/group/name/ops-team", "policies"); !reflect.DeepEqual(got, []string{"app-read"}) {
		t.Errorf("binding-approved group policies = %v, want [app-read]", got)
	}
	if got := policiesAt(t, root, "identity/group/name/app-team", "member_entity_ids"); !reflect.DeepEqual(got, []string{entityID}) {
		t.Errorf("group members = %v, want the entity kept", got)
	}
}
