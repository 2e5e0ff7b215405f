package database

import (
	"context"
	"strings"
	"testing"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
)

func rootRef(conn string, opts map[string]string) events.CredentialRef {
	return events.CredentialRef{Kind: KindRoot, Mount: "database", Path: conn, Options: opts}
}

func count(reqs []string, want string) int {
	n := 0
	for _, r := range reqs {
		if r == want {
			n++
		}
	}
	return n
}

// A root rotation is refused when nothing could prove the new credential, or when the verify
// role belongs to another connection.
func TestRootPrepareRefusesUnprovable(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		ref     events.CredentialRef
		wantErr string
	}{
		{"verified connection", rootRef("pg", nil), ""},
		{"verify role", rootRef("noverify", map[string]string{OptionVerifyRole: "other"}), ""},
		{"nothing proves it", rootRef("noverify", nil), "could not be proven"},
		{"role of another connection", rootRef("pg", map[string]string{OptionVerifyRole: "other"}), `connection "noverify"`},
		{"unknown role", rootRef("pg", map[string]string{OptionVerifyRole: "missing"}), "not found"},
		{"unknown connection", rootRef("nope", nil), "not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, client := newFake(t)
			r := NewRoot(client)
			var saves []rotators.State
			err := r.Prepare(ctx, testReq(tc.ref, &saves, nil), &rotators.State{})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || rotators.IsRetryable(err) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("prepare = %v, want a permanent error containing %q", err, tc.wantErr)
			}
			if _, n := f.snapshot(); n != 0 {
				t.Error("a refused rotation rotated")
			}
		})
	}
}

// A recorded rotation is never repeated; an unknown outcome is followed by a connection check
// and one more call, reported in the fingerprint; a broken connection stops it.
func TestRootApplyIdempotence(t *testing.T) {
	ctx := context.Background()
	t.Run("recorded", func(t *testing.T) {
		f, client := newFake(t)
		r := NewRoot(client)
		var saves []rotators.State
		req := testReq(rootRef("pg", nil), &saves, nil)
		st := &rotators.State{}
		if err := r.Prepare(ctx, req, st); err != nil {
			t.Fatal(err)
		}
		if err := r.Apply(ctx, req, st); err != nil {
			t.Fatal(err)
		}
		if err := r.Apply(ctx, req, st); err != nil {
			t.Fatal(err)
		}
		reqs, n := f.snapshot()
		if n != 1 || count(reqs, "PUT database/reset/pg") != 0 {
			t.Errorf("rotations %d, requests %v", n, reqs)
		}
		if last := saves[len(saves)-1]; last.Note(noteRootRotatedAt) == "" || st.After["uncertain_apply"] != "false" {
			t.Errorf("the outcome was not saved: %v / %v", last.Data, st.After)
		}
	})
	t.Run("uncertain", func(t *testing.T) {
		f, client := newFake(t)
		r := NewRoot(client)
		var saves []rotators.State
		req := testReq(rootRef("pg", nil), &saves, nil)
		st := &rotators.State{Before: events.Fingerprint{"username": "vault_admin"}}
		st.SetNote(noteRootRotatingAt, "2026-01-01T00:00:00Z")
		st.SetNote(noteRootCalls, "1")
		if err := r.Apply(ctx, req, st); err != nil {
			t.Fatal(err)
		}
		reqs, n := f.snapshot()
		if n != 1 || count(reqs, "PUT database/reset/pg") != 1 || reqs[0] != "PUT database/reset/pg" {
			t.Errorf("requests %v, want a reset then one rotation", reqs)
		}
		if st.After["uncertain_apply"] != "true" || st.After["rotate_root_calls"] != "2" {
			t.Errorf("after = %v", st.After)
		}
	})
	t.Run("uncertain and broken", func(t *testing.T) {
		f, client := newFake(t)
		f.fail["PUT database/reset/pg"] = 500
		r := NewRoot(client)
		var saves []rotators.State
		st := &rotators.State{}
		st.SetNote(noteRootRotatingAt, "2026-01-01T00:00:00Z")
		err := r.Apply(ctx, testReq(rootRef("pg", nil), &saves, nil), st)
		if err == nil || !rotators.IsRetryable(err) || !strings.Contains(err.Error(), "interrupted") {
			t.Fatalf("apply = %v", err)
		}
		if _, n := f.snapshot(); n != 0 {
			t.Error("rotated on a broken connection")
		}
	})
	t.Run("vault refuses", func(t *testing.T) {
		f, client := newFake(t)
		f.fail["PUT database/rotate-root/pg"] = 403
		r := NewRoot(client)
		var saves []rotators.State
		err := r.Apply(ctx, testReq(rootRef("pg", nil), &saves, nil), &rotators.State{})
		if err == nil || rotators.IsRetryable(err) {
			t.Fatalf("apply = %v, want permanent", err)
		}
	})
}

// Verify: a failing verified reset is a retryable verification failure; a verify role's
// credentials must log in and are revoked either way; a stale lease is revoked first.
func TestRootVerify(t *testing.T) {
	ctx := context.Background()
	t.Run("reset fails", func(t *testing.T) {
		f, client := newFake(t)
		f.fail["PUT database/reset/pg"] = 500
		var saves []rotators.State
		err := NewRoot(client).Verify(ctx, testReq(rootRef("pg", nil), &saves, nil), &rotators.State{})
		if err == nil || !rotators.IsRetryable(err) || !strings.Contains(err.Error(), "cannot connect to the database with the new root credential") {
			t.Fatalf("verify = %v", err)
		}
	})
	t.Run("reset proves it", func(t *testing.T) {
		_, client := newFake(t)
		var saves []rotators.State
		st := &rotators.State{}
		if err := NewRoot(client).Verify(ctx, testReq(rootRef("pg", nil), &saves, nil), st); err != nil {
			t.Fatal(err)
		}
		if st.After["verified_by"] != "verified_reset" {
			t.Errorf("after = %v", st.After)
		}
	})
	t.Run("stale lease revoked first", func(t *testing.T) {
		f, client := newFake(t)
		var saves []rotators.State
		st := &rotators.State{}
		st.SetNote(noteVerifyLease, "database/creds/check/abc")
		if err := NewRoot(client).Verify(ctx, testReq(rootRef("pg", nil), &saves, nil), st); err != nil {
			t.Fatal(err)
		}
		reqs, _ := f.snapshot()
		if count(reqs, "PUT sys/leases/revoke/database/creds/check/abc") != 1 || st.Note(noteVerifyLease) != "" {
			t.Errorf("requests = %v notes = %v, want the stale lease revoked and forgotten", reqs, st.Data)
		}
	})
}

func TestRetireRootSaysOldLoginUnchecked(t *testing.T) {
	st := &rotators.State{}
	if err := (&RootRotator{}).Retire(context.Background(), rotators.Request{}, st); err != nil {
		t.Fatal(err)
	}
	if st.After["old_login_checked"] != "false" {
		t.Errorf("after = %v", st.After)
	}
}
