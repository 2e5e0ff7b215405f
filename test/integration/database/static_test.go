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

func staticRef(role string, opts map[string]string) events.CredentialRef {
	return events.CredentialRef{Kind: dbrot.KindStaticRole, Mount: "database", Path: role, Options: opts}
}

// A static role rotation changes the password in PostgreSQL through Vault: the password Vault
// now hands out logs in, the old one is refused, last_vault_rotation advanced, Vault was asked
// to rotate exactly once, and nothing the agent keeps holds a password.
func TestStaticRoleRotation(t *testing.T) {
	e := setup(t)
	e.staticRole(t, "app", "app_user")
	oldPw, lvr0 := e.creds(t, "app")
	e.mustLogin(t, "before the rotation", "app_user", oldPw)

	ctx := context.Background()
	j, clk := &drive.Journal{}, drive.NewClock(time.Now().UTC())
	rot := dbrot.NewStaticRole(e.client)
	req := drive.Request("CHG-DB-1", staticRef("app", nil), j, clk)

	plan, err := rot.Plan(ctx, req)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if plan.Current["username"] != "app_user" || plan.Current["db_name"] != "pg" || !sameTime(t, plan.Current["last_vault_rotation"], lvr0) {
		t.Errorf("plan fingerprint = %v", plan.Current)
	}
	if joined := strings.Join(plan.Changes, "\n"); !strings.Contains(joined, "database/rotate-role/app") || !strings.Contains(joined, "old password is refused") {
		t.Errorf("plan changes = %q", plan.Changes)
	}
	if pw, lvr := e.creds(t, "app"); pw != oldPw || !lvr.Equal(lvr0) {
		t.Fatal("plan changed the role")
	}
	if n := e.calls.Count("PUT", "database/rotate-role/app"); n != 0 {
		t.Fatalf("plan called rotate-role %d times", n)
	}

	var st rotators.State
	out, err := rotators.Drive(ctx, rot, req, &st, time.Hour)
	if err != nil {
		t.Fatalf("drive: %v", err)
	}
	if !out.Completed || !out.RetirePending || !st.Verified {
		t.Fatalf("outcome %+v verified=%t, want completed with retire pending", out, st.Verified)
	}
	newPw, lvr1 := e.creds(t, "app")
	if !lvr1.After(lvr0) {
		t.Errorf("last_vault_rotation %s did not advance past %s", lvr1, lvr0)
	}
	if newPw == oldPw {
		t.Fatal("the password did not change")
	}
	e.mustLogin(t, "the new password", "app_user", newPw)
	e.mustBeRefused(t, "the old password", "app_user", oldPw)
	if n := rotateRoleCalls(e, "app"); n != 1 {
		t.Errorf("rotate-role was called %d times, want 1", n)
	}
	if !sameTime(t, st.Before["last_vault_rotation"], lvr0) || !sameTime(t, st.After["last_vault_rotation"], lvr1) {
		t.Errorf("fingerprints before %v after %v do not show %s -> %s", st.Before, st.After, lvr0, lvr1)
	}
	if st.After["new_login_checked"] != "true" || st.After["old_login_checked"] != "true" || st.After["rotated_by"] != "agent" {
		t.Errorf("after fingerprint = %v", st.After)
	}

	t.Logf("before %v after %v", st.Before, st.After)
	// After the overlap window, retire proves the old password is still refused and rotates
	// nothing more.
	clk.Advance(2 * time.Hour)
	out, err = rotators.Drive(ctx, rot, req, &st, time.Hour)
	if err != nil || !out.Retired {
		t.Fatalf("retire: %+v %v", out, err)
	}
	if pw, lvr := e.creds(t, "app"); pw != newPw || !lvr.Equal(lvr1) {
		t.Error("retire rotated the role again")
	}
	if st.After["old_login_checked"] != "true" {
		t.Errorf("after retire: %v", st.After)
	}
	drive.AssertNoLeak(t, map[string]string{"old password": oldPw, "new password": newPw, "superuser password": e.pg.Password},
		map[string][]string{"journal": j.Texts(), "state": drive.StateTexts(&st), "plan": append(plan.Changes, drive.StateTexts(&rotators.State{Before: plan.Current})...)})
}

// A journal failure right after the apply stops the rotation; the agent restarted from the
// last saved state (memory of the old password lost) completes it without a second rotation,
// and says it could not check the old password.
func TestStaticRoleResumeAfterApplyWithoutSecondRotation(t *testing.T) {
	e := setup(t)
	e.staticRole(t, "app", "app_user")
	oldPw, lvr0 := e.creds(t, "app")
	ctx := context.Background()
	j, clk := &drive.Journal{}, drive.NewClock(time.Now().UTC())
	req := drive.Request("CHG-DB-2", staticRef("app", nil), j, clk)
	j.Fail = drive.FailWhen(func(st *rotators.State) bool { return st.Done == rotators.StepApply })

	var st rotators.State
	_, err := rotators.Drive(ctx, dbrot.NewStaticRole(e.client), req, &st, time.Hour)
	if err == nil || !rotators.IsRetryable(err) {
		t.Fatalf("drive with a failing journal = %v, want a retryable error", err)
	}
	pwAfterApply, lvrAfterApply := e.creds(t, "app")
	if !lvrAfterApply.After(lvr0) {
		t.Fatal("the first run did not rotate")
	}

	resumed := j.Last(t)
	if resumed.Done != rotators.StepPrepare || resumed.Started != rotators.StepApply {
		t.Fatalf("saved state done=%q started=%q, want the apply begun and not recorded", resumed.Done, resumed.Started)
	}
	j.Fail = nil
	out, err := rotators.Drive(ctx, dbrot.NewStaticRole(e.client), req, &resumed, time.Hour)
	if err != nil || !out.Completed || !out.Resumed {
		t.Fatalf("resumed drive: %+v %v", out, err)
	}
	pw, lvr := e.creds(t, "app")
	if pw != pwAfterApply || !lvr.Equal(lvrAfterApply) {
		t.Errorf("the resumed run rotated again: last_vault_rotation %s, was %s after the first apply", lvr, lvrAfterApply)
	}
	if n := rotateRoleCalls(e, "app"); n != 1 {
		t.Errorf("rotate-role was called %d times, want 1", n)
	}
	e.mustLogin(t, "the new password", "app_user", pw)
	e.mustBeRefused(t, "the old password", "app_user", oldPw)
	if resumed.After["rotated_by"] != "agent" || resumed.After["old_login_checked"] != "false" || resumed.After["new_login_checked"] != "true" {
		t.Errorf("after fingerprint = %v, want the agent's rotation adopted and the old login unchecked", resumed.After)
	}
	drive.AssertNoLeak(t, map[string]string{"old password": oldPw, "new password": pw},
		map[string][]string{"journal": j.Texts(), "state": drive.StateTexts(&st, &resumed), "error": drive.ErrTexts(err)})
}

// An agent stopped after it saved its intent but before Vault got the rotate call resumes and
// rotates exactly once: Vault's last_vault_rotation shows nothing happened in between.
func TestStaticRoleResumeAfterIntentRotatesOnce(t *testing.T) {
	e := setup(t)
	e.staticRole(t, "app", "app_user")
	oldPw, lvr0 := e.creds(t, "app")
	j, clk := &drive.Journal{}, drive.NewClock(time.Now().UTC())
	req := drive.Request("CHG-DB-3", staticRef("app", nil), j, clk)
	ctx, cancel := context.WithCancel(context.Background())
	j.OnSave = func(st *rotators.State) {
		if st.Started == rotators.StepApply && st.Note("rotating_at") != "" {
			cancel() // the process dies: the rotate call never reaches Vault
		}
	}
	var st rotators.State
	if _, err := rotators.Drive(ctx, dbrot.NewStaticRole(e.client), req, &st, time.Hour); err == nil {
		t.Fatal("drive with a cancelled context succeeded")
	}
	if _, lvr := e.creds(t, "app"); !lvr.Equal(lvr0) {
		t.Fatal("the interrupted run rotated")
	}

	j.OnSave = nil
	resumed := j.Last(t)
	if resumed.Note("rotating_at") == "" {
		t.Fatalf("the intent was not saved before the call: %v", resumed.Data)
	}
	out, err := rotators.Drive(context.Background(), dbrot.NewStaticRole(e.client), req, &resumed, time.Hour)
	if err != nil || !out.Completed {
		t.Fatalf("resumed drive: %+v %v", out, err)
	}
	pw, lvr := e.creds(t, "app")
	if !lvr.After(lvr0) || pw == oldPw {
		t.Fatal("the resumed run did not rotate")
	}
	if n := rotateRoleCalls(e, "app"); n != 1 {
		t.Errorf("rotate-role reached Vault %d times, want 1", n)
	}
	e.mustLogin(t, "the new password", "app_user", pw)
	e.mustBeRefused(t, "the old password", "app_user", oldPw)
}

// sabotaged changes the rotated user's password in PostgreSQL behind Vault's back right after
// the first successful apply, so the password Vault hands out does not work.
type sabotaged struct {
	rotators.Rotator
	done  bool
	after func(st *rotators.State)
}

func (s *sabotaged) Apply(ctx context.Context, req rotators.Request, st *rotators.State) error {
	err := s.Rotator.Apply(ctx, req, st)
	if err == nil && !s.done {
		s.done = true
		s.after(st)
	}
	return err
}

// Verify catches a password that does not log in: the password Vault hands out was changed
// in the database behind its back. The error is retryable, names the role and holds no
// password; the driver then starts over with a fresh rotation that works.
func TestStaticRoleVerifyCatchesPasswordThatDoesNotWork(t *testing.T) {
	e := setup(t)
	e.staticRole(t, "app", "app_user")
	oldPw, _ := e.creds(t, "app")
	const behindVaultsBack = "changed-behind-vaults-back-77"
	ctx := context.Background()
	j, clk := &drive.Journal{}, drive.NewClock(time.Now().UTC())
	req := drive.Request("CHG-DB-4", staticRef("app", nil), j, clk)
	rot := &sabotaged{Rotator: dbrot.NewStaticRole(e.client), after: func(*rotators.State) {
		e.pg.SetPassword(t, "app_user", behindVaultsBack)
	}}

	var st rotators.State
	_, err := rotators.Drive(ctx, rot, req, &st, time.Hour)
	if err == nil {
		t.Fatal("verify accepted a password the database refuses")
	}
	if !rotators.IsRetryable(err) || !strings.Contains(err.Error(), "verify") || !strings.Contains(err.Error(), "does not log in") ||
		!strings.Contains(err.Error(), `"app"`) {
		t.Fatalf("verify error = %v (retryable %t), want a retryable error saying the new password does not log in", err, rotators.IsRetryable(err))
	}
	t.Logf("verify error: %v", err)
	if st.Verified || st.Done != rotators.StepApply {
		t.Fatalf("state after failed verify: done=%q verified=%t", st.Done, st.Verified)
	}
	vaultPw, _ := e.creds(t, "app")
	e.mustBeRefused(t, "the password Vault hands out", "app_user", vaultPw)
	errs := []error{err}

	// The driver retries, then starts over with a fresh rotation, which works.
	var out rotators.Outcome
	for i := 0; i < 2*rotators.MaxStepFailures && !out.Completed; i++ {
		out, err = rotators.Drive(ctx, rot, req, &st, time.Hour)
		errs = append(errs, err)
	}
	if !out.Completed || st.Rounds != 1 {
		t.Fatalf("after retries: outcome %+v rounds %d err %v, want completed in a second round", out, st.Rounds, err)
	}
	finalPw, _ := e.creds(t, "app")
	e.mustLogin(t, "the password of the second round", "app_user", finalPw)
	e.mustBeRefused(t, "the password set behind Vault's back", "app_user", behindVaultsBack)
	e.mustBeRefused(t, "the original password", "app_user", oldPw)
	if n := rotateRoleCalls(e, "app"); n != 2 {
		t.Errorf("rotate-role was called %d times, want one per round (2)", n)
	}
	drive.AssertNoLeak(t, map[string]string{"old password": oldPw, "broken password": vaultPw, "final password": finalPw, "sabotage password": behindVaultsBack},
		map[string][]string{"journal": j.Texts(), "state": drive.StateTexts(&st), "errors": drive.ErrTexts(errs...)})
}

func rotateRoleCalls(e *env, role string) int {
	return e.calls.Count("PUT", "database/rotate-role/"+role)
}

// sameTime compares a fingerprint timestamp with a time from Vault.
func sameTime(t *testing.T, s string, want time.Time) bool {
	t.Helper()
	got, err := time.Parse(time.RFC3339Nano, s)
	return err == nil && got.Equal(want)
}
