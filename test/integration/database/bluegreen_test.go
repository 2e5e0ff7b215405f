package database

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
	dbrot "github.com/rotation-agent/rotation-agent/rotators/database"
	"github.com/rotation-agent/rotation-agent/test/harness/drive"
)

// blueGreenPair creates the static roles app-blue and app-green of one pair and writes marker
// to secret/db/app-active, the secret naming the active role; it returns the marker's version.
func (e *env) blueGreenPair(t *testing.T, marker map[string]any) int {
	t.Helper()
	e.staticRole(t, "app-blue", "app_blue")
	e.staticRole(t, "app-green", "app_green")
	return e.v.PutKV(t, "db/app-active", marker)
}

// pairRef names the static role role, paired with pair under the marker secret/db/app-active,
// with the options of extra too.
func pairRef(role, pair string, extra map[string]string) events.CredentialRef {
	opts := map[string]string{dbrot.OptionPair: pair, dbrot.OptionActiveMarker: "secret/db/app-active"}
	for k, v := range extra {
		opts[k] = v
	}
	return staticRef(role, opts)
}

// A blue/green pair rotates the role consumers do not use, proves it, then switches the
// marker to it: the active role's password keeps working through the overlap, and is rotated
// only after it. A second change alternates back, keeping the other role when asked to.
func TestBlueGreenFlip(t *testing.T) {
	e := setup(t)
	marker := e.blueGreenPair(t, map[string]any{"active": "app-blue", "owner": "payments"})
	bluePw0, blueLVR0 := e.creds(t, "app-blue")
	greenPw0, greenLVR0 := e.creds(t, "app-green")

	ctx := context.Background()
	j, clk := &drive.Journal{}, drive.NewClock(time.Now().UTC())
	rot := dbrot.NewStaticRole(e.client)
	req := drive.Request("CHG-DB-BG-1", pairRef("app-blue", "app-green", nil), j, clk)

	plan, err := rot.Plan(ctx, req)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if plan.Current["active_role"] != "app-blue" || plan.Current["role"] != "app-green" ||
		!strings.Contains(strings.Join(plan.Changes, "\n"), `from "app-blue" to "app-green"`) {
		t.Errorf("plan = %+v", plan)
	}

	var st rotators.State
	out, err := rotators.Drive(ctx, rot, req, &st, time.Hour)
	if err != nil || !out.RetirePending {
		t.Fatalf("drive: %+v %v", out, err)
	}
	m := e.v.KV(t, "db/app-active", 0)
	if m.Data["active"] != "app-green" || m.Data["owner"] != "payments" || m.VersionMetadata.Version != marker+1 {
		t.Errorf("marker = %v version %d, want active app-green, other fields kept, version %d", m.Data, m.VersionMetadata.Version, marker+1)
	}
	greenPw1, greenLVR1 := e.creds(t, "app-green")
	if !greenLVR1.After(greenLVR0) || greenPw1 == greenPw0 {
		t.Error("the inactive role was not rotated")
	}
	e.mustLogin(t, "green's new password", "app_green", greenPw1)
	e.mustBeRefused(t, "green's old password", "app_green", greenPw0)
	// The active role was not touched: consumers still on blue keep working during the overlap.
	if bluePw, blueLVR := e.creds(t, "app-blue"); bluePw != bluePw0 || !blueLVR.Equal(blueLVR0) {
		t.Error("the active role's password was changed before the overlap ended")
	}
	e.mustLogin(t, "blue's password during the overlap", "app_blue", bluePw0)
	if st.Before["active_role"] != "app-blue" || st.After["active_role"] != "app-green" || st.Before["role"] != "app-green" {
		t.Errorf("fingerprints before %v after %v must name the active role before and after", st.Before, st.After)
	}
	if rotateRoleCalls(e, "app-blue") != 0 || rotateRoleCalls(e, "app-green") != 1 {
		t.Errorf("rotate-role calls blue %d green %d, want 0 and 1", rotateRoleCalls(e, "app-blue"), rotateRoleCalls(e, "app-green"))
	}

	t.Logf("before %v after %v", st.Before, st.After)
	// After the overlap, the previously active role is rotated so the password consumers held
	// stops working; the marker still names green.
	clk.Advance(2 * time.Hour)
	out, err = rotators.Drive(ctx, rot, req, &st, time.Hour)
	if err != nil || !out.Retired {
		t.Fatalf("retire: %+v %v", out, err)
	}
	bluePw1, blueLVR1 := e.creds(t, "app-blue")
	if !blueLVR1.After(blueLVR0) {
		t.Error("retire did not rotate the previously active role")
	}
	e.mustBeRefused(t, "blue's old password after retire", "app_blue", bluePw0)
	e.mustLogin(t, "blue's new password", "app_blue", bluePw1)
	if got := e.v.KV(t, "db/app-active", 0).Data["active"]; got != "app-green" {
		t.Errorf("marker after retire = %v", got)
	}
	if st.After["previous_active"] != "rotated" || st.After["previous_active_role"] != "app-blue" || st.After["previous_active_old_login_checked"] != "true" {
		t.Errorf("after retire = %v", st.After)
	}

	// A second change alternates: blue is now inactive, so blue is rotated and becomes active;
	// with retire=keep green keeps its password.
	req2 := drive.Request("CHG-DB-BG-2", pairRef("app-blue", "app-green", map[string]string{dbrot.OptionRetire: "keep"}), j, clk)
	var st2 rotators.State
	out, err = rotators.Drive(ctx, rot, req2, &st2, 0)
	if err != nil || !out.Retired {
		t.Fatalf("second change: %+v %v", out, err)
	}
	if got := e.v.KV(t, "db/app-active", 0).Data["active"]; got != "app-blue" {
		t.Errorf("marker after the second change = %v, want app-blue", got)
	}
	bluePw2, _ := e.creds(t, "app-blue")
	e.mustLogin(t, "blue's password after the second change", "app_blue", bluePw2)
	e.mustBeRefused(t, "blue's previous password", "app_blue", bluePw1)
	if pw, lvr := e.creds(t, "app-green"); pw != greenPw1 || !lvr.Equal(greenLVR1) {
		t.Error("retire=keep rotated green")
	}
	e.mustLogin(t, "green kept", "app_green", greenPw1)
	if st2.After["previous_active"] != "kept" || st2.Before["active_role"] != "app-green" || st2.After["active_role"] != "app-blue" {
		t.Errorf("second change fingerprints before %v after %v", st2.Before, st2.After)
	}
	drive.AssertNoLeak(t, map[string]string{"blue 0": bluePw0, "blue 1": bluePw1, "blue 2": bluePw2, "green 0": greenPw0, "green 1": greenPw1},
		map[string][]string{"journal": j.Texts(), "state": drive.StateTexts(&st, &st2), "plan": plan.Changes})
}

// A marker switched by someone else between prepare and promote is not overwritten.
func TestBlueGreenMarkerChangedOutsideIsNotOverwritten(t *testing.T) {
	e := setup(t)
	e.blueGreenPair(t, map[string]any{"active": "app-blue"})
	ctx := context.Background()
	j, clk := &drive.Journal{}, drive.NewClock(time.Now().UTC())
	req := drive.Request("CHG-DB-BG-3", pairRef("app-green", "app-blue", nil), j, clk)
	rot := &sabotaged{Rotator: dbrot.NewStaticRole(e.client), after: func(*rotators.State) {
		e.v.PutKV(t, "db/app-active", map[string]any{"active": "app-canary"})
	}}
	var st rotators.State
	_, err := rotators.Drive(ctx, rot, req, &st, time.Hour)
	if err == nil || rotators.IsRetryable(err) || !strings.Contains(err.Error(), "changed outside the agent") {
		t.Fatalf("drive = %v, want a permanent error about the marker", err)
	}
	if got := e.v.KV(t, "db/app-active", 0).Data["active"]; got != "app-canary" {
		t.Errorf("marker = %v, want the outside value kept", got)
	}
	if st.Done != rotators.StepVerify {
		t.Errorf("done = %q, want verify (promote refused)", st.Done)
	}
}

// A failure in the middle of a pair's rotation, twice: the journal fails right after the
// marker was switched, and again right after retire rotated the previously active role. Each
// time a restarted agent resumes from the journal and adopts what Vault shows: the marker is
// switched once and each role is rotated once.
func TestBlueGreenResumeWithoutSecondFlipOrRotation(t *testing.T) {
	e := setup(t)
	marker := e.blueGreenPair(t, map[string]any{"active": "app-blue"})
	bluePw0, blueLVR0 := e.creds(t, "app-blue")
	greenPw0, _ := e.creds(t, "app-green")
	ctx := context.Background()
	j, clk := &drive.Journal{}, drive.NewClock(time.Now().UTC())
	req := drive.Request("CHG-DB-BG-4", pairRef("app-blue", "app-green", nil), j, clk)

	// The marker is switched, then the journal cannot record the promote.
	j.Fail = drive.FailWhen(func(st *rotators.State) bool { return st.Done == rotators.StepPromote })
	var st rotators.State
	_, err := rotators.Drive(ctx, dbrot.NewStaticRole(e.client), req, &st, time.Hour)
	if !errors.Is(err, drive.ErrSaveFailed) || !rotators.IsRetryable(err) {
		t.Fatalf("drive with the journal failing after promote = %v, want a retryable journal error", err)
	}
	if m := e.v.KV(t, "db/app-active", 0); m.Data["active"] != "app-green" || m.VersionMetadata.Version != marker+1 {
		t.Fatalf("marker = %v at version %d, want app-green at %d", m.Data, m.VersionMetadata.Version, marker+1)
	}
	greenPw1, greenLVR1 := e.creds(t, "app-green")
	resumed := j.Last(t)
	if resumed.Done != rotators.StepVerify || resumed.Started != rotators.StepPromote {
		t.Fatalf("journal: done=%q started=%q, want the promote begun and not recorded", resumed.Done, resumed.Started)
	}
	j.Fail = nil
	out, err := rotators.Drive(ctx, dbrot.NewStaticRole(e.client), req, &resumed, time.Hour)
	if err != nil || !out.Resumed || !out.RetirePending {
		t.Fatalf("resumed drive: %+v %v", out, err)
	}
	m := e.v.KV(t, "db/app-active", 0)
	if m.Data["active"] != "app-green" || m.VersionMetadata.Version != marker+1 {
		t.Errorf("marker = %v at version %d after the resumed promote, want app-green still at version %d (switched once)",
			m.Data, m.VersionMetadata.Version, marker+1)
	}
	if resumed.After["active_role"] != "app-green" || resumed.After["marker_version"] != strconv.Itoa(marker+1) {
		t.Errorf("after = %v, want the switch adopted at marker version %d", resumed.After, marker+1)
	}
	if pw, lvr := e.creds(t, "app-green"); pw != greenPw1 || !lvr.Equal(greenLVR1) {
		t.Error("the resumed run rotated the inactive role again")
	}
	if pw, lvr := e.creds(t, "app-blue"); pw != bluePw0 || !lvr.Equal(blueLVR0) {
		t.Error("the active role was rotated before the overlap ended")
	}

	// After the overlap, retire rotates blue, then the journal cannot record the retire.
	clk.Advance(2 * time.Hour)
	j.Fail = drive.FailWhen(func(st *rotators.State) bool { return st.Done == rotators.StepRetire })
	_, err = rotators.Drive(ctx, dbrot.NewStaticRole(e.client), req, &resumed, time.Hour)
	if !errors.Is(err, drive.ErrSaveFailed) {
		t.Fatalf("retire with the journal failing = %v, want a journal error", err)
	}
	bluePw1, blueLVR1 := e.creds(t, "app-blue")
	if !blueLVR1.After(blueLVR0) {
		t.Fatal("retire did not rotate the previously active role")
	}
	again := j.Last(t)
	if again.Done != rotators.StepPromote || again.Started != rotators.StepRetire || again.Note("retire_rotating_at") == "" {
		t.Fatalf("journal: done=%q started=%q notes %v, want the retire begun with its intent saved", again.Done, again.Started, again.Data)
	}
	j.Fail = nil
	out, err = rotators.Drive(ctx, dbrot.NewStaticRole(e.client), req, &again, time.Hour)
	if err != nil || !out.Retired {
		t.Fatalf("resumed retire: %+v %v", out, err)
	}
	if pw, lvr := e.creds(t, "app-blue"); pw != bluePw1 || !lvr.Equal(blueLVR1) {
		t.Errorf("the resumed retire rotated blue again: last_vault_rotation %s, was %s", lvr, blueLVR1)
	}
	if blue, green := rotateRoleCalls(e, "app-blue"), rotateRoleCalls(e, "app-green"); blue != 1 || green != 1 {
		t.Errorf("rotate-role calls blue %d green %d, want 1 and 1", blue, green)
	}
	if m := e.v.KV(t, "db/app-active", 0); m.Data["active"] != "app-green" || m.VersionMetadata.Version != marker+1 {
		t.Errorf("marker = %v at version %d after retire, want app-green at %d", m.Data, m.VersionMetadata.Version, marker+1)
	}
	e.mustBeRefused(t, "blue's password consumers held before the switch", "app_blue", bluePw0)
	e.mustLogin(t, "blue's new password", "app_blue", bluePw1)
	e.mustLogin(t, "green's password", "app_green", greenPw1)
	e.mustBeRefused(t, "green's password before the rotation", "app_green", greenPw0)
	// The restarted agent never knew blue's old password, and says so.
	if again.After["previous_active"] != "rotated" || again.After["previous_active_old_login_checked"] != "false" ||
		!sameTime(t, again.After["previous_active_last_vault_rotation"], blueLVR1) {
		t.Errorf("after retire = %v", again.After)
	}
	drive.AssertNoLeak(t, map[string]string{"blue 0": bluePw0, "blue 1": bluePw1, "green 0": greenPw0, "green 1": greenPw1},
		map[string][]string{"journal": j.Texts(), "state": drive.StateTexts(&st, &resumed, &again), "errors": drive.ErrTexts(err)})
}

// Verify catches a new password of the inactive role that does not log in (changed in the
// database behind Vault's back): the marker is not switched, so consumers stay on the active
// role, whose password works. The fresh round rotates the inactive role again, proves it, and
// only then switches the marker, once.
func TestBlueGreenVerifyCatchesPasswordThatDoesNotWork(t *testing.T) {
	e := setup(t)
	marker := e.blueGreenPair(t, map[string]any{"active": "app-blue"})
	bluePw0, _ := e.creds(t, "app-blue")
	greenPw0, _ := e.creds(t, "app-green")
	const behindVaultsBack = "green-changed-behind-vaults-back-31"
	ctx := context.Background()
	j, clk := &drive.Journal{}, drive.NewClock(time.Now().UTC())
	req := drive.Request("CHG-DB-BG-5", pairRef("app-blue", "app-green", nil), j, clk)
	rot := &sabotaged{Rotator: dbrot.NewStaticRole(e.client), after: func(*rotators.State) {
		e.pg.SetPassword(t, "app_green", behindVaultsBack)
	}}

	var st rotators.State
	_, err := rotators.Drive(ctx, rot, req, &st, time.Hour)
	if err == nil || !rotators.IsRetryable(err) || !strings.Contains(err.Error(), "verify") ||
		!strings.Contains(err.Error(), "does not log in") || !strings.Contains(err.Error(), `"app-green"`) {
		t.Fatalf("drive = %v, want a retryable verify error saying green's new password does not log in", err)
	}
	brokenPw, _ := e.creds(t, "app-green")
	e.mustBeRefused(t, "the password Vault hands out for green", "app_green", brokenPw)
	if m := e.v.KV(t, "db/app-active", 0); m.Data["active"] != "app-blue" || m.VersionMetadata.Version != marker {
		t.Fatalf("marker = %v at version %d, want it left on app-blue at version %d while green does not work",
			m.Data, m.VersionMetadata.Version, marker)
	}
	e.mustLogin(t, "blue, which consumers still use", "app_blue", bluePw0)
	errs := []error{err}

	var out rotators.Outcome
	for i := 0; i < 2*rotators.MaxStepFailures && !out.Completed; i++ {
		out, err = rotators.Drive(ctx, rot, req, &st, time.Hour)
		errs = append(errs, err)
		if !out.Completed {
			if m := e.v.KV(t, "db/app-active", 0); m.Data["active"] != "app-blue" {
				t.Fatalf("the marker was switched to %v before green was proven", m.Data["active"])
			}
		}
	}
	if !out.Completed || st.Rounds != 1 || !st.Verified {
		t.Fatalf("after retries: %+v rounds %d verified %t err %v, want completed in a second round", out, st.Rounds, st.Verified, err)
	}
	m := e.v.KV(t, "db/app-active", 0)
	if m.Data["active"] != "app-green" || m.VersionMetadata.Version != marker+1 {
		t.Errorf("marker = %v at version %d, want app-green at version %d (switched once)", m.Data, m.VersionMetadata.Version, marker+1)
	}
	greenPw2, _ := e.creds(t, "app-green")
	e.mustLogin(t, "green's password of the second round", "app_green", greenPw2)
	e.mustBeRefused(t, "the password set behind Vault's back", "app_green", behindVaultsBack)
	e.mustBeRefused(t, "green's original password", "app_green", greenPw0)
	e.mustLogin(t, "blue during the overlap", "app_blue", bluePw0)
	if blue, green := rotateRoleCalls(e, "app-blue"), rotateRoleCalls(e, "app-green"); blue != 0 || green != 2 {
		t.Errorf("rotate-role calls blue %d green %d, want 0 and one per round (2)", blue, green)
	}
	if st.Before["active_role"] != "app-blue" || st.Before["role"] != "app-green" || st.After["active_role"] != "app-green" {
		t.Errorf("fingerprints before %v after %v", st.Before, st.After)
	}
	drive.AssertNoLeak(t, map[string]string{"blue": bluePw0, "green 0": greenPw0, "green broken": brokenPw, "green 2": greenPw2, "sabotage": behindVaultsBack},
		map[string][]string{"journal": j.Texts(), "state": drive.StateTexts(&st), "errors": drive.ErrTexts(errs...)})
}
