package identity

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
	"github.com/rotation-agent/rotation-agent/rotators/leases"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// appRoleLogins enables AppRole and logs in n times; each login's token is a lease under
// auth/approle/login. It returns the tokens and a fresh secret id for later logins.
func appRoleLogins(t *testing.T, v *harness.Vault, n int) (tokens []string, login func() string) {
	t.Helper()
	if err := v.Root.Sys().EnableAuthWithOptions("approle", &vaultapi.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatalf("enable approle: %v", err)
	}
	write(t, v.Root, "auth/approle/role/batch", map[string]any{"token_policies": "default", "token_ttl": "1h"})
	s, err := v.Root.Logical().Read("auth/approle/role/batch/role-id")
	if err != nil {
		t.Fatal(err)
	}
	rid := s.Data["role_id"].(string)
	sid := write(t, v.Root, "auth/approle/role/batch/secret-id", nil).Data["secret_id"].(string)
	login = func() string {
		s, err := clientWith(t, v, "").Logical().Write("auth/approle/login", map[string]any{"role_id": rid, "secret_id": sid})
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		return s.Auth.ClientToken
	}
	for i := 0; i < n; i++ {
		tokens = append(tokens, login())
	}
	return tokens, login
}

func leaseRef(mount, path string, options map[string]string) events.CredentialRef {
	return events.CredentialRef{Kind: leases.Kind, Mount: mount, Path: path, Action: events.ActionRevoke, Options: options}
}

// Revoking the leases of AppRole logins revokes their tokens: none remains under the prefix
// and requests with the tokens are denied. Evidence holds the counts, never a token.
func TestLeasePrefixRevokesAppRoleLogins(t *testing.T) {
	for _, force := range []bool{false, true} {
		name := "revoke-prefix"
		opts := map[string]string{}
		if force {
			name = "revoke-force"
			opts[leases.OptionForce] = "true"
		}
		t.Run(name, func(t *testing.T) {
			v := harness.StartVault(t)
			tokens, _ := appRoleLogins(t, v, 3)
			r := newRun(t, leases.New(agentClient(t, v, agentPolicy)), "CHG3001", leaseRef("auth", "approle/login", opts))

			plan, err := r.plan()
			if err != nil {
				t.Fatalf("plan: %v", err)
			}
			if plan.Current["leases"] != "3" || !strings.Contains(plan.Changes[0], name) {
				t.Errorf("plan = %+v", plan)
			}
			if n := len(leaseIDs(t, v, "auth/approle/login")); n != 3 {
				t.Fatalf("plan changed the leases: %d left", n)
			}

			out := r.mustDrive(time.Hour)
			if !out.Completed || !r.st.Verified {
				t.Fatalf("outcome %+v", out)
			}
			if left := leaseIDs(t, v, "auth/approle/login"); len(left) != 0 {
				t.Errorf("%d leases remain under the prefix", len(left))
			}
			for i, tok := range tokens {
				if tokenWorks(t, v, tok) {
					t.Errorf("token %d of a revoked login still works", i)
				}
			}
			if r.st.Before["leases"] != "3" || r.st.After["leases"] != "0" || r.st.After["revoked_with"] != name {
				t.Errorf("before %v after %v", r.st.Before, r.st.After)
			}
			if out := r.driveAfterOverlap(); !out.Retired {
				t.Fatalf("outcome %+v", out)
			}
			secrets := map[string]string{}
			for i, tok := range tokens {
				secrets["token "+string(rune('a'+i))] = tok
			}
			r.assertNoLeak(secrets)
		})
	}
}

// Leases of another source: PKI certificates issued with generate_lease. Revoking the prefix
// revokes the certificates (they get a revocation time) and leaves other roles' leases alone.
func TestLeasePrefixRevokesPKICertificates(t *testing.T) {
	v := harness.StartVault(t)
	if err := v.Root.Sys().Mount("pki", &vaultapi.MountInput{Type: "pki", Config: vaultapi.MountConfigInput{MaxLeaseTTL: "24h"}}); err != nil {
		t.Fatal(err)
	}
	write(t, v.Root, "pki/root/generate/internal", map[string]any{"common_name": "example.com", "ttl": "24h"})
	for _, role := range []string{"web", "api"} {
		write(t, v.Root, "pki/roles/"+role, map[string]any{"allowed_domains": "example.com", "allow_subdomains": true, "generate_lease": true, "max_ttl": "1h"})
	}
	var serials []string
	for _, cn := range []string{"a.example.com", "b.example.com"} {
		serials = append(serials, write(t, v.Root, "pki/issue/web", map[string]any{"common_name": cn}).Data["serial_number"].(string))
	}
	other := write(t, v.Root, "pki/issue/api", map[string]any{"common_name": "c.example.com"}).Data["serial_number"].(string)

	r := newRun(t, leases.New(agentClient(t, v, agentPolicy)), "CHG3002", leaseRef("pki", "issue/web", nil))
	r.mustDrive(0)
	if left := leaseIDs(t, v, "pki/issue/web"); len(left) != 0 || r.st.Before["leases"] != "2" {
		t.Errorf("%d leases remain; before %v", len(left), r.st.Before)
	}
	for _, serial := range serials {
		if !certRevoked(t, v, serial) {
			t.Errorf("certificate %s is not revoked", serial)
		}
	}
	if certRevoked(t, v, other) || len(leaseIDs(t, v, "pki/issue/api")) != 1 {
		t.Error("a lease outside the prefix was revoked")
	}
}

func certRevoked(t *testing.T, v *harness.Vault, serial string) bool {
	t.Helper()
	s, err := v.Root.Logical().Read("pki/cert/" + serial)
	if err != nil || s == nil {
		t.Fatalf("read certificate %s: %v", serial, err)
	}
	n, _ := s.Data["revocation_time"].(json.Number)
	at, _ := n.Int64()
	return at > 0
}

// A journal failure after the revocation: the resumed run completes, keeps the count from
// before the first revocation, and does not count the leases it already revoked as new ones.
func TestLeasePrefixResume(t *testing.T) {
	v := harness.StartVault(t)
	tokens, login := appRoleLogins(t, v, 2)
	r := newRun(t, leases.New(agentClient(t, v, agentPolicy)), "CHG3003", leaseRef("auth", "approle/login", nil))
	failed := false
	r.failSave = func(st *rotators.State) bool {
		if !failed && st.Done == rotators.StepApply {
			failed = true
			return true
		}
		return false
	}
	_, err := r.drive(time.Hour)
	wantRetryable(t, err, "journal unavailable")
	if len(leaseIDs(t, v, "auth/approle/login")) != 0 {
		t.Fatal("the first apply did not revoke")
	}
	r.resumeFromJournal()
	out := r.mustDrive(time.Hour)
	if !out.Completed || !out.Resumed {
		t.Fatalf("outcome %+v", out)
	}
	if r.st.Before["leases"] != "2" || r.st.After["leases"] != "0" {
		t.Errorf("before %v after %v: the evidence must still count the leases revoked by the first attempt", r.st.Before, r.st.After)
	}
	for _, tok := range tokens {
		if tokenWorks(t, v, tok) {
			t.Error("a revoked login's token works")
		}
	}
	// A client logging in after the change is not revoked by a later, finished run.
	fresh := login()
	r.driveAfterOverlap()
	if !tokenWorks(t, v, fresh) {
		t.Error("retire revoked a login made after the revocation")
	}
}

// Verify catches leases that survive (a revocation that silently did nothing), and tells
// leases issued after the revocation (clients logging in again) apart from survivors.
func TestLeasePrefixVerifyCatchesSurvivors(t *testing.T) {
	v := harness.StartVault(t)
	appRoleLogins(t, v, 2)
	// The revocation goes to a prefix with nothing under it: a revocation that did nothing.
	elsewhere := leaseRef("auth", "approle/nothing-here", nil)
	rot := &sabotage{Rotator: leases.New(agentClient(t, v, agentPolicy)), applyAs: &elsewhere}
	r := newRun(t, rot, "CHG3004", leaseRef("auth", "approle/login", nil))
	r.now = time.Now().UTC().Add(time.Minute) // the logins are clearly older than the revocation
	_, err := r.drive(time.Hour)
	wantRetryable(t, err, "verification failed", "2 of the leases issued before the revocation remain")
	if r.st.Verified {
		t.Fatal("verified though leases survived")
	}

	// A real revocation; a client logs in again before verify: that lease is newer, not a survivor.
	v2 := harness.StartVault(t)
	_, login2 := appRoleLogins(t, v2, 2)
	rot2 := &sabotage{Rotator: leases.New(agentClient(t, v2, agentPolicy))}
	rot2.beforeVerify = func(int) { login2() }
	r2 := newRun(t, rot2, "CHG3005", leaseRef("auth", "approle/login", nil))
	r2.mustDrive(time.Hour)
	if r2.st.After["leases"] != "1" || r2.st.After["leases_issued_since_revoke"] != "1" {
		t.Errorf("after %v, want the one new login counted as issued since", r2.st.After)
	}
}

// A prefix covering the agent's own login is refused: the agent would revoke its own token.
func TestLeasePrefixRefusesAgentOwnLogin(t *testing.T) {
	v := harness.StartVault(t)
	_, login := appRoleLogins(t, v, 1)
	if err := v.Root.Sys().PutPolicy("identity-agent", agentPolicy); err != nil {
		t.Fatal(err)
	}
	write(t, v.Root, "auth/approle/role/batch", map[string]any{"token_policies": "identity-agent", "token_ttl": "1h"})
	agentToken := login()
	r := newRun(t, leases.New(clientWith(t, v, agentToken)), "CHG3006", leaseRef("auth", "approle", nil))
	_, err := r.plan()
	wantPermanent(t, err, "covers the agent's own login")
	_, err = r.drive(time.Hour)
	wantPermanent(t, err, "covers the agent's own login")
	if !tokenWorks(t, v, agentToken) || len(leaseIDs(t, v, "auth/approle/login")) != 2 {
		t.Error("a refused revocation revoked leases")
	}
}
