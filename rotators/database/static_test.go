package database

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
)

func newStatic(t *testing.T) (*fakeVault, *fakeDB, *StaticRoleRotator) {
	t.Helper()
	f, client := newFake(t)
	db := &fakeDB{accepted: map[string]string{}}
	db.syncDB(f)
	r := NewStaticRole(client)
	r.login = db.login
	return f, db, r
}

func appRef(opts map[string]string) events.CredentialRef {
	return events.CredentialRef{Kind: KindStaticRole, Mount: "database", Path: "app", Options: opts}
}

func TestStaticOptions(t *testing.T) {
	tests := []struct {
		name    string
		ref     events.CredentialRef
		wantErr string
	}{
		{"plain", appRef(nil), ""},
		{"pair", appRef(map[string]string{OptionPair: "b", OptionActiveMarker: "secret/db/active"}), ""},
		{"pair keep", appRef(map[string]string{OptionPair: "b", OptionActiveMarker: "secret/db/active", OptionRetire: "keep"}), ""},
		{"pair without marker", appRef(map[string]string{OptionPair: "b"}), "go together"},
		{"marker without pair", appRef(map[string]string{OptionActiveMarker: "secret/x"}), "go together"},
		{"pair is itself", appRef(map[string]string{OptionPair: "app", OptionActiveMarker: "secret/x"}), "names the role itself"},
		{"marker without path", appRef(map[string]string{OptionPair: "b", OptionActiveMarker: "secret"}), "<kv-v2 mount>/<path>"},
		{"retire without pair", appRef(map[string]string{OptionRetire: "keep"}), "pair only"},
		{"bad retire", appRef(map[string]string{OptionPair: "b", OptionActiveMarker: "secret/x", OptionRetire: "delete"}), "want rotate or keep"},
		{"revoke action", events.CredentialRef{Kind: KindStaticRole, Mount: "database", Path: "app", Action: events.ActionRevoke}, "rotate action only"},
		{"no mount", events.CredentialRef{Kind: KindStaticRole, Path: "app"}, "mount and path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := staticOpts(tc.ref)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("staticOpts: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || rotators.IsRetryable(err) {
				t.Fatalf("staticOpts = %v, want a permanent error containing %q", err, tc.wantErr)
			}
		})
	}
}

// Plan reads only, and names the role, the connection and the target it would log in to.
func TestStaticPlanReadsOnly(t *testing.T) {
	f, _, r := newStatic(t)
	var saves []rotators.State
	plan, err := r.Plan(context.Background(), testReq(appRef(map[string]string{OptionVerifyHost: "10.0.0.5", OptionVerifyPort: "6432"}), &saves, nil))
	if err != nil {
		t.Fatal(err)
	}
	reqs, rotations := f.snapshot()
	for _, q := range reqs {
		if !strings.HasPrefix(q, "GET ") || strings.Contains(q, "static-creds") {
			t.Errorf("plan sent %q; it may only read non-secret state", q)
		}
	}
	joined := strings.Join(plan.Changes, "\n")
	if rotations != 0 || !strings.Contains(joined, "database/rotate-role/app") || !strings.Contains(joined, `database "app" at 10.0.0.5:6432`) {
		t.Errorf("plan = %q (rotations %d)", plan.Changes, rotations)
	}
	if plan.Current["username"] != "app_user" || plan.Current["last_vault_rotation"] == "" || len(saves) != 0 {
		t.Errorf("current = %v, saves %d", plan.Current, len(saves))
	}
}

// The steps rotate once, prove the new password logs in and the old is refused, and nothing
// they keep or return holds a password.
func TestStaticStepsHappyPath(t *testing.T) {
	f, db, r := newStatic(t)
	ctx := context.Background()
	var saves []rotators.State
	req := testReq(appRef(nil), &saves, nil)
	var st rotators.State
	if err := r.Prepare(ctx, req, &st); err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(ctx, req, &st); err != nil {
		t.Fatal(err)
	}
	db.syncDB(f)
	if err := r.Verify(ctx, req, &st); err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(ctx, req, &st); err != nil { // a repeated apply does nothing
		t.Fatal(err)
	}
	if _, n := f.snapshot(); n != 1 {
		t.Errorf("rotations = %d, want 1", n)
	}
	if st.After["old_login_checked"] != "true" || st.After["new_login_checked"] != "true" || st.After["rotated_by"] != "agent" {
		t.Errorf("after = %v", st.After)
	}
	if len(saves) == 0 || saves[0].Note(noteRotatingAt) == "" {
		t.Errorf("the intent was not saved before the rotate call: %v", saves)
	}
	b, _ := json.Marshal(append(saves, st))
	noSecrets(t, string(b))
}

// Vault refusing the rotate call (4xx) is permanent; a 5xx is retryable and the retry adopts
// a rotation that happened behind the lost answer instead of rotating again.
func TestStaticApplyErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("4xx permanent", func(t *testing.T) {
		f, _, r := newStatic(t)
		var saves []rotators.State
		req := testReq(appRef(nil), &saves, nil)
		var st rotators.State
		if err := r.Prepare(ctx, req, &st); err != nil {
			t.Fatal(err)
		}
		f.fail["PUT database/rotate-role/app"] = 403
		err := r.Apply(ctx, req, &st)
		if err == nil || rotators.IsRetryable(err) {
			t.Fatalf("apply = %v, want permanent", err)
		}
	})
	t.Run("lost answer adopted", func(t *testing.T) {
		f, _, r := newStatic(t)
		var saves []rotators.State
		req := testReq(appRef(nil), &saves, nil)
		var st rotators.State
		if err := r.Prepare(ctx, req, &st); err != nil {
			t.Fatal(err)
		}
		f.lostRotate = true
		err := r.Apply(ctx, req, &st)
		if err == nil || !rotators.IsRetryable(err) {
			t.Fatalf("apply = %v, want retryable", err)
		}
		f.lostRotate = false
		if err := r.Apply(ctx, req, &st); err != nil {
			t.Fatal(err)
		}
		if _, n := f.snapshot(); n != 1 || st.After["rotated_by"] != "agent" {
			t.Errorf("rotations = %d after %v, want the lost rotation adopted", n, st.After)
		}
	})
	t.Run("save fails before the call", func(t *testing.T) {
		f, _, r := newStatic(t)
		var saves []rotators.State
		failing := false
		req := testReq(appRef(nil), &saves, &failing)
		var st rotators.State
		if err := r.Prepare(ctx, req, &st); err != nil {
			t.Fatal(err)
		}
		failing = true
		if err := r.Apply(ctx, req, &st); err == nil || !rotators.IsRetryable(err) {
			t.Fatalf("apply = %v, want retryable", err)
		}
		if _, n := f.snapshot(); n != 0 {
			t.Errorf("rotate-role was called although the intent could not be saved")
		}
	})
	t.Run("role gone", func(t *testing.T) {
		f, _, r := newStatic(t)
		var saves []rotators.State
		req := testReq(appRef(nil), &saves, nil)
		delete(f.roles, "app")
		var st rotators.State
		err := r.Prepare(ctx, req, &st)
		if err == nil || rotators.IsRetryable(err) || !strings.Contains(err.Error(), "not found") {
			t.Fatalf("prepare = %v, want permanent not found", err)
		}
	})
	t.Run("vault 500 on read retryable", func(t *testing.T) {
		f, _, r := newStatic(t)
		var saves []rotators.State
		f.fail["GET database/static-roles/app"] = 500
		var st rotators.State
		if err := r.Prepare(ctx, testReq(appRef(nil), &saves, nil), &st); err == nil || !rotators.IsRetryable(err) {
			t.Fatalf("prepare = %v, want retryable", err)
		}
	})
}

// Verify fails, retryably and without a password in the error, when the new password does not
// log in, when the old one still does, or when the database cannot be reached; an old password
// unknown after a restart is reported as unchecked.
func TestStaticVerifyFailures(t *testing.T) {
	ctx := context.Background()
	prepared := func(t *testing.T) (*fakeVault, *fakeDB, *StaticRoleRotator, rotators.Request, *rotators.State) {
		f, db, r := newStatic(t)
		var saves []rotators.State
		req := testReq(appRef(nil), &saves, nil)
		st := &rotators.State{}
		if err := r.Prepare(ctx, req, st); err != nil {
			t.Fatal(err)
		}
		if err := r.Apply(ctx, req, st); err != nil {
			t.Fatal(err)
		}
		return f, db, r, req, st
	}
	check := func(t *testing.T, err error, want string) {
		t.Helper()
		if err == nil || !rotators.IsRetryable(err) || !strings.Contains(err.Error(), want) {
			t.Fatalf("verify = %v, want a retryable error containing %q", err, want)
		}
		noSecrets(t, err.Error())
	}
	t.Run("new password refused", func(t *testing.T) {
		_, _, r, req, st := prepared(t) // the database still has the old password
		check(t, r.Verify(ctx, req, st), "new password of static role \"app\" does not log in")
	})
	t.Run("old password still works", func(t *testing.T) {
		f, db, r, req, st := prepared(t)
		db.syncDB(f)
		r.login = func(ctx context.Context, tg *target, user, password string) error { return nil }
		check(t, r.Verify(ctx, req, st), "old password of static role \"app\" still logs in")
	})
	t.Run("database down", func(t *testing.T) {
		f, db, r, req, st := prepared(t)
		db.syncDB(f)
		db.down = true
		check(t, r.Verify(ctx, req, st), "database not reachable")
	})
	t.Run("last_vault_rotation did not advance", func(t *testing.T) {
		f, db, r, req, st := prepared(t)
		db.syncDB(f)
		st.SetNote(noteBaseLVR, formatTime(f.roles["app"].lvr))
		check(t, r.Verify(ctx, req, st), "last_vault_rotation")
	})
	t.Run("restart loses the old password", func(t *testing.T) {
		f, db, r, req, st := prepared(t)
		db.syncDB(f)
		fresh := NewStaticRole(r.client)
		fresh.login = db.login
		if err := fresh.Verify(ctx, req, st); err != nil {
			t.Fatal(err)
		}
		if st.After["old_login_checked"] != "false" {
			t.Errorf("after = %v, want old_login_checked=false", st.After)
		}
	})
	t.Run("verify host and port override", func(t *testing.T) {
		f, db, r := newStatic(t)
		var saves []rotators.State
		req := testReq(appRef(map[string]string{OptionVerifyHost: "127.0.0.9", OptionVerifyPort: "15432"}), &saves, nil)
		st := &rotators.State{}
		for _, step := range []func(context.Context, rotators.Request, *rotators.State) error{r.Prepare, r.Apply} {
			if err := step(ctx, req, st); err != nil {
				t.Fatal(err)
			}
		}
		db.syncDB(f)
		if err := r.Verify(ctx, req, st); err != nil {
			t.Fatal(err)
		}
		for _, tg := range db.targets {
			if tg != `database "app" at 127.0.0.9:15432` {
				t.Errorf("logged in to %s, want the override", tg)
			}
		}
	})
}

// Promote switches the marker with check-and-set and adopts a switch already made; a marker
// changed to something else is left alone; a concurrent write is retried.
func TestFlipMarker(t *testing.T) {
	ctx := context.Background()
	opts := map[string]string{OptionPair: "app-green", OptionActiveMarker: "secret/db/active"}
	ref := events.CredentialRef{Kind: KindStaticRole, Mount: "database", Path: "app-blue", Options: opts}
	prepared := func(t *testing.T) (*fakeVault, *StaticRoleRotator, rotators.Request, *rotators.State) {
		f, db, r := newStatic(t)
		var saves []rotators.State
		req := testReq(ref, &saves, nil)
		st := &rotators.State{}
		if err := r.Prepare(ctx, req, st); err != nil {
			t.Fatal(err)
		}
		if st.Note(noteRole) != "app-green" || st.Note(noteActiveBefore) != "app-blue" {
			t.Fatalf("prepare picked %q (active %q), want the inactive app-green", st.Note(noteRole), st.Note(noteActiveBefore))
		}
		if err := r.Apply(ctx, req, st); err != nil {
			t.Fatal(err)
		}
		db.syncDB(f)
		return f, r, req, st
	}
	t.Run("flip", func(t *testing.T) {
		f, r, req, st := prepared(t)
		if err := r.Promote(ctx, req, st); err != nil {
			t.Fatal(err)
		}
		if f.marker["active"] != "app-green" || f.marker["owner"] != "payments" || f.version != 2 || st.After["active_role"] != "app-green" {
			t.Errorf("marker %v v%d after %v", f.marker, f.version, st.After)
		}
		if f.password("app-blue") != "canary-blue-password-0001" {
			t.Error("the active role was rotated")
		}
		if err := r.Promote(ctx, req, st); err != nil || f.version != 2 {
			t.Errorf("a repeated promote wrote again: %v, version %d", err, f.version)
		}
	})
	t.Run("changed outside", func(t *testing.T) {
		f, r, req, st := prepared(t)
		f.marker = map[string]any{"active": "app-canary"}
		err := r.Promote(ctx, req, st)
		if err == nil || rotators.IsRetryable(err) || f.marker["active"] != "app-canary" {
			t.Fatalf("promote = %v, marker %v; want permanent and untouched", err, f.marker)
		}
	})
	t.Run("concurrent write", func(t *testing.T) {
		f, r, req, st := prepared(t)
		f.markerRace = true
		if err := r.Promote(ctx, req, st); err == nil || !rotators.IsRetryable(err) {
			t.Fatalf("promote = %v, want retryable", err)
		}
		if err := r.Promote(ctx, req, st); err != nil || f.marker["active"] != "app-green" {
			t.Fatalf("retried promote = %v, marker %v", err, f.marker)
		}
	})
	t.Run("retire refuses when the marker moved back", func(t *testing.T) {
		f, r, req, st := prepared(t)
		if err := r.Promote(ctx, req, st); err != nil {
			t.Fatal(err)
		}
		f.marker = map[string]any{"active": "app-blue"}
		err := r.Retire(ctx, req, st)
		if err == nil || rotators.IsRetryable(err) || f.password("app-blue") != "canary-blue-password-0001" {
			t.Fatalf("retire = %v; want permanent and blue untouched", err)
		}
	})
	t.Run("marker names neither role", func(t *testing.T) {
		f, _, r := newStatic(t)
		f.marker = map[string]any{"active": "app-red"}
		var saves []rotators.State
		err := r.Prepare(ctx, testReq(ref, &saves, nil), &rotators.State{})
		if err == nil || rotators.IsRetryable(err) || !strings.Contains(err.Error(), "neither") {
			t.Fatalf("prepare = %v", err)
		}
	})
}
