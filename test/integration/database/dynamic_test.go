package database

import (
	"context"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
	"github.com/rotation-agent/rotation-agent/rotators/leases"
	"github.com/rotation-agent/rotation-agent/test/harness/drive"
)

// leasePolicy is what the lease-prefix rotator needs, as in docs/vault-policy.hcl.
const leasePolicy = `
path "auth/token/lookup-self"        { capabilities = ["read"] }
path "sys/leases/lookup/*"           { capabilities = ["list", "sudo"] }
path "sys/leases/lookup"             { capabilities = ["update"] }
path "sys/leases/revoke-prefix/*"    { capabilities = ["update", "sudo"] }
`

// dynamicCreds are database credentials a consumer read from database/creds/<role>.
type dynamicCreds struct {
	lease, user, password string
}

// readCreds reads database/creds/<role> as a consumer would: Vault creates a PostgreSQL user
// behind a lease.
func (e *env) readCreds(t *testing.T, role string) dynamicCreds {
	t.Helper()
	s, err := e.v.Root.Logical().Read("database/creds/" + role)
	if err != nil || s == nil {
		t.Fatalf("read database/creds/%s: %v", role, err)
	}
	c := dynamicCreds{lease: s.LeaseID}
	c.user, _ = s.Data["username"].(string)
	c.password, _ = s.Data["password"].(string)
	if c.lease == "" || c.user == "" || c.password == "" {
		t.Fatalf("database/creds/%s returned no lease, user or password", role)
	}
	return c
}

// userExists reports whether PostgreSQL still has a role called user.
func (e *env) userExists(t *testing.T, user string) bool {
	t.Helper()
	return e.pg.QueryString(t, "SELECT count(*)::text FROM pg_roles WHERE rolname = $1", user) != "0"
}

// Dynamic database credentials are revoked through their lease prefix: every lease under
// database/creds/readonly is gone from Vault, and so are the PostgreSQL users behind them (a
// login with their credentials is refused). Credentials of another role are left alone. The
// fingerprints count the leases before and after; nothing holds a password.
func TestLeasePrefixRevokesDynamicDatabaseUsers(t *testing.T) {
	e := setup(t)
	for _, role := range []string{"readonly", "reporting"} {
		if _, err := e.v.Root.Logical().Write("database/roles/"+role, map[string]any{
			"db_name": "pg", "creation_statements": []string{goodCreation}, "default_ttl": "1h", "max_ttl": "2h",
		}); err != nil {
			t.Fatalf("write role %s: %v", role, err)
		}
	}
	var issued []dynamicCreds
	for i := 0; i < 3; i++ {
		c := e.readCreds(t, "readonly")
		e.mustLogin(t, "a dynamic user before the revocation", c.user, c.password)
		issued = append(issued, c)
	}
	other := e.readCreds(t, "reporting")

	client := drive.Client(t, e.v, drive.PolicyToken(t, e.v, "rotation-agent-leases", leasePolicy, "1h"))
	rot := leases.New(client)
	j, clk := &drive.Journal{}, drive.NewClock(time.Now().UTC())
	ref := events.CredentialRef{Kind: leases.Kind, Mount: "database", Path: "creds/readonly", Action: events.ActionRevoke}
	req := drive.Request("CHG-DB-LEASES-1", ref, j, clk)

	plan, err := rot.Plan(context.Background(), req)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if plan.Current["leases"] != "3" || plan.Current["prefix"] != "database/creds/readonly" {
		t.Errorf("plan = %+v, want the 3 leases under database/creds/readonly", plan)
	}
	for _, c := range issued {
		if !e.userExists(t, c.user) {
			t.Fatal("plan dropped a database user")
		}
	}

	var st rotators.State
	if out := drive.MustRun(t, rot, req, &st, 0); !out.Retired || !st.Verified {
		t.Fatalf("outcome %+v verified %t, want revoked, verified and done", out, st.Verified)
	}
	if left := e.v.List(t, "sys/leases/lookup/database/creds/readonly/"); len(left) != 0 {
		t.Errorf("%d leases remain under database/creds/readonly", len(left))
	}
	for i, c := range issued {
		if e.userExists(t, c.user) {
			t.Errorf("database user %d of a revoked lease still exists", i)
		}
		e.mustBeRefused(t, "a dynamic user of a revoked lease", c.user, c.password)
		if _, err := e.v.Root.Logical().Write("sys/leases/lookup", map[string]any{"lease_id": c.lease}); err == nil {
			t.Errorf("lease %d is still known to Vault", i)
		}
	}
	if !e.userExists(t, other.user) || len(e.v.List(t, "sys/leases/lookup/database/creds/reporting/")) != 1 {
		t.Error("a lease outside the prefix, or its database user, was revoked")
	}
	e.mustLogin(t, "a dynamic user of another role", other.user, other.password)
	if st.Before["prefix"] != "database/creds/readonly" || st.Before["leases"] != "3" ||
		st.After["leases"] != "0" || st.After["revoked_with"] != "revoke-prefix" || st.After["leases_issued_since_revoke"] != "0" {
		t.Errorf("fingerprints before %v after %v, want 3 leases before, none after, revoked with revoke-prefix", st.Before, st.After)
	}
	secrets := map[string]string{"other password": other.password}
	for i, c := range issued {
		secrets["password "+string(rune('a'+i))] = c.password
	}
	drive.AssertNoLeak(t, secrets, map[string][]string{"journal": j.Texts(), "state": drive.StateTexts(&st), "plan": plan.Changes})
}
