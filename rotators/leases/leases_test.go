package leases

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/vaultfake"
	"github.com/rotation-agent/rotation-agent/rotators"
)

func ref(options map[string]string) events.CredentialRef {
	return events.CredentialRef{Kind: Kind, Mount: "auth", Path: "approle/login", Options: options}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name      string
		ref       events.CredentialRef
		want      string
		wantForce bool
		wantErr   string
	}{
		{name: "auth logins", ref: ref(nil), want: "auth/approle/login"},
		{name: "database creds", ref: events.CredentialRef{Kind: Kind, Mount: "database", Path: "creds/readonly/"}, want: "database/creds/readonly"},
		{name: "explicit revoke", ref: events.CredentialRef{Kind: Kind, Mount: "auth", Path: "approle/login", Action: events.ActionRevoke}, want: "auth/approle/login"},
		{name: "force", ref: ref(map[string]string{OptionForce: "true"}), want: "auth/approle/login", wantForce: true},
		{name: "rotate refused", ref: events.CredentialRef{Kind: Kind, Mount: "auth", Path: "approle/login", Action: events.ActionRotate}, wantErr: "revoke action only"},
		{name: "no path", ref: events.CredentialRef{Kind: Kind, Mount: "auth"}, wantErr: "first segment"},
		{name: "mount with slash", ref: events.CredentialRef{Kind: Kind, Mount: "auth/approle", Path: "login"}, wantErr: "first segment"},
		{name: "relative", ref: events.CredentialRef{Kind: Kind, Mount: "auth", Path: "approle/../token"}, wantErr: "relative"},
		{name: "force not a bool", ref: ref(map[string]string{OptionForce: "yes please"}), wantErr: "true or false"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parse(tc.ref)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || rotators.IsRetryable(err) {
					t.Fatalf("parse error = %v, want a permanent one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || c.prefix != tc.want || c.force != tc.wantForce {
				t.Fatalf("parse = %+v, %v", c, err)
			}
		})
	}
}

func request(r events.CredentialRef, now time.Time) rotators.Request {
	return rotators.Request{ChangeID: "CHG9", Credential: r, Now: func() time.Time { return now },
		Save: func(context.Context, *rotators.State) error { return nil }}
}

// leaseFake serves an agent logged in elsewhere and leases h1 (issued at issued) and sub/h2.
func leaseFake(t *testing.T, issued time.Time) (*vaultfake.Routes, *Rotator) {
	t.Helper()
	f, client := vaultfake.NewRoutes(t, "agent-token")
	f.On("GET auth/token/lookup-self", vaultfake.OK(map[string]any{"path": "auth/kubernetes/login"}))
	f.On("LIST sys/leases/lookup/auth/approle/login", vaultfake.OK(map[string]any{"keys": []string{"h1", "sub/"}}))
	f.On("LIST sys/leases/lookup/auth/approle/login/sub", vaultfake.OK(map[string]any{"keys": []string{"h2"}}))
	f.On("PUT sys/leases/lookup", func(_ url.Values, b map[string]any) (int, any) {
		return http.StatusOK, map[string]any{"data": map[string]any{"id": b["lease_id"], "issue_time": issued.Format(time.RFC3339Nano)}}
	})
	return f, New(client)
}

// Plan walks sub-folders and writes nothing.
func TestPlanCountsLeasesInSubFolders(t *testing.T) {
	f, r := leaseFake(t, time.Now())
	plan, err := r.Plan(context.Background(), request(ref(nil), time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if plan.Current["leases"] != "2" || plan.Action != events.ActionRevoke || !strings.Contains(plan.Changes[0], "revoke-prefix") {
		t.Errorf("plan = %+v", plan)
	}
	for _, c := range f.Calls() {
		if strings.HasPrefix(c, "PUT sys/leases/revoke") {
			t.Errorf("plan wrote: %s", c)
		}
	}
}

// Apply uses revoke-prefix, or revoke-force when asked; Vault's errors are classified.
func TestApplyEndpointsAndErrors(t *testing.T) {
	for _, tc := range []struct {
		force  bool
		status int
		route  string
		retry  bool
	}{
		{false, http.StatusNoContent, "PUT sys/leases/revoke-prefix/auth/approle/login", false},
		{true, http.StatusNoContent, "PUT sys/leases/revoke-force/auth/approle/login", false},
		{false, http.StatusInternalServerError, "PUT sys/leases/revoke-prefix/auth/approle/login", true},
		{false, http.StatusForbidden, "PUT sys/leases/revoke-prefix/auth/approle/login", false},
	} {
		f, r := leaseFake(t, time.Now())
		f.On(tc.route, func(url.Values, map[string]any) (int, any) {
			if tc.status >= 400 {
				return tc.status, map[string]any{"errors": []string{"nope"}}
			}
			return tc.status, nil
		})
		opts := map[string]string{}
		if tc.force {
			opts[OptionForce] = "true"
		}
		st := &rotators.State{}
		err := r.Apply(context.Background(), request(ref(opts), time.Now()), st)
		if f.Count(tc.route) != 1 {
			t.Errorf("%s not called", tc.route)
		}
		if tc.status < 400 && err != nil {
			t.Errorf("%s: %v", tc.route, err)
		}
		if tc.status >= 400 && (err == nil || rotators.IsRetryable(err) != tc.retry) {
			t.Errorf("status %d: %v, want retryable=%v", tc.status, err, tc.retry)
		}
	}
}

// Verify fails on leases issued before the revocation and passes on newer ones.
func TestVerifySurvivorsAndNewLeases(t *testing.T) {
	revokedAt := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	st := &rotators.State{Data: map[string]string{noteRevokingAt: revokedAt.Format(time.RFC3339Nano)}}

	_, r := leaseFake(t, revokedAt.Add(-time.Minute))
	err := r.Verify(context.Background(), request(ref(nil), revokedAt), st)
	if err == nil || !rotators.IsRetryable(err) || !errors.Is(err, errVerify) || !strings.Contains(err.Error(), "2 of the leases") {
		t.Fatalf("verify error = %v, want 2 survivors", err)
	}

	_, r = leaseFake(t, revokedAt.Add(time.Second))
	if err := r.Verify(context.Background(), request(ref(nil), revokedAt), st); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if st.After["leases"] != "2" || st.After["leases_issued_since_revoke"] != "2" {
		t.Errorf("after %v", st.After)
	}

	// Leases revoked between the listing and their lookup are gone, not survivors.
	f, r := leaseFake(t, revokedAt.Add(-time.Minute))
	f.On("PUT sys/leases/lookup", vaultfake.Fail(http.StatusBadRequest, "invalid lease"))
	if err := r.Verify(context.Background(), request(ref(nil), revokedAt), st); err != nil {
		t.Fatalf("verify: %v", err)
	}
}

// A prefix covering the agent's own login is refused before anything is revoked.
func TestRefusesAgentOwnLogin(t *testing.T) {
	f, client := vaultfake.NewRoutes(t, "agent-token")
	f.On("GET auth/token/lookup-self", vaultfake.OK(map[string]any{"path": "auth/approle/login"}))
	r := New(client)
	for _, prefix := range []events.CredentialRef{ref(nil), {Kind: Kind, Mount: "auth", Path: "approle"}} {
		err := r.Prepare(context.Background(), request(prefix, time.Now()), &rotators.State{})
		if err == nil || rotators.IsRetryable(err) || !strings.Contains(err.Error(), "agent's own login") {
			t.Errorf("%s: %v", prefix.ID(), err)
		}
	}
	// A sibling prefix that merely starts with the same letters is not the agent's login.
	other := events.CredentialRef{Kind: Kind, Mount: "auth", Path: "approle2/login"}
	if err := r.Prepare(context.Background(), request(other, time.Now()), &rotators.State{}); err != nil {
		t.Errorf("%s: %v", other.ID(), err)
	}
}
