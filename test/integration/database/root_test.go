package database

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
	dbrot "github.com/rotation-agent/rotation-agent/rotators/database"
	"github.com/rotation-agent/rotation-agent/test/harness/drive"
)

const (
	rootUser     = "vault_admin"
	rootPassword = "initial-root-password-4e1f"
)

// rootSetup gives Vault a connection "pgroot" whose root user is a dedicated superuser (the
// harness keeps its own superuser to inspect the database), and a dynamic role for the
// verification; creation is the role's creation statement.
func rootSetup(t *testing.T, creation string) *env {
	t.Helper()
	e := setup(t)
	e.pg.CreateLoginRole(t, rootUser, rootPassword, true)
	e.configure(t, "pgroot", rootUser, rootPassword)
	e.writeVerifyRole(t, creation)
	return e
}

const goodCreation = `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`

func (e *env) writeVerifyRole(t *testing.T, creation string) {
	t.Helper()
	if _, err := e.v.Root.Logical().Write("database/roles/"+verifyRole, map[string]any{
		"db_name": "pgroot", "creation_statements": []string{creation}, "default_ttl": "5m", "max_ttl": "10m",
	}); err != nil {
		t.Fatalf("write verify role: %v", err)
	}
}

func rootRef() events.CredentialRef {
	return events.CredentialRef{Kind: dbrot.KindRoot, Mount: "database", Path: "pgroot",
		Options: map[string]string{dbrot.OptionVerifyRole: verifyRole}}
}

func rotateRootCalls(e *env) int {
	return e.calls.Count("PUT", "database/rotate-root/pgroot")
}

// dynamicUsers counts the roles Vault created for dynamic credentials that still exist.
func (e *env) dynamicUsers(t *testing.T) string {
	return e.pg.QueryString(t, "SELECT count(*)::text FROM pg_roles WHERE rolname LIKE 'v-%'")
}

// A root rotation changes the root password in PostgreSQL once, the initial password is
// refused, Vault still works with its new root credential (verified by Vault itself and by a
// login with credentials created through it, revoked afterwards), and nothing holds a secret.
func TestRootRotation(t *testing.T) {
	e := rootSetup(t, goodCreation)
	hash0 := e.pg.PasswordHash(t, rootUser)
	ctx := context.Background()
	j, clk := &drive.Journal{}, drive.NewClock(time.Now().UTC())
	rot := dbrot.NewRoot(e.client)
	req := drive.Request("CHG-DB-ROOT-1", rootRef(), j, clk)

	plan, err := rot.Plan(ctx, req)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if plan.Current["username"] != rootUser || !strings.Contains(strings.Join(plan.Changes, "\n"), "database/rotate-root/pgroot") {
		t.Errorf("plan = %+v", plan)
	}
	if e.pg.PasswordHash(t, rootUser) != hash0 || rotateRootCalls(e) != 0 {
		t.Fatal("plan changed the root password")
	}

	var st rotators.State
	out, err := rotators.Drive(ctx, rot, req, &st, time.Hour)
	if err != nil || !out.RetirePending {
		t.Fatalf("drive: %+v %v", out, err)
	}
	if e.pg.PasswordHash(t, rootUser) == hash0 {
		t.Fatal("the root password did not change in the database")
	}
	e.mustBeRefused(t, "the initial root password", rootUser, rootPassword)
	if n := rotateRootCalls(e); n != 1 {
		t.Errorf("rotate-root was called %d times, want 1", n)
	}
	if got := e.dynamicUsers(t); got != "0" {
		t.Errorf("%s verification users left in the database, want 0 (lease revoked)", got)
	}
	if st.After["verified_by"] != "verified_reset+dynamic_credentials_login" || st.After["rotate_root_calls"] != "1" ||
		st.After["uncertain_apply"] != "false" || st.Note("verify_lease") != "" {
		t.Errorf("after = %v notes = %v", st.After, st.Data)
	}

	t.Logf("before %v after %v", st.Before, st.After)
	// Vault keeps working with its new root credential.
	s, err := e.v.Root.Logical().Read("database/creds/" + verifyRole)
	if err != nil || s == nil {
		t.Fatalf("Vault cannot create credentials after the rotation: %v", err)
	}
	e.mustLogin(t, "credentials created after the rotation", s.Data["username"].(string), s.Data["password"].(string))
	if err := e.v.Root.Sys().Revoke(s.LeaseID); err != nil {
		t.Fatal(err)
	}

	clk.Advance(2 * time.Hour)
	out, err = rotators.Drive(ctx, rot, req, &st, time.Hour)
	if err != nil || !out.Retired {
		t.Fatalf("retire: %+v %v", out, err)
	}
	if st.After["old_login_checked"] != "false" || rotateRootCalls(e) != 1 {
		t.Errorf("after retire = %v, calls %d", st.After, rotateRootCalls(e))
	}
	drive.AssertNoLeak(t, map[string]string{"root password": rootPassword, "superuser password": e.pg.Password, "dynamic password": s.Data["password"].(string)},
		map[string][]string{"journal": j.Texts(), "state": drive.StateTexts(&st), "plan": plan.Changes})
}

// A verify that fails (Vault cannot create the verification credentials) is retried later
// and passes once the cause is fixed, without a second root rotation. A journal failure right
// after the apply, resumed from the saved state, does not rotate again either.
func TestRootResumeWithoutSecondRotation(t *testing.T) {
	t.Run("verify retried", func(t *testing.T) {
		e := rootSetup(t, `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' IN ROLE verify_group;`)
		hash0 := e.pg.PasswordHash(t, rootUser)
		ctx := context.Background()
		j, clk := &drive.Journal{}, drive.NewClock(time.Now().UTC())
		req := drive.Request("CHG-DB-ROOT-2", rootRef(), j, clk)
		var st rotators.State
		_, err := rotators.Drive(ctx, dbrot.NewRoot(e.client), req, &st, time.Hour)
		if err == nil || !rotators.IsRetryable(err) || !strings.Contains(err.Error(), "could not create credentials") {
			t.Fatalf("drive = %v, want a retryable verify error", err)
		}
		hash1 := e.pg.PasswordHash(t, rootUser)
		if hash1 == hash0 || st.Done != rotators.StepApply {
			t.Fatalf("the root was not rotated before verify (done %q)", st.Done)
		}
		e.pg.Exec(t, "CREATE ROLE verify_group")
		resumed := j.Last(t)
		out, err := rotators.Drive(ctx, dbrot.NewRoot(e.client), req, &resumed, 0)
		if err != nil || !out.Retired {
			t.Fatalf("resumed drive: %+v %v", out, err)
		}
		if e.pg.PasswordHash(t, rootUser) != hash1 || rotateRootCalls(e) != 1 {
			t.Errorf("the resumed run rotated the root again (%d calls)", rotateRootCalls(e))
		}
		if resumed.After["rotate_root_calls"] != "1" || resumed.After["uncertain_apply"] != "false" {
			t.Errorf("after = %v", resumed.After)
		}
		e.mustBeRefused(t, "the initial root password", rootUser, rootPassword)
		drive.AssertNoLeak(t, map[string]string{"root password": rootPassword}, map[string][]string{"error": drive.ErrTexts(err), "journal": j.Texts()})
	})
	t.Run("journal fails after apply", func(t *testing.T) {
		e := rootSetup(t, goodCreation)
		hash0 := e.pg.PasswordHash(t, rootUser)
		ctx := context.Background()
		j, clk := &drive.Journal{}, drive.NewClock(time.Now().UTC())
		req := drive.Request("CHG-DB-ROOT-3", rootRef(), j, clk)
		j.Fail = drive.FailWhen(func(st *rotators.State) bool { return st.Done == rotators.StepApply })
		var st rotators.State
		if _, err := rotators.Drive(ctx, dbrot.NewRoot(e.client), req, &st, 0); err == nil {
			t.Fatal("drive with a failing journal succeeded")
		}
		hash1 := e.pg.PasswordHash(t, rootUser)
		if hash1 == hash0 {
			t.Fatal("the first run did not rotate")
		}
		j.Fail = nil
		resumed := j.Last(t)
		if resumed.Done != rotators.StepPrepare || resumed.Note("rotated_at") == "" {
			t.Fatalf("saved state done=%q notes=%v, want the apply's outcome recorded", resumed.Done, resumed.Data)
		}
		out, err := rotators.Drive(ctx, dbrot.NewRoot(e.client), req, &resumed, 0)
		if err != nil || !out.Retired {
			t.Fatalf("resumed drive: %+v %v", out, err)
		}
		if e.pg.PasswordHash(t, rootUser) != hash1 || rotateRootCalls(e) != 1 {
			t.Errorf("the resumed run rotated the root again (%d calls)", rotateRootCalls(e))
		}
	})
}

// When the outcome of a rotate-root call was lost (the journal failed before the result was
// recorded), Vault offers nothing to tell whether it happened: the agent checks Vault's root
// connection works, rotates once more, and says so in the fingerprint.
func TestRootUncertainApplyRotatesAgainAndSaysSo(t *testing.T) {
	e := rootSetup(t, goodCreation)
	hash0 := e.pg.PasswordHash(t, rootUser)
	ctx := context.Background()
	j, clk := &drive.Journal{}, drive.NewClock(time.Now().UTC())
	req := drive.Request("CHG-DB-ROOT-4", rootRef(), j, clk)
	j.Fail = drive.FailWhen(func(st *rotators.State) bool { return st.Started == rotators.StepApply && st.Note("rotated_at") != "" })
	var st rotators.State
	if _, err := rotators.Drive(ctx, dbrot.NewRoot(e.client), req, &st, 0); err == nil {
		t.Fatal("drive with a failing journal succeeded")
	}
	hash1 := e.pg.PasswordHash(t, rootUser)
	if hash1 == hash0 {
		t.Fatal("the first run did not rotate")
	}
	j.Fail = nil
	resumed := j.Last(t)
	if resumed.Note("rotating_at") == "" || resumed.Note("rotated_at") != "" {
		t.Fatalf("saved notes = %v, want the intent without the outcome", resumed.Data)
	}
	out, err := rotators.Drive(ctx, dbrot.NewRoot(e.client), req, &resumed, 0)
	if err != nil || !out.Retired {
		t.Fatalf("resumed drive: %+v %v", out, err)
	}
	if hash2 := e.pg.PasswordHash(t, rootUser); hash2 == hash1 || rotateRootCalls(e) != 2 {
		t.Errorf("want exactly one more rotation after an unknown outcome, got %d calls", rotateRootCalls(e))
	}
	if resumed.After["uncertain_apply"] != "true" || resumed.After["rotate_root_calls"] != "2" || !resumed.Verified {
		t.Errorf("after = %v verified %t", resumed.After, resumed.Verified)
	}
	if e.calls.Count("PUT", "database/reset/pgroot") < 2 {
		t.Error("the connection was not checked before rotating again")
	}
}

// Verify catches a root credential that does not work: the root password was changed in the
// database behind Vault's back right after the rotation, so Vault cannot connect.
func TestRootVerifyCatchesBrokenRoot(t *testing.T) {
	e := rootSetup(t, goodCreation)
	const behindVaultsBack = "root-changed-behind-vaults-back-91"
	ctx := context.Background()
	j, clk := &drive.Journal{}, drive.NewClock(time.Now().UTC())
	req := drive.Request("CHG-DB-ROOT-5", rootRef(), j, clk)
	rot := &sabotaged{Rotator: dbrot.NewRoot(e.client), after: func(*rotators.State) {
		e.pg.SetPassword(t, rootUser, behindVaultsBack)
	}}
	var st rotators.State
	_, err := rotators.Drive(ctx, rot, req, &st, time.Hour)
	if err == nil {
		t.Fatal("verify accepted a root credential the database refuses")
	}
	if !rotators.IsRetryable(err) || !strings.Contains(err.Error(), "cannot connect to the database with the new root credential") {
		t.Fatalf("verify error = %v, want a retryable error saying Vault cannot connect", err)
	}
	t.Logf("verify error: %v", err)
	if st.Verified || st.Done != rotators.StepApply {
		t.Errorf("state after the failed verify: done %q verified %t", st.Done, st.Verified)
	}
	drive.AssertNoLeak(t, map[string]string{"root password": rootPassword, "sabotage password": behindVaultsBack},
		map[string][]string{"error": drive.ErrTexts(err), "journal": j.Texts(), "state": drive.StateTexts(&st)})
}
