package identity

import (
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators/token"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// tokenWithChild creates a token as root and a child token of it, and returns both with the
// parent's accessor.
func tokenWithChild(t *testing.T, v *harness.Vault) (parent, parentAcc, child string) {
	t.Helper()
	if err := v.Root.Sys().PutPolicy("spawner", `path "auth/token/create" { capabilities = ["update"] }`); err != nil {
		t.Fatal(err)
	}
	p, err := v.Root.Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: []string{"default", "spawner"}, TTL: "1h", DisplayName: "ci-runner"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := clientWith(t, v, p.Auth.ClientToken).Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: []string{"default"}, TTL: "30m"})
	if err != nil {
		t.Fatal(err)
	}
	return p.Auth.ClientToken, p.Auth.Accessor, c.Auth.ClientToken
}

// tokensOfChange counts the live tokens Vault holds whose metadata names changeID.
func tokensOfChange(t *testing.T, v *harness.Vault, changeID string) []string {
	t.Helper()
	var out []string
	for _, a := range v.List(t, "auth/token/accessors") {
		s, err := v.Root.Logical().Write("auth/token/lookup-accessor", map[string]any{"accessor": a})
		if err != nil {
			continue
		}
		if meta, _ := s.Data["meta"].(map[string]any); meta != nil && meta["change_id"] == changeID {
			out = append(out, a)
		}
	}
	return out
}

// Revoking by accessor revokes the token and its children: requests with either are denied and
// the accessor is no longer found. Nothing secret is kept.
func TestTokenRevokeByAccessor(t *testing.T) {
	v := harness.StartVault(t)
	parent, acc, child := tokenWithChild(t, v)
	r := newRun(t, token.New(agentClient(t, v, agentPolicy)), "CHG2001",
		events.CredentialRef{Kind: token.Kind, Mount: "token", Path: acc})

	plan, err := r.plan()
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if plan.Action != events.ActionRevoke || plan.Current["state"] != "live" || plan.Current["display_name"] != "token-ci-runner" ||
		!strings.Contains(plan.Changes[0], "all its child tokens") {
		t.Errorf("plan = %+v", plan)
	}
	if !tokenWorks(t, v, parent) {
		t.Fatal("plan revoked the token")
	}

	out := r.mustDrive(time.Hour)
	if !out.Completed || !r.st.Verified {
		t.Fatalf("outcome %+v", out)
	}
	if tokenWorks(t, v, parent) || tokenWorks(t, v, child) {
		t.Error("a request with the revoked token or its child still succeeds")
	}
	if accessorExists(t, v, acc) {
		t.Error("auth/token/lookup-accessor still finds the revoked token")
	}
	if r.st.Before["policies"] != "default,spawner" || r.st.Before["state"] != "live" || r.st.After["state"] != "revoked" {
		t.Errorf("before %v after %v", r.st.Before, r.st.After)
	}
	if out := r.driveAfterOverlap(); !out.Retired {
		t.Fatalf("outcome %+v", out)
	}

	// Revoking again (the same change redelivered) finds nothing to do and succeeds.
	again := newRun(t, token.New(agentClient(t, v, agentPolicy)), "CHG2001",
		events.CredentialRef{Kind: token.Kind, Mount: "token", Path: acc, Action: events.ActionRevoke})
	if out := again.mustDrive(0); !out.Retired || again.st.Before["state"] != "not found" {
		t.Errorf("second revoke: %+v before %v", out, again.st.Before)
	}
	r.assertNoLeak(map[string]string{"token": parent, "child token": child})
}

// Vault cannot keep children when revoking by accessor: orphan_children=true without deliver_to
// (where the agent would read the token itself) is refused, and so is revoking the agent's own
// token. Nothing is revoked.
func TestTokenRefusals(t *testing.T) {
	v := harness.StartVault(t)
	parent, acc, child := tokenWithChild(t, v)
	agent := agentClient(t, v, agentPolicy)
	self, err := agent.Auth().Token().LookupSelf()
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		ref  events.CredentialRef
		want string
	}{
		"orphan children": {events.CredentialRef{Kind: token.Kind, Mount: "token", Path: acc, Options: map[string]string{token.OptionOrphanChildren: "true"}}, "revoke-orphan"},
		"own token":       {events.CredentialRef{Kind: token.Kind, Mount: "token", Path: self.Data["accessor"].(string)}, "agent's own token"},
		"role, no action": {events.CredentialRef{Kind: token.Kind, Mount: "token", Path: acc, Options: map[string]string{token.OptionRole: "ci"}}, "say action rotate"},
		"rotate, no role": {events.CredentialRef{Kind: token.Kind, Mount: "token", Path: acc, Action: events.ActionRotate}, "needs option role"},
	} {
		t.Run(name, func(t *testing.T) {
			r := newRun(t, token.New(agent), "CHG2002", tc.ref)
			_, err := r.plan()
			wantPermanent(t, err, tc.want)
			_, err = r.drive(0)
			wantPermanent(t, err, tc.want)
		})
	}
	if !tokenWorks(t, v, parent) || !tokenWorks(t, v, child) {
		t.Error("a refused revocation revoked something")
	}
	if _, err := agent.Auth().Token().LookupSelf(); err != nil {
		t.Errorf("the agent's own token was revoked: %v", err)
	}
}

// tokenRoleFixture has a token role "ci" (orphan tokens) and a token created from it,
// delivered in secret/apps/ci.
type tokenRoleFixture struct {
	v              *harness.Vault
	oldTok, oldAcc string
}

func newTokenRoleFixture(t *testing.T) *tokenRoleFixture {
	t.Helper()
	v := harness.StartVault(t)
	write(t, v.Root, "auth/token/roles/ci", map[string]any{"allowed_policies": "default", "orphan": true, "token_ttl": "1h"})
	write(t, v.Root, "auth/token/roles/children", map[string]any{"allowed_policies": "default", "orphan": false})
	s := write(t, v.Root, "auth/token/create/ci", nil)
	v.PutKV(t, "apps/ci", map[string]any{"token": s.Auth.ClientToken, "token_accessor": s.Auth.Accessor, "vault_addr": "https://vault.example"})
	return &tokenRoleFixture{v: v, oldTok: s.Auth.ClientToken, oldAcc: s.Auth.Accessor}
}

func (f *tokenRoleFixture) ref(role string) events.CredentialRef {
	return events.CredentialRef{Kind: token.Kind, Mount: "token", Path: f.oldAcc, Action: events.ActionRotate,
		Options: map[string]string{token.OptionRole: role, token.OptionDeliverTo: "secret/apps/ci"}}
}

// Rotating with a role delivers a working replacement, keeps the old token through the
// overlap, then revokes it: a request with it is denied and its accessor is gone.
func TestTokenRotateWithRole(t *testing.T) {
	f := newTokenRoleFixture(t)
	r := newRun(t, token.New(agentClient(t, f.v, agentPolicy)), "CHG2003", f.ref("ci"))
	plan, err := r.plan()
	if err != nil || plan.Action != events.ActionRotate || len(plan.Changes) != 4 {
		t.Fatalf("plan = %+v, %v", plan, err)
	}
	out := r.mustDrive(time.Hour)
	if !out.RetirePending || !r.st.Verified {
		t.Fatalf("outcome %+v", out)
	}
	cur := f.v.KV(t, "apps/ci", 0)
	newTok, _ := cur.Data["token"].(string)
	newAcc, _ := cur.Data["token_accessor"].(string)
	if cur.VersionMetadata.Version != 2 || newTok == "" || newTok == f.oldTok || cur.Data["vault_addr"] != "https://vault.example" {
		t.Fatalf("deliver_to version %d does not hold a replacement token next to the other fields", cur.VersionMetadata.Version)
	}
	if !tokenWorks(t, f.v, newTok) || !tokenWorks(t, f.v, f.oldTok) {
		t.Fatal("during the overlap both tokens must work")
	}
	if got := tokensOfChange(t, f.v, "CHG2003"); len(got) != 1 || got[0] != newAcc {
		t.Errorf("tokens created for the change: %v, want only %s", got, newAcc)
	}
	if r.st.After["verified_by"] != "lookup-self" || r.st.After["accessor"] != newAcc || r.st.Before["accessor"] != f.oldAcc {
		t.Errorf("before %v after %v", r.st.Before, r.st.After)
	}
	if out := r.driveAfterOverlap(); !out.Retired {
		t.Fatalf("outcome %+v", out)
	}
	if tokenWorks(t, f.v, f.oldTok) || accessorExists(t, f.v, f.oldAcc) {
		t.Error("the old token survived retire")
	}
	if !tokenWorks(t, f.v, newTok) {
		t.Error("the replacement stopped working at retire")
	}
	if r.st.After["old_token"] != "revoked" || r.st.After["old_token_request"] != "denied" {
		t.Errorf("after %v", r.st.After)
	}
	r.assertNoLeak(map[string]string{"old token": f.oldTok, "new token": newTok})
}

// A role whose tokens would be children of the agent's token is refused before any token is
// created.
func TestTokenRotateRefusesNonOrphanRole(t *testing.T) {
	f := newTokenRoleFixture(t)
	r := newRun(t, token.New(agentClient(t, f.v, agentPolicy)), "CHG2004", f.ref("children"))
	_, err := r.drive(time.Hour)
	wantPermanent(t, err, "orphan=true")
	if got := tokensOfChange(t, f.v, "CHG2004"); len(got) != 0 {
		t.Errorf("tokens were created: %v", got)
	}
}

// A journal failure right after the replacement was created: the resumed rotation delivers
// that token (same process) or revokes it and creates one (restarted process, found by its
// metadata); Vault ends with one live token for the change. Without the permission to search
// tokens, the restarted rotation says in its evidence that a token may have been left behind.
func TestTokenRotateResumeWithoutSecondToken(t *testing.T) {
	for _, tc := range []struct {
		name    string
		restart bool
		policy  string
	}{
		{"same process", false, agentPolicy},
		{"restarted process", true, agentPolicy},
		{"restarted process without token search", true, strings.Replace(agentPolicy, `path "auth/token/accessors" { capabilities = ["list", "sudo"] }`, "", 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTokenRoleFixture(t)
			client := agentClient(t, f.v, tc.policy)
			r := newRun(t, token.New(client), "CHG2005", f.ref("ci"))
			// The journal goes down right after Vault created the credential, as if the
			// process died there: nothing after the intent note is stored.
			r.journalDownFrom("new_accessor")
			_, err := r.drive(time.Hour)
			wantRetryable(t, err, "journal unavailable")
			first := tokensOfChange(t, f.v, "CHG2005")
			if len(first) != 1 {
				t.Fatalf("%d tokens created, want 1", len(first))
			}
			r.failSave = nil
			r.resumeFromJournal()
			if r.st.Note("new_accessor") != "" || r.st.Note("creating_at") == "" {
				t.Fatalf("journal should hold the intent but not the accessor: %v", r.st.Data)
			}
			if tc.restart {
				r.rot = token.New(client)
			}
			if out := r.mustDrive(time.Hour); !out.Completed || !out.Resumed {
				t.Fatalf("outcome %+v", out)
			}
			cur := f.v.KV(t, "apps/ci", 0)
			newAcc := cur.Data["token_accessor"].(string)
			if cur.VersionMetadata.Version != 2 || !tokenWorks(t, f.v, cur.Data["token"].(string)) {
				t.Fatalf("deliver_to version %d, delivered token works: false", cur.VersionMetadata.Version)
			}
			live := tokensOfChange(t, f.v, "CHG2005")
			switch {
			case !tc.restart:
				if len(live) != 1 || newAcc != first[0] {
					t.Errorf("live tokens %v, delivered %s; want only the first one (%s)", live, newAcc, first[0])
				}
			case tc.policy == agentPolicy:
				if len(live) != 1 || live[0] != newAcc || accessorExists(t, f.v, first[0]) {
					t.Errorf("live tokens %v, delivered %s; the lost token %s must be revoked", live, newAcc, first[0])
				}
			default:
				if len(live) != 2 || r.st.After["possible_orphan_created_after"] == "" {
					t.Errorf("live tokens %v, after %v: want the unfindable token reported", live, r.st.After)
				}
			}
			r.assertNoLeak(map[string]string{"old token": f.oldTok, "new token": cur.Data["token"].(string)})
		})
	}
}

// Verify catches a replacement that does not work (revoked behind the agent's back); the fresh
// round's replacement works, and retire revokes the original old token.
func TestTokenVerifyCatchesRevokedReplacement(t *testing.T) {
	f := newTokenRoleFixture(t)
	var sabotaged string
	rot := &sabotage{Rotator: token.New(agentClient(t, f.v, agentPolicy))}
	rot.beforeVerify = func(call int) {
		if call == 1 {
			sabotaged = f.v.KV(t, "apps/ci", 0).Data["token_accessor"].(string)
			write(t, f.v.Root, "auth/token/revoke-accessor", map[string]any{"accessor": sabotaged})
		}
	}
	r := newRun(t, rot, "CHG2006", f.ref("ci"))
	_, err := r.drive(time.Hour)
	wantRetryable(t, err, "verification failed", sabotaged)
	out, _ := r.driveUntilCompleted(time.Hour)
	if !out.Completed || r.st.Rounds != 1 {
		t.Fatalf("outcome %+v rounds %d", out, r.st.Rounds)
	}
	cur := f.v.KV(t, "apps/ci", 0)
	newTok := cur.Data["token"].(string)
	if cur.Data["token_accessor"] == sabotaged || !tokenWorks(t, f.v, newTok) {
		t.Fatal("the fresh replacement was not delivered or does not work")
	}
	r.driveAfterOverlap()
	if tokenWorks(t, f.v, f.oldTok) || !tokenWorks(t, f.v, newTok) {
		t.Error("after retire the old token must be denied and the replacement work")
	}
	r.assertNoLeak(map[string]string{"old token": f.oldTok, "new token": newTok})
}
