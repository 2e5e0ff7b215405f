package identity

import (
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
	"github.com/rotation-agent/rotation-agent/rotators/token"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// revokeRef names a token to revoke; with orphan, its children are kept and the token is read
// from secret/apps/ci-runner.
func revokeRef(accessor string, orphan bool) events.CredentialRef {
	ref := events.CredentialRef{Kind: token.Kind, Mount: "token", Path: accessor, Action: events.ActionRevoke}
	if orphan {
		ref.Options = map[string]string{token.OptionOrphanChildren: "true", token.OptionDeliverTo: "secret/apps/ci-runner"}
	}
	return ref
}

// accessorOf looks a token up with itself and returns its accessor.
func accessorOf(t *testing.T, v *harness.Vault, tok string) string {
	t.Helper()
	s, err := clientWith(t, v, tok).Auth().Token().LookupSelf()
	if err != nil {
		t.Fatalf("lookup-self: %v", err)
	}
	return s.Data["accessor"].(string)
}

// orphaned reports whether Vault shows the token with accessor as an orphan.
func orphaned(t *testing.T, v *harness.Vault, accessor string) bool {
	t.Helper()
	s := write(t, v.Root, "auth/token/lookup-accessor", map[string]any{"accessor": accessor})
	return s.Data["orphan"] == true
}

// With orphan_children=true and the token delivered at deliver_to, the agent reads the token
// from Vault and revokes it with revoke-orphan: requests with it are denied and its accessor is
// gone, while its child keeps working, now an orphan. Nothing holds either token.
func TestTokenRevokeKeepingChildren(t *testing.T) {
	v := harness.StartVault(t)
	parent, acc, child := tokenWithChild(t, v)
	childAcc := accessorOf(t, v, child)
	v.PutKV(t, "apps/ci-runner", map[string]any{"token": parent, "token_accessor": acc, "vault_addr": "https://vault.example"})
	client, calls := countingAgentClient(t, v, agentPolicy)
	r := newRun(t, token.New(client), "CHG2007", revokeRef(acc, true))

	plan, err := r.plan()
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if plan.Current["deliver_to_version"] != "1" || len(plan.Changes) != 1 ||
		!containsAll(plan.Changes[0], "auth/token/revoke-orphan", "secret/apps/ci-runner", "stay valid") {
		t.Errorf("plan = %+v", plan)
	}
	if !tokenWorks(t, v, parent) || calls.Count("PUT", "auth/token/revoke-orphan") != 0 {
		t.Fatal("plan revoked the token")
	}

	if out := r.mustDrive(0); !out.Retired || !r.st.Verified {
		t.Fatalf("outcome %+v verified %t", out, r.st.Verified)
	}
	if tokenWorks(t, v, parent) || accessorExists(t, v, acc) {
		t.Error("the token survived revoke-orphan")
	}
	if !tokenWorks(t, v, child) || !accessorExists(t, v, childAcc) || !orphaned(t, v, childAcc) {
		t.Error("the child token must keep working, as an orphan")
	}
	if n, m := calls.Count("PUT", "auth/token/revoke-orphan"), calls.Count("PUT", "auth/token/revoke-accessor"); n != 1 || m != 0 {
		t.Errorf("revoke-orphan called %d times, revoke-accessor %d times; want 1 and 0", n, m)
	}
	if r.st.Before["state"] != "live" || r.st.Before["deliver_to_version"] != "1" || r.st.After["state"] != "revoked" ||
		r.st.After["revoked_with"] != "revoke-orphan" || r.st.After["children"] != "kept" {
		t.Errorf("before %v after %v", r.st.Before, r.st.After)
	}
	if cur := v.KV(t, "apps/ci-runner", 0); cur.VersionMetadata.Version != 1 {
		t.Errorf("deliver_to was written: version %d", cur.VersionMetadata.Version)
	}
	r.assertNoLeak(map[string]string{"token": parent, "child token": child})
}

// orphan_children=true revokes nothing when deliver_to does not hold the very token the
// accessor names, or when the agent may not call revoke-orphan (it needs sudo).
func TestTokenRevokeKeepingChildrenRefusals(t *testing.T) {
	v := harness.StartVault(t)
	parent, acc, child := tokenWithChild(t, v)
	other, err := v.Root.Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: []string{"default"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	otherTok, otherAcc := other.Auth.ClientToken, other.Auth.Accessor
	withoutSudo := strings.Replace(agentPolicy, `path "auth/token/revoke-orphan" { capabilities = ["update", "sudo"] }`, "", 1)
	for _, tc := range []struct {
		name      string
		delivered map[string]any
		policy    string
		want      string
	}{
		{"deliver_to holds another token", map[string]any{"token": otherTok, "token_accessor": otherAcc}, agentPolicy, "does not hold the token with accessor " + acc},
		{"deliver_to pairs the accessor with another token", map[string]any{"token": otherTok, "token_accessor": acc}, agentPolicy, "holds another token"},
		{"deliver_to holds no token", map[string]any{"token_accessor": acc}, agentPolicy, "does not hold the token"},
		{"no sudo on revoke-orphan", map[string]any{"token": parent, "token_accessor": acc}, withoutSudo, "permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v.PutKV(t, "apps/ci-runner", tc.delivered)
			r := newRun(t, token.New(agentClient(t, v, tc.policy)), "CHG2010", revokeRef(acc, true))
			_, err := r.drive(0)
			wantPermanent(t, err, tc.want)
			if !tokenWorks(t, v, parent) || !tokenWorks(t, v, child) || !tokenWorks(t, v, otherTok) {
				t.Error("a refused revocation revoked a token")
			}
			r.assertNoLeak(map[string]string{"token": parent, "child token": child, "other token": otherTok})
		})
	}
}

// A rotation with orphan_children=true revokes the old token at retire with revoke-orphan,
// reading it from the deliver_to version the rotation started from: the old token is denied,
// the child it created keeps working, and so does the replacement.
func TestTokenRotateKeepingChildren(t *testing.T) {
	v := harness.StartVault(t)
	if err := v.Root.Sys().PutPolicy("spawner", `path "auth/token/create" { capabilities = ["update"] }`); err != nil {
		t.Fatal(err)
	}
	write(t, v.Root, "auth/token/roles/ci", map[string]any{"allowed_policies": "default,spawner", "orphan": true, "token_ttl": "1h"})
	s := write(t, v.Root, "auth/token/create/ci", map[string]any{"policies": []string{"default", "spawner"}})
	oldTok, oldAcc := s.Auth.ClientToken, s.Auth.Accessor
	c, err := clientWith(t, v, oldTok).Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: []string{"default"}, TTL: "30m"})
	if err != nil {
		t.Fatal(err)
	}
	child := c.Auth.ClientToken
	v.PutKV(t, "apps/ci", map[string]any{"token": oldTok, "token_accessor": oldAcc})
	ref := events.CredentialRef{Kind: token.Kind, Mount: "token", Path: oldAcc, Action: events.ActionRotate,
		Options: map[string]string{token.OptionRole: "ci", token.OptionDeliverTo: "secret/apps/ci", token.OptionOrphanChildren: "true"}}
	client, calls := countingAgentClient(t, v, agentPolicy)
	r := newRun(t, token.New(client), "CHG2011", ref)
	plan, err := r.plan()
	if err != nil || len(plan.Changes) != 4 || !containsAll(plan.Changes[3], "revoke-orphan", "stay valid") {
		t.Fatalf("plan = %+v, %v", plan, err)
	}
	if out := r.mustDrive(time.Hour); !out.RetirePending {
		t.Fatalf("outcome %+v", out)
	}
	newTok := v.KV(t, "apps/ci", 0).Data["token"].(string)
	if !tokenWorks(t, v, oldTok) || !tokenWorks(t, v, newTok) || !tokenWorks(t, v, child) {
		t.Fatal("during the overlap the old token, its child and the replacement must work")
	}
	if out := r.driveAfterOverlap(); !out.Retired {
		t.Fatalf("outcome %+v", out)
	}
	if tokenWorks(t, v, oldTok) || accessorExists(t, v, oldAcc) {
		t.Error("the old token survived retire")
	}
	if !tokenWorks(t, v, child) || !tokenWorks(t, v, newTok) {
		t.Error("the old token's child and the replacement must keep working")
	}
	if n, m := calls.Count("PUT", "auth/token/revoke-orphan"), calls.Count("PUT", "auth/token/revoke-accessor"); n != 1 || m != 0 {
		t.Errorf("revoke-orphan called %d times, revoke-accessor %d times; want 1 and 0", n, m)
	}
	if r.st.After["old_token"] != "revoked" || r.st.After["old_token_request"] != "denied" ||
		r.st.After["revoked_with"] != "revoke-orphan" || r.st.After["children"] != "kept" {
		t.Errorf("after %v", r.st.After)
	}
	r.assertNoLeak(map[string]string{"old token": oldTok, "child token": child, "new token": newTok})
}

// A journal failure right after the revocation, as if the process died before recording it:
// the resumed revoke, in a restarted agent, finds the token gone and revokes nothing more.
// Verify proves it and the fingerprints show the token revoked.
func TestTokenRevokeResumeWithoutSecondRevoke(t *testing.T) {
	for _, orphan := range []bool{false, true} {
		name, endpoint := "revoke-accessor", "auth/token/revoke-accessor"
		if orphan {
			name, endpoint = "revoke-orphan", "auth/token/revoke-orphan"
		}
		t.Run(name, func(t *testing.T) {
			v := harness.StartVault(t)
			parent, acc, child := tokenWithChild(t, v)
			v.PutKV(t, "apps/ci-runner", map[string]any{"token": parent, "token_accessor": acc})
			client, calls := countingAgentClient(t, v, agentPolicy)
			r := newRun(t, token.New(client), "CHG2008", revokeRef(acc, orphan))
			failed := false
			r.failSave = func(st *rotators.State) bool {
				if !failed && st.Done == rotators.StepApply {
					failed = true
					return true
				}
				return false
			}
			_, err := r.drive(0)
			wantRetryable(t, err, "journal unavailable")
			if tokenWorks(t, v, parent) {
				t.Fatal("the first run did not revoke the token")
			}
			r.resumeFromJournal()
			if r.st.Done != rotators.StepPrepare || r.st.Started != rotators.StepApply {
				t.Fatalf("journal: done=%q started=%q, want the apply begun and not recorded", r.st.Done, r.st.Started)
			}
			r.rot = token.New(client)
			out := r.mustDrive(0)
			if !out.Retired || !out.Resumed || !r.st.Verified {
				t.Fatalf("resumed outcome %+v verified %t", out, r.st.Verified)
			}
			if n := calls.Count("PUT", endpoint); n != 1 {
				t.Errorf("%s called %d times, want 1", endpoint, n)
			}
			if accessorExists(t, v, acc) || tokenWorks(t, v, child) != orphan {
				t.Errorf("token revoked: %t; child works: %t, want %t", !accessorExists(t, v, acc), tokenWorks(t, v, child), orphan)
			}
			if r.st.Before["state"] != "live" || r.st.After["state"] != "revoked" || r.st.After["revoked_with"] != name {
				t.Errorf("before %v after %v", r.st.Before, r.st.After)
			}
			r.assertNoLeak(map[string]string{"token": parent, "child token": child})
		})
	}
}

// Verify catches a revocation that did not take effect (here the revoke reached another
// token): the error names the accessor and is retryable, and the token still works until the
// fresh round revokes it.
func TestTokenRevokeVerifyCatchesLiveToken(t *testing.T) {
	v := harness.StartVault(t)
	parent, acc, child := tokenWithChild(t, v)
	decoy, err := v.Root.Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: []string{"default"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	decoyRef := revokeRef(decoy.Auth.Accessor, false)
	rot := &sabotage{Rotator: token.New(agentClient(t, v, agentPolicy)), applyAs: &decoyRef}
	r := newRun(t, rot, "CHG2009", revokeRef(acc, false))
	_, err = r.drive(0)
	wantRetryable(t, err, "verification failed", acc, "still exists")
	if !tokenWorks(t, v, parent) || r.st.Verified || r.st.Done != rotators.StepApply {
		t.Fatalf("state after the failed verify: done %q verified %t", r.st.Done, r.st.Verified)
	}
	rot.applyAs = nil
	out, _ := r.driveUntilCompleted(0)
	if !out.Retired || r.st.Rounds != 1 || !r.st.Verified {
		t.Fatalf("outcome %+v rounds %d: want revoked in a fresh round", out, r.st.Rounds)
	}
	if tokenWorks(t, v, parent) || tokenWorks(t, v, child) || accessorExists(t, v, acc) {
		t.Error("the fresh round did not revoke the token and its child")
	}
	if r.st.Before["state"] != "live" || r.st.After["state"] != "revoked" {
		t.Errorf("before %v after %v", r.st.Before, r.st.After)
	}
	r.assertNoLeak(map[string]string{"token": parent, "child token": child, "decoy": decoy.Auth.ClientToken})
}

// containsAll reports whether s contains every one of parts.
func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
