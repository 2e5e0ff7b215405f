package identity

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
	"github.com/rotation-agent/rotation-agent/rotators/approle"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// appRoleFixture is a Vault with AppRole at auth/approle, a role "payments" whose consumer
// reads its secret id from secret/apps/payments (version 1, written by an earlier delivery).
type appRoleFixture struct {
	v      *harness.Vault
	roleID string
	oldSID string
	oldAcc string
	kvPath string
}

func newAppRoleFixture(t *testing.T) *appRoleFixture {
	t.Helper()
	v := harness.StartVault(t)
	if err := v.Root.Sys().EnableAuthWithOptions("approle", &vaultapi.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatalf("enable approle: %v", err)
	}
	write(t, v.Root, "auth/approle/role/payments", map[string]any{"token_policies": "default", "token_ttl": "1h", "secret_id_ttl": "24h"})
	f := &appRoleFixture{v: v, kvPath: "apps/payments"}
	s, err := v.Root.Logical().Read("auth/approle/role/payments/role-id")
	if err != nil {
		t.Fatal(err)
	}
	f.roleID = s.Data["role_id"].(string)
	f.oldSID, f.oldAcc = f.generate(t, nil)
	v.PutKV(t, f.kvPath, map[string]any{"secret_id": f.oldSID, "secret_id_accessor": f.oldAcc, "role_id": f.roleID})
	return f
}

// generate creates a secret id for the role as an operator would.
func (f *appRoleFixture) generate(t *testing.T, meta map[string]any) (secretID, accessor string) {
	t.Helper()
	s := write(t, f.v.Root, "auth/approle/role/payments/secret-id", meta)
	return s.Data["secret_id"].(string), s.Data["secret_id_accessor"].(string)
}

// login logs in with secretID as the consumer would, revokes the token at once, and reports
// whether the login worked. Anything but success or a refusal fails the test.
func (f *appRoleFixture) login(t *testing.T, secretID string) bool {
	t.Helper()
	c := clientWith(t, f.v, "")
	s, err := c.Logical().Write("auth/approle/login", map[string]any{"role_id": f.roleID, "secret_id": secretID})
	var re *vaultapi.ResponseError
	if errors.As(err, &re) && re.StatusCode >= 400 && re.StatusCode < 500 {
		return false
	}
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if _, err := f.v.Root.Logical().Write("auth/token/revoke-accessor", map[string]any{"accessor": s.Auth.Accessor}); err != nil {
		t.Fatalf("revoke the test's login token: %v", err)
	}
	return true
}

// accessors lists the role's secret id accessors, from Vault.
func (f *appRoleFixture) accessors(t *testing.T) []string {
	t.Helper()
	return f.v.List(t, "auth/approle/role/payments/secret-id")
}

// metadata reads a secret id's metadata by accessor.
func (f *appRoleFixture) metadata(t *testing.T, accessor string) map[string]any {
	t.Helper()
	s := write(t, f.v.Root, "auth/approle/role/payments/secret-id-accessor/lookup", map[string]any{"secret_id_accessor": accessor})
	m, _ := s.Data["metadata"].(map[string]any)
	return m
}

// delivered reads the current deliver_to secret.
func (f *appRoleFixture) delivered(t *testing.T) *vaultapi.KVSecret { return f.v.KV(t, f.kvPath, 0) }

// destroyBeforeFirstVerify is the approle rotator as the agent runs it, except that just
// before its first verify the secret id it delivered is destroyed behind its back, by its
// accessor, which it stores in *sabotaged.
func (f *appRoleFixture) destroyBeforeFirstVerify(t *testing.T, sabotaged *string) *sabotage {
	t.Helper()
	rot := &sabotage{Rotator: approle.New(agentClient(t, f.v, agentPolicy))}
	rot.beforeVerify = func(call int) {
		if call == 1 {
			*sabotaged = f.delivered(t).Data["secret_id_accessor"].(string)
			write(t, f.v.Root, "auth/approle/role/payments/secret-id-accessor/destroy", map[string]any{"secret_id_accessor": *sabotaged})
		}
	}
	return rot
}

func appRoleRef(options map[string]string) events.CredentialRef {
	o := map[string]string{approle.OptionDeliverTo: "secret/apps/payments"}
	for k, v := range options {
		o[k] = v
	}
	return events.CredentialRef{Kind: approle.Kind, Mount: "approle", Path: "payments", Options: o}
}

// A rotation delivers a new secret id that logs in; the old one keeps working through the
// overlap and is destroyed after it; the agent's own verification login leaves no token behind.
func TestAppRoleSecretIDRotation(t *testing.T) {
	f := newAppRoleFixture(t)
	rot := approle.New(agentClient(t, f.v, agentPolicy))
	r := newRun(t, rot, "CHG1001", appRoleRef(nil))

	plan, err := r.plan()
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if plan.Current["secret_id_accessor"] != f.oldAcc || plan.Current["deliver_to_version"] != "1" || len(plan.Changes) != 4 {
		t.Errorf("plan = %+v", plan)
	}
	if !strings.Contains(strings.Join(plan.Changes, "\n"), "destroy the old secret id (accessor "+f.oldAcc+")") {
		t.Errorf("plan does not name the secret id it would destroy: %v", plan.Changes)
	}
	if got := f.accessors(t); len(got) != 1 || f.delivered(t).VersionMetadata.Version != 1 {
		t.Fatalf("plan changed Vault: accessors %v", got)
	}

	out := r.mustDrive(time.Hour)
	if !out.Completed || !out.RetirePending || !r.st.Verified {
		t.Fatalf("outcome %+v, verified %v: want completed, retire pending, verified", out, r.st.Verified)
	}
	cur := f.delivered(t)
	newSID, _ := cur.Data["secret_id"].(string)
	newAcc, _ := cur.Data["secret_id_accessor"].(string)
	if cur.VersionMetadata.Version != 2 || newSID == "" || newSID == f.oldSID || newAcc == "" || newAcc == f.oldAcc {
		t.Fatalf("deliver_to version %d does not hold a new secret id", cur.VersionMetadata.Version)
	}
	if cur.Data["role_id"] != f.roleID {
		t.Errorf("the other fields of deliver_to were not kept")
	}
	if !f.login(t, newSID) {
		t.Fatal("the new secret id does not log in")
	}
	if !f.login(t, f.oldSID) {
		t.Fatal("the old secret id stopped working before the overlap ended")
	}
	if got, want := f.accessors(t), sortedOf(f.oldAcc, newAcc); !slices.Equal(got, want) {
		t.Errorf("role has secret ids %v during the overlap, want %v", got, want)
	}
	if m := f.metadata(t, newAcc); m["change_id"] != "CHG1001" {
		t.Errorf("new secret id metadata = %v, want change_id CHG1001", m)
	}
	if r.st.Before["secret_id_accessor"] != f.oldAcc || r.st.After["secret_id_accessor"] != newAcc || r.st.After["verified_by"] != "login" {
		t.Errorf("fingerprints before %v after %v", r.st.Before, r.st.After)
	}
	if _, ok := r.st.After["verify_token"]; ok {
		t.Errorf("the verification login's token was not revoked: %v", r.st.After)
	}
	if left := leaseIDs(t, f.v, "auth/approle/login"); len(left) != 0 {
		t.Errorf("logins left %d live tokens; the agent must revoke its verification token", len(left))
	}

	// Not yet due: nothing is retired.
	if out := r.mustDrive(time.Hour); !out.RetirePending || !f.login(t, f.oldSID) {
		t.Fatalf("retire ran before the overlap ended: %+v", out)
	}
	if out := r.driveAfterOverlap(); !out.Retired {
		t.Fatalf("outcome %+v, want retired", out)
	}
	if f.login(t, f.oldSID) {
		t.Error("the old secret id still logs in after retire")
	}
	if !f.login(t, newSID) {
		t.Error("the new secret id stopped working after retire")
	}
	if got := f.accessors(t); !slices.Equal(got, []string{newAcc}) {
		t.Errorf("role has secret ids %v after retire, want only %s", got, newAcc)
	}
	if _, err := f.v.Root.Logical().Write("auth/approle/role/payments/secret-id-accessor/lookup", map[string]any{"secret_id_accessor": f.oldAcc}); err == nil {
		t.Error("the old accessor is still found")
	}
	if r.st.After["old_secret_id"] != "destroyed" || r.st.After["old_login"] != "denied" {
		t.Errorf("after = %v, want old secret id destroyed and its login denied", r.st.After)
	}
	r.assertNoLeak(map[string]string{"old secret id": f.oldSID, "new secret id": newSID, "role id": f.roleID})
}

// A journal failure right after Vault generated the secret id: the resumed rotation delivers
// that secret id (same process) or destroys it and generates one (restarted process); either
// way the role ends with one new secret id, not two.
func TestAppRoleResumeWithoutSecondSecretID(t *testing.T) {
	for _, tc := range []struct {
		name    string
		restart bool
	}{{"same process", false}, {"restarted process", true}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newAppRoleFixture(t)
			client := agentClient(t, f.v, agentPolicy)
			r := newRun(t, approle.New(client), "CHG1002", appRoleRef(nil))
			// The journal goes down right after Vault created the credential, as if the
			// process died there: nothing after the intent note is stored.
			r.journalDownFrom("new_accessor")
			_, err := r.drive(time.Hour)
			wantRetryableSave(t, err)
			after := f.accessors(t)
			if len(after) != 2 {
				t.Fatalf("role has %d secret ids after the generation, want 2", len(after))
			}
			generated := without(after, f.oldAcc)
			if v := f.delivered(t).VersionMetadata.Version; v != 1 {
				t.Fatalf("deliver_to was written (version %d) though the journal failed first", v)
			}

			r.failSave = nil
			r.resumeFromJournal()
			if r.st.Note("new_accessor") != "" || r.st.Note("generating_at") == "" {
				t.Fatalf("journal should hold the intent but not the accessor: %v", r.st.Data)
			}
			if tc.restart {
				r.rot = approle.New(client)
			}
			out := r.mustDrive(time.Hour)
			if !out.Completed || !out.Resumed {
				t.Fatalf("outcome %+v", out)
			}
			cur := f.delivered(t)
			newAcc, _ := cur.Data["secret_id_accessor"].(string)
			if cur.VersionMetadata.Version != 2 {
				t.Errorf("deliver_to is at version %d, want 2 (one delivery)", cur.VersionMetadata.Version)
			}
			got := f.accessors(t)
			if len(got) != 2 || !slices.Contains(got, f.oldAcc) || !slices.Contains(got, newAcc) {
				t.Errorf("role has secret ids %v, want the old one and one new one", got)
			}
			if !tc.restart && newAcc != generated {
				t.Errorf("delivered %s, want the secret id generated before the failure (%s)", newAcc, generated)
			}
			if tc.restart && slices.Contains(got, generated) {
				t.Errorf("the secret id whose value was lost with the process (%s) is still valid", generated)
			}
			if !f.login(t, cur.Data["secret_id"].(string)) {
				t.Error("the delivered secret id does not log in")
			}
			r.assertNoLeak(map[string]string{"old secret id": f.oldSID, "new secret id": cur.Data["secret_id"].(string)})
		})
	}
}

// The response of the delivery is lost (the journal fails after apply): the resumed apply finds
// its secret id already in deliver_to and adopts it.
func TestAppRoleResumeAdoptsDeliveredSecretID(t *testing.T) {
	f := newAppRoleFixture(t)
	r := newRun(t, approle.New(agentClient(t, f.v, agentPolicy)), "CHG1003", appRoleRef(nil))
	failed := false
	r.failSave = func(st *rotators.State) bool {
		if !failed && st.Done == rotators.StepApply {
			failed = true
			return true
		}
		return false
	}
	_, err := r.drive(time.Hour)
	wantRetryableSave(t, err)
	r.resumeFromJournal()
	if r.st.Done != rotators.StepPrepare || r.st.Note("new_version") != "" {
		t.Fatalf("journal state %+v: want apply started, delivery not recorded", r.st)
	}
	r.mustDrive(time.Hour)
	if v := f.delivered(t).VersionMetadata.Version; v != 2 {
		t.Errorf("deliver_to at version %d, want 2: the delivery was repeated", v)
	}
	if got := f.accessors(t); len(got) != 2 {
		t.Errorf("role has %d secret ids, want 2 (old and one new)", len(got))
	}
	if r.st.After["deliver_to_version"] != "2" {
		t.Errorf("after = %v", r.st.After)
	}
}

// Verify catches a secret id that does not log in (destroyed behind the agent's back after
// delivery); the driver then starts over with a fresh secret id, which works, and retire still
// destroys the original old secret id.
func TestAppRoleVerifyCatchesDestroyedSecretID(t *testing.T) {
	f := newAppRoleFixture(t)
	var sabotaged string
	r := newRun(t, f.destroyBeforeFirstVerify(t, &sabotaged), "CHG1004", appRoleRef(nil))
	_, err := r.drive(time.Hour)
	wantRetryable(t, err, "verification failed", sabotaged)
	if r.st.Verified || r.st.Done != rotators.StepApply {
		t.Fatalf("state after a failed verify: done %q verified %v", r.st.Done, r.st.Verified)
	}
	out, err := r.driveUntilCompleted(time.Hour)
	if !out.Completed || err != nil {
		t.Fatalf("rotation did not recover with a fresh secret id: %+v %v", out, err)
	}
	if r.st.Rounds != 1 {
		t.Errorf("rounds = %d, want 1 fresh start", r.st.Rounds)
	}
	cur := f.delivered(t)
	newSID := cur.Data["secret_id"].(string)
	newAcc := cur.Data["secret_id_accessor"].(string)
	if newAcc == sabotaged || !f.login(t, newSID) {
		t.Fatal("the fresh secret id was not delivered or does not log in")
	}
	if r.st.Before["secret_id_accessor"] != f.oldAcc {
		t.Errorf("the fresh round lost the original old secret id: before %v", r.st.Before)
	}
	if out := r.driveAfterOverlap(); !out.Retired {
		t.Fatalf("outcome %+v", out)
	}
	if f.login(t, f.oldSID) {
		t.Error("the original old secret id still logs in after retire")
	}
	if got := f.accessors(t); !slices.Equal(got, []string{newAcc}) {
		t.Errorf("role has secret ids %v, want only %s", got, newAcc)
	}
	r.assertNoLeak(map[string]string{"old secret id": f.oldSID, "new secret id": newSID})
}

// Verify also catches a delivery consumers cannot read (the version deleted behind the agent's
// back); the fresh round's secret id is delivered, and retire destroys both the original old
// secret id and the one the failed round left valid.
func TestAppRoleVerifyCatchesUnreadableDelivery(t *testing.T) {
	f := newAppRoleFixture(t)
	rot := &sabotage{Rotator: approle.New(agentClient(t, f.v, agentPolicy))}
	rot.beforeVerify = func(call int) {
		if call == 1 {
			if err := f.v.Root.KVv2("secret").DeleteVersions(context.Background(), f.kvPath, []int{2}); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := newRun(t, rot, "CHG1005", appRoleRef(nil))
	_, err := r.drive(time.Hour)
	wantRetryable(t, err, "verification failed", "does not hold the new secret id")
	out, _ := r.driveUntilCompleted(time.Hour)
	if !out.Completed {
		t.Fatalf("rotation did not recover: %+v", out)
	}
	if got := f.accessors(t); len(got) != 3 {
		t.Fatalf("role has %d secret ids during the overlap, want 3 (old, failed round, new)", len(got))
	}
	r.driveAfterOverlap()
	cur := f.delivered(t)
	if cur.VersionMetadata.Version != 3 {
		t.Errorf("deliver_to at version %d, want 3", cur.VersionMetadata.Version)
	}
	if got := f.accessors(t); !slices.Equal(got, []string{cur.Data["secret_id_accessor"].(string)}) {
		t.Errorf("role has secret ids %v after retire, want only the delivered one", got)
	}
	if r.st.After["superseded_destroyed"] != "1" || r.st.After["old_login"] != "denied" {
		t.Errorf("after = %v", r.st.After)
	}
}

// With wrap_ttl the consumer gets a response-wrapping token; unwrapping it yields a secret id
// that logs in and carries the requested metadata.
func TestAppRoleWrappedDelivery(t *testing.T) {
	f := newAppRoleFixture(t)
	r := newRun(t, approle.New(agentClient(t, f.v, agentPolicy)), "CHG1006",
		appRoleRef(map[string]string{approle.OptionWrapTTL: "10m", approle.OptionMetadata: `{"team":"payments"}`}))
	r.mustDrive(time.Hour)
	if r.st.After["verified_by"] != "wrapping-lookup" || r.st.After["delivery"] != "wrapped" || r.st.After["wrapping_accessor"] == "" {
		t.Errorf("after = %v", r.st.After)
	}
	cur := f.delivered(t)
	wrapped, _ := cur.Data["wrapped_secret_id"].(string)
	newSID, newAcc := f.unwrapDelivered(t)
	if newAcc != cur.Data["secret_id_accessor"] || !f.login(t, newSID) {
		t.Fatal("the unwrapped secret id does not match the delivered accessor or does not log in")
	}
	if m := f.metadata(t, cur.Data["secret_id_accessor"].(string)); m["team"] != "payments" || m["change_id"] != "CHG1006" {
		t.Errorf("metadata = %v", m)
	}
	r.driveAfterOverlap()
	if f.login(t, f.oldSID) || r.st.After["old_login"] != "denied" {
		t.Errorf("old secret id not retired: %v", r.st.After)
	}
	r.assertNoLeak(map[string]string{"old secret id": f.oldSID, "wrapping token": wrapped, "new secret id": newSID})
}

// Bad references are refused before anything changes.
func TestAppRoleRefusesBadReferences(t *testing.T) {
	f := newAppRoleFixture(t)
	rot := approle.New(agentClient(t, f.v, agentPolicy))
	for name, ref := range map[string]events.CredentialRef{
		"no deliver_to":    {Kind: approle.Kind, Mount: "approle", Path: "payments"},
		"unknown role":     appRoleRef(map[string]string{}),
		"unknown accessor": appRoleRef(map[string]string{approle.OptionAccessor: "00000000-0000-0000-0000-000000000000"}),
		"revoke action":    {Kind: approle.Kind, Mount: "approle", Path: "payments", Action: events.ActionRevoke, Options: map[string]string{approle.OptionDeliverTo: "secret/x"}},
	} {
		t.Run(name, func(t *testing.T) {
			if name == "unknown role" {
				ref.Path = "nope"
			}
			r := newRun(t, rot, "CHG1007", ref)
			_, err := r.drive(time.Hour)
			wantPermanent(t, err)
			if got := f.accessors(t); len(got) != 1 || f.delivered(t).VersionMetadata.Version != 1 {
				t.Errorf("a refused reference changed Vault: accessors %v", got)
			}
		})
	}
}

func wantRetryableSave(t *testing.T, err error) {
	t.Helper()
	wantRetryable(t, err, "journal unavailable")
}

func sortedOf(s ...string) []string {
	out := append([]string(nil), s...)
	slices.Sort(out)
	return out
}

func without(list []string, drop string) string {
	for _, s := range list {
		if s != drop {
			return s
		}
	}
	return ""
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
