package token

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/vaultcall"
	"github.com/rotation-agent/rotation-agent/internal/vaultfake"
	"github.com/rotation-agent/rotation-agent/rotators"
)

const (
	oldToken = "hvs.old-token-canary-5c2a"
	newToken = "hvs.new-token-canary-e81b"
)

func rotateRef() events.CredentialRef {
	return events.CredentialRef{Kind: Kind, Mount: "token", Path: "acc-old", Action: events.ActionRotate,
		Options: map[string]string{OptionRole: "ci", OptionDeliverTo: "secret/apps/ci"}}
}

func TestParse(t *testing.T) {
	revoke := events.CredentialRef{Kind: Kind, Mount: "token", Path: "acc-1"}
	with := func(ref events.CredentialRef, fn func(*events.CredentialRef)) events.CredentialRef {
		opts := map[string]string{}
		for k, v := range ref.Options {
			opts[k] = v
		}
		ref.Options = opts
		fn(&ref)
		return ref
	}
	tests := []struct {
		name       string
		ref        events.CredentialRef
		wantRotate bool
		wantOrphan bool
		wantErr    string
	}{
		{name: "revoke by default", ref: revoke},
		{name: "revoke explicit", ref: with(revoke, func(r *events.CredentialRef) { r.Action = events.ActionRevoke })},
		{name: "orphan_children=false is fine", ref: with(revoke, func(r *events.CredentialRef) { r.Options[OptionOrphanChildren] = "false" })},
		{name: "auth/token mount", ref: with(revoke, func(r *events.CredentialRef) { r.Mount = "auth/token/" })},
		{name: "rotate", ref: rotateRef(), wantRotate: true},
		{name: "orphan_children=true without deliver_to refused", ref: with(revoke, func(r *events.CredentialRef) { r.Options[OptionOrphanChildren] = "true" }), wantErr: "revoke-orphan"},
		{name: "orphan_children=true with deliver_to", ref: with(revoke, func(r *events.CredentialRef) {
			r.Options[OptionOrphanChildren], r.Options[OptionDeliverTo] = "true", "secret/apps/ci"
		}), wantOrphan: true},
		{name: "orphan_children=true with a bad deliver_to", ref: with(revoke, func(r *events.CredentialRef) {
			r.Options[OptionOrphanChildren], r.Options[OptionDeliverTo] = "true", "secret"
		}), wantErr: "<kv-v2 mount>/<path>"},
		{name: "rotate keeping children", ref: with(rotateRef(), func(r *events.CredentialRef) { r.Options[OptionOrphanChildren] = "true" }), wantRotate: true, wantOrphan: true},
		{name: "orphan_children not a bool", ref: with(revoke, func(r *events.CredentialRef) { r.Options[OptionOrphanChildren] = "maybe" }), wantErr: "true or false"},
		{name: "other mount", ref: with(revoke, func(r *events.CredentialRef) { r.Mount = "approle" }), wantErr: `mount must be "token"`},
		{name: "no accessor", ref: with(revoke, func(r *events.CredentialRef) { r.Path = "" }), wantErr: "accessor"},
		{name: "role without action", ref: with(revoke, func(r *events.CredentialRef) { r.Options[OptionRole] = "ci" }), wantErr: "say action rotate"},
		{name: "role with revoke", ref: with(revoke, func(r *events.CredentialRef) { r.Action = events.ActionRevoke; r.Options[OptionRole] = "ci" }), wantErr: "rotate only"},
		{name: "rotate without role", ref: with(rotateRef(), func(r *events.CredentialRef) { delete(r.Options, OptionRole) }), wantErr: "needs option role"},
		{name: "rotate without deliver_to", ref: with(rotateRef(), func(r *events.CredentialRef) { delete(r.Options, OptionDeliverTo) }), wantErr: "deliver_to"},
		{name: "verify action", ref: with(revoke, func(r *events.CredentialRef) { r.Action = events.ActionVerify }), wantErr: "revoke and rotate"},
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
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if c.rotate != tc.wantRotate || c.orphan != tc.wantOrphan {
				t.Errorf("rotate = %v, orphan = %v", c.rotate, c.orphan)
			}
		})
	}
	if _, err := parse(with(revoke, func(r *events.CredentialRef) { r.Options[OptionOrphanChildren] = "1" })); !errors.Is(err, ErrOrphanChildren) {
		t.Errorf("orphan_children=1: %v, want ErrOrphanChildren", err)
	}
}

func request(ref events.CredentialRef, saveErr error) rotators.Request {
	return rotators.Request{
		ChangeID: "CHG9", Credential: ref, Now: time.Now,
		Save: func(context.Context, *rotators.State) error { return saveErr },
	}
}

func agentSelf(f *vaultfake.Routes) {
	f.On("GET auth/token/lookup-self", vaultfake.OK(map[string]any{"accessor": "acc-agent"}))
}

// Vault's answers are classified: a missing accessor is "not found", 5xx retries, 403 does not.
func TestLookupAccessorClassified(t *testing.T) {
	for status, want := range map[int]string{http.StatusBadRequest: "gone", http.StatusServiceUnavailable: "retryable", http.StatusForbidden: "permanent"} {
		f, client := vaultfake.NewRoutes(t, "agent-token")
		f.On("PUT auth/token/lookup-accessor", vaultfake.Fail(status, "nope"))
		info, err := New(client).lookupAccessor(context.Background(), "acc-1")
		got := "gone"
		if err != nil {
			got = map[bool]string{true: "retryable", false: "permanent"}[rotators.IsRetryable(err)]
		} else if info != nil {
			got = "found"
		}
		if got != want {
			t.Errorf("status %d: %s (%v), want %s", status, got, err, want)
		}
	}
}

// Revoke is idempotent: a token already gone is not revoked again, and Verify then succeeds.
func TestRevokeAlreadyGone(t *testing.T) {
	f, client := vaultfake.NewRoutes(t, "agent-token")
	agentSelf(f)
	f.On("PUT auth/token/lookup-accessor", vaultfake.Fail(http.StatusBadRequest, "invalid accessor"))
	r := New(client)
	ref := events.CredentialRef{Kind: Kind, Mount: "token", Path: "acc-1"}
	st := &rotators.State{}
	for _, step := range []func(context.Context, rotators.Request, *rotators.State) error{r.Prepare, r.Apply, r.Verify} {
		if err := step(context.Background(), request(ref, nil), st); err != nil {
			t.Fatal(err)
		}
	}
	if f.Count("PUT auth/token/revoke-accessor") != 0 || st.Before[fpState] != "not found" || st.After[fpState] != "revoked" {
		t.Errorf("revoke calls %d, before %v after %v", f.Count("PUT auth/token/revoke-accessor"), st.Before, st.After)
	}
}

// Verify fails, retryably, while the token is still found after the revoke.
func TestVerifyCatchesSurvivingToken(t *testing.T) {
	f, client := vaultfake.NewRoutes(t, "agent-token")
	f.On("PUT auth/token/lookup-accessor", vaultfake.OK(map[string]any{"accessor": "acc-1"}))
	err := New(client).Verify(context.Background(), request(events.CredentialRef{Kind: Kind, Mount: "token", Path: "acc-1"}, nil), &rotators.State{})
	if err == nil || !rotators.IsRetryable(err) || !errors.Is(err, errVerify) {
		t.Fatalf("verify error = %v", err)
	}
}

// rotateFake serves a role, an old token and deliver_to at version 1.
func rotateFake(t *testing.T) (*vaultfake.Routes, *Rotator, *rotators.State) {
	t.Helper()
	f, client := vaultfake.NewRoutes(t, "agent-token")
	agentSelf(f)
	f.On("PUT auth/token/lookup-accessor", func(_ url.Values, b map[string]any) (int, any) {
		return http.StatusOK, map[string]any{"data": map[string]any{"accessor": b["accessor"], "policies": []string{"default"}, "num_uses": 0}}
	})
	f.On("GET auth/token/roles/ci", vaultfake.OK(map[string]any{"orphan": true, "token_type": "default-service"}))
	f.KVv2("secret", "apps/ci", 1, map[int]map[string]any{1: {FieldToken: oldToken, FieldAccessor: "acc-old"}})
	r := New(client)
	st := &rotators.State{}
	if err := r.Prepare(context.Background(), request(rotateRef(), nil), st); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	return f, r, st
}

// A journal that cannot store the intent stops the apply before any token is created.
func TestApplySavesIntentBeforeCreating(t *testing.T) {
	f, r, st := rotateFake(t)
	err := r.Apply(context.Background(), request(rotateRef(), errors.New("journal down")), st)
	if err == nil || !rotators.IsRetryable(err) {
		t.Fatalf("apply error = %v", err)
	}
	if f.Count("PUT auth/token/create/ci") != 0 {
		t.Error("a token was created though the intent was not saved")
	}
}

// Roles whose tokens would die with the agent's token, or have no accessor, are refused.
func TestCheckRole(t *testing.T) {
	for _, tc := range []struct {
		data map[string]any
		want string
	}{
		{map[string]any{"orphan": false}, "orphan=true"},
		{map[string]any{"orphan": true, "token_type": "batch"}, "no accessor"},
	} {
		f, client := vaultfake.NewRoutes(t, "agent-token")
		f.On("GET auth/token/roles/ci", vaultfake.OK(tc.data))
		err := New(client).checkRole(context.Background(), "ci")
		if err == nil || rotators.IsRetryable(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("role %v: %v, want permanent %q", tc.data, err, tc.want)
		}
	}
	f, client := vaultfake.NewRoutes(t, "agent-token")
	_ = f
	if err := New(client).checkRole(context.Background(), "missing"); err == nil || rotators.IsRetryable(err) {
		t.Errorf("missing role: %v", err)
	}
}

// A replacement that lookup-self refuses fails Verify without its value in the error.
func TestVerifyRefusedReplacement(t *testing.T) {
	f, client := vaultfake.NewRoutes(t, "agent-token")
	f.KVv2("secret", "apps/ci", 2, map[int]map[string]any{2: {FieldToken: newToken, FieldAccessor: "acc-new"}})
	f.On("PUT auth/token/lookup-accessor", vaultfake.OK(map[string]any{"accessor": "acc-new", "num_uses": 0}))
	f.On("GET auth/token/lookup-self", vaultfake.Fail(http.StatusForbidden, "permission denied"))
	st := &rotators.State{Data: map[string]string{noteNewAccessor: "acc-new", noteNewVersion: "2"}}
	err := New(client).Verify(context.Background(), request(rotateRef(), nil), st)
	if err == nil || !rotators.IsRetryable(err) || !errors.Is(err, errVerify) {
		t.Fatalf("verify error = %v", err)
	}
	if strings.Contains(err.Error(), newToken) {
		t.Error("token value in the error")
	}
}

// Retire fails while a request with the old token still succeeds after its revocation.
func TestRetireCatchesOldTokenStillWorking(t *testing.T) {
	f, client := vaultfake.NewRoutes(t, "agent-token")
	f.KVv2("secret", "apps/ci", 2, map[int]map[string]any{1: {FieldToken: oldToken, FieldAccessor: "acc-old"}})
	f.On("PUT auth/token/lookup-accessor", vaultfake.Fail(http.StatusBadRequest, "invalid accessor"))
	f.On("GET auth/token/lookup-self", vaultfake.OK(map[string]any{"accessor": "acc-old"}))
	st := &rotators.State{Before: map[string]string{fpAccessor: "acc-old", fpVersion: "1"}, Data: map[string]string{noteNewAccessor: "acc-new"}}
	err := New(client).Retire(context.Background(), request(rotateRef(), nil), st)
	if err == nil || !rotators.IsRetryable(err) || !strings.Contains(err.Error(), "still succeeds") || strings.Contains(err.Error(), oldToken) {
		t.Fatalf("retire error = %v", err)
	}
}

// A conflict on the delivery revokes the undelivered replacement and is permanent.
func TestDeliveryConflictRevokesUndelivered(t *testing.T) {
	f, r, st := rotateFake(t)
	f.On("PUT auth/token/create/ci", func(url.Values, map[string]any) (int, any) {
		return http.StatusOK, map[string]any{"auth": map[string]any{"client_token": newToken, "accessor": "acc-new"}}
	})
	f.On("PUT secret/data/apps/ci", vaultfake.Fail(http.StatusBadRequest, "check-and-set parameter did not match the current version"))
	f.On("PUT auth/token/revoke-accessor", func(url.Values, map[string]any) (int, any) { return http.StatusNoContent, nil })
	err := r.Apply(context.Background(), request(rotateRef(), nil), st)
	if err == nil || rotators.IsRetryable(err) || strings.Contains(err.Error(), newToken) {
		t.Fatalf("apply error = %v", err)
	}
	if f.Count("PUT auth/token/revoke-accessor") != 1 {
		t.Error("the undelivered replacement was not revoked")
	}
}

// An error of a request that carried a token never repeats the token, and keeps its class: a
// Vault answer keeps its status (a 503 is still Vault unavailable), a transport failure stays
// one. No error anywhere in the scrubbed error's chain holds the token.
func TestScrubHidesTheToken(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		status                 int
		retryable, unavailable bool
	}{
		{"refused", http.StatusBadRequest, false, false},
		{"server error", http.StatusInternalServerError, true, false},
		{"vault unavailable", http.StatusServiceUnavailable, true, true},
		{"rate limited", http.StatusTooManyRequests, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, client := vaultfake.NewRoutes(t, "agent-token")
			f.On("PUT auth/token/revoke-orphan", vaultfake.Fail(tc.status, "cannot revoke "+oldToken))
			_, err := client.Logical().Write("auth/token/revoke-orphan", map[string]any{"token": oldToken})
			got := scrub("revoke", err, oldToken)
			if !strings.Contains(got.Error(), "[token]") || !strings.HasPrefix(got.Error(), "revoke: ") {
				t.Errorf("scrubbed error = %q", got)
			}
			assertNoToken(t, got)
			if rotators.IsRetryable(got) != tc.retryable || rotators.IsUnavailable(got) != tc.unavailable {
				t.Errorf("retryable = %v, unavailable = %v; want %v, %v", rotators.IsRetryable(got), rotators.IsUnavailable(got), tc.retryable, tc.unavailable)
			}
			if s := vaultcall.Status(got); s != tc.status {
				t.Errorf("status = %d, want %d", s, tc.status)
			}
		})
	}
	t.Run("transport failure", func(t *testing.T) {
		err := &url.Error{Op: "Put", URL: "https://vault/v1/auth/token/revoke-orphan", Err: errors.New("connection reset after sending " + oldToken)}
		got := scrub("revoke", err, oldToken)
		assertNoToken(t, got)
		if !rotators.IsRetryable(got) || !rotators.IsUnavailable(got) {
			t.Errorf("retryable = %v, unavailable = %v; want both", rotators.IsRetryable(got), rotators.IsUnavailable(got))
		}
	})
	t.Run("cancelled request", func(t *testing.T) {
		err := &url.Error{Op: "Put", URL: "https://vault/v1/x", Err: fmt.Errorf("%w while sending %s", context.Canceled, oldToken)}
		got := scrub("revoke", err, oldToken)
		assertNoToken(t, got)
		if !errors.Is(got, context.Canceled) || rotators.IsUnavailable(got) {
			t.Errorf("cancelled: Is(Canceled) = %v, unavailable = %v", errors.Is(got, context.Canceled), rotators.IsUnavailable(got))
		}
	})
}

// assertNoToken fails when err or any error it wraps repeats oldToken.
func assertNoToken(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if strings.Contains(err.Error(), oldToken) {
		t.Errorf("%T repeats the token: %q", err, err)
		return
	}
	// The chain is walked one level at a time on purpose: errors.As would look through it.
	if u, ok := err.(interface{ Unwrap() error }); ok { //nolint:errorlint // each level is checked
		assertNoToken(t, u.Unwrap())
	}
	if u, ok := err.(interface{ Unwrap() []error }); ok { //nolint:errorlint // each level is checked
		for _, e := range u.Unwrap() {
			assertNoToken(t, e)
		}
	}
}

// A revoke with orphan_children=true reads the token from the deliver_to version Prepare
// recorded, even once deliver_to moved on; a journal entry of an earlier release (which also
// kept the version as note held_in_version) resumes the same way.
func TestOrphanRevokeReadsTheRecordedVersion(t *testing.T) {
	ref := events.CredentialRef{Kind: Kind, Mount: "token", Path: "acc-old", Action: events.ActionRevoke,
		Options: map[string]string{OptionOrphanChildren: "true", OptionDeliverTo: "secret/apps/ci"}}
	held := map[int]map[string]any{1: {FieldToken: oldToken, FieldAccessor: "acc-old"}, 2: {FieldToken: newToken, FieldAccessor: "acc-new"}}
	for _, tc := range []struct {
		name  string
		state func(t *testing.T, r *Rotator) *rotators.State
	}{
		{"state written by prepare", func(t *testing.T, r *Rotator) *rotators.State {
			st := &rotators.State{}
			if err := r.Prepare(context.Background(), request(ref, nil), st); err != nil {
				t.Fatalf("prepare: %v", err)
			}
			if st.Before[fpVersion] != "1" || len(st.Data) != 0 {
				t.Errorf("prepare recorded before %v, notes %v; want version 1 and no note", st.Before, st.Data)
			}
			return st
		}},
		{"journal entry of an earlier release", func(*testing.T, *Rotator) *rotators.State {
			return &rotators.State{
				Before: map[string]string{fpAccessor: "acc-old", fpState: "valid", fpVersion: "1"},
				Data:   map[string]string{"held_in_version": "1"},
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, client := vaultfake.NewRoutes(t, "agent-token")
			agentSelf(f)
			f.On("PUT auth/token/lookup-accessor", vaultfake.OK(map[string]any{"accessor": "acc-old"}))
			f.On("PUT auth/token/lookup", func(_ url.Values, b map[string]any) (int, any) {
				return http.StatusOK, map[string]any{"data": map[string]any{"accessor": map[any]string{oldToken: "acc-old", newToken: "acc-new"}[b["token"]]}}
			})
			var revoked []any
			f.On("PUT auth/token/revoke-orphan", func(_ url.Values, b map[string]any) (int, any) {
				revoked = append(revoked, b["token"])
				return http.StatusNoContent, nil
			})
			f.KVv2("secret", "apps/ci", 1, held)
			r := New(client)
			st := tc.state(t, r)
			f.KVv2("secret", "apps/ci", 2, held) // someone wrote deliver_to since
			if err := r.Apply(context.Background(), request(ref, nil), st); err != nil {
				t.Fatalf("apply: %v", err)
			}
			if len(revoked) != 1 || revoked[0] != oldToken {
				t.Errorf("revoke-orphan got %d requests (the old token: %v)", len(revoked), len(revoked) == 1 && revoked[0] == oldToken)
			}
		})
	}
}
