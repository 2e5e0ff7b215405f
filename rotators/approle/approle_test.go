package approle

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

const (
	oldSecret = "old-secret-id-canary-7d1e"
	newSecret = "new-secret-id-canary-93fa"
)

func ref(options map[string]string) events.CredentialRef {
	o := map[string]string{OptionDeliverTo: "secret/apps/payments"}
	for k, v := range options {
		o[k] = v
	}
	return events.CredentialRef{Kind: Kind, Mount: "approle", Path: "payments", Options: o}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		ref     events.CredentialRef
		wantErr string
		check   func(t *testing.T, c config)
	}{
		{name: "plain", ref: ref(nil), check: func(t *testing.T, c config) {
			if c.mount != "approle" || c.role != "payments" || c.kvMount != "secret" || c.kvPath != "apps/payments" || c.wrapTTL != "" {
				t.Errorf("config = %+v", c)
			}
		}},
		{name: "auth/ prefix tolerated", ref: events.CredentialRef{Kind: Kind, Mount: "auth/approle/", Path: "payments", Options: ref(nil).Options}, check: func(t *testing.T, c config) {
			if c.rolePath("secret-id") != "auth/approle/role/payments/secret-id" {
				t.Errorf("role path %q", c.rolePath("secret-id"))
			}
		}},
		{name: "wrap ttl duration", ref: ref(map[string]string{OptionWrapTTL: "10m"}), check: func(t *testing.T, c config) {
			if c.wrapTTL != "600s" {
				t.Errorf("wrap ttl %q", c.wrapTTL)
			}
		}},
		{name: "wrap ttl seconds", ref: ref(map[string]string{OptionWrapTTL: "90"}), check: func(t *testing.T, c config) {
			if c.wrapTTL != "90s" {
				t.Errorf("wrap ttl %q", c.wrapTTL)
			}
		}},
		{name: "metadata", ref: ref(map[string]string{OptionMetadata: `{"team":"payments"}`}), check: func(t *testing.T, c config) {
			if c.metadata["team"] != "payments" {
				t.Errorf("metadata %v", c.metadata)
			}
		}},
		{name: "revoke refused", ref: events.CredentialRef{Kind: Kind, Mount: "approle", Path: "payments", Action: events.ActionRevoke, Options: ref(nil).Options}, wantErr: "rotate action only"},
		{name: "no deliver_to", ref: events.CredentialRef{Kind: Kind, Mount: "approle", Path: "payments"}, wantErr: "deliver_to"},
		{name: "deliver_to without path", ref: ref(map[string]string{OptionDeliverTo: "secret"}), wantErr: "<kv-v2 mount>/<path>"},
		{name: "deliver_to relative", ref: ref(map[string]string{OptionDeliverTo: "secret/a/../b"}), wantErr: "relative"},
		{name: "no role", ref: events.CredentialRef{Kind: Kind, Mount: "approle", Options: ref(nil).Options}, wantErr: "role name as path"},
		{name: "nested role", ref: events.CredentialRef{Kind: Kind, Mount: "approle", Path: "a/b", Options: ref(nil).Options}, wantErr: "role name as path"},
		{name: "bad wrap ttl", ref: ref(map[string]string{OptionWrapTTL: "soon"}), wantErr: "duration"},
		{name: "zero wrap ttl", ref: ref(map[string]string{OptionWrapTTL: "0"}), wantErr: "at least one second"},
		{name: "metadata not an object", ref: ref(map[string]string{OptionMetadata: `["x"]`}), wantErr: "JSON object"},
		{name: "metadata reserved key", ref: ref(map[string]string{OptionMetadata: `{"change_id":"x"}`}), wantErr: "set by the agent"},
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
			tc.check(t, c)
		})
	}
}

// request returns a request whose Save fails when saveErr is set, recording saved states.
func request(saveErr error, saved *[]rotators.State) rotators.Request {
	return rotators.Request{
		ChangeID:   "CHG9",
		Credential: ref(nil),
		Now:        func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) },
		Save: func(_ context.Context, st *rotators.State) error {
			if saveErr != nil {
				return saveErr
			}
			if saved != nil {
				*saved = append(*saved, *st)
			}
			return nil
		},
	}
}

// preparedFake serves a role and a deliver_to secret at version 1 holding the old secret id.
func preparedFake(t *testing.T) (*vaultfake.Routes, *Rotator, *rotators.State) {
	t.Helper()
	f, client := vaultfake.NewRoutes(t, "agent-token")
	f.On("GET auth/approle/role/payments/role-id", vaultfake.OK(map[string]any{"role_id": "role-id-1"}))
	f.KVv2("secret", "apps/payments", 1, map[int]map[string]any{1: {FieldSecretID: oldSecret, FieldAccessor: "acc-old"}})
	f.On("PUT auth/approle/role/payments/secret-id-accessor/lookup", func(_ url.Values, body map[string]any) (int, any) {
		return http.StatusOK, map[string]any{"data": map[string]any{"secret_id_accessor": body["secret_id_accessor"], "secret_id_num_uses": 0, "metadata": map[string]any{}}}
	})
	r := New(client)
	st := &rotators.State{}
	if err := r.Prepare(context.Background(), request(nil, nil), st); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	if st.Before[fpAccessor] != "acc-old" || st.Note(noteBase) != "1" {
		t.Fatalf("prepare recorded %v %v", st.Before, st.Data)
	}
	return f, r, st
}

// A journal that cannot store the intent stops the apply before Vault generates anything.
func TestApplySavesIntentBeforeGenerating(t *testing.T) {
	f, r, st := preparedFake(t)
	err := r.Apply(context.Background(), request(errors.New("journal down"), nil), st)
	if err == nil || !rotators.IsRetryable(err) {
		t.Fatalf("apply error = %v, want retryable", err)
	}
	if n := f.Count("PUT auth/approle/role/payments/secret-id"); n != 0 {
		t.Errorf("a secret id was generated %d times though the intent was not saved", n)
	}
}

// Vault's answer to the generation is classified: 5xx retries, 4xx does not.
func TestGenerateErrorsClassified(t *testing.T) {
	for status, retry := range map[int]bool{http.StatusServiceUnavailable: true, http.StatusInternalServerError: true, http.StatusBadRequest: false, http.StatusForbidden: false, http.StatusTooManyRequests: true} {
		f, r, st := preparedFake(t)
		f.On("PUT auth/approle/role/payments/secret-id", vaultfake.Fail(status, "nope"))
		err := r.Apply(context.Background(), request(nil, nil), st)
		if err == nil || rotators.IsRetryable(err) != retry {
			t.Errorf("status %d: error %v, want retryable=%v", status, err, retry)
		}
	}
}

// A check-and-set conflict on the delivery is permanent, and the undelivered secret id is
// destroyed: no consumer has it, so it must not stay valid.
func TestDeliveryConflictDestroysUndelivered(t *testing.T) {
	f, r, st := preparedFake(t)
	f.On("PUT auth/approle/role/payments/secret-id", vaultfake.OK(map[string]any{"secret_id": newSecret, "secret_id_accessor": "acc-new"}))
	f.On("PUT secret/data/apps/payments", vaultfake.Fail(http.StatusBadRequest, "check-and-set parameter did not match the current version"))
	f.On("PUT auth/approle/role/payments/secret-id-accessor/destroy", func(url.Values, map[string]any) (int, any) { return http.StatusNoContent, nil })
	var saved []rotators.State
	err := r.Apply(context.Background(), request(nil, &saved), st)
	if err == nil || rotators.IsRetryable(err) || !strings.Contains(err.Error(), "changed outside the agent") {
		t.Fatalf("apply error = %v, want a permanent conflict", err)
	}
	if n := f.Count("PUT auth/approle/role/payments/secret-id-accessor/destroy"); n != 1 {
		t.Errorf("undelivered secret id destroyed %d times, want 1", n)
	}
	if len(saved) != 2 || saved[0].Note(noteIntent) == "" || saved[1].Note(noteNewAccessor) != "acc-new" {
		t.Errorf("saved states %+v: want the intent, then the accessor", saved)
	}
	assertNoSecret(t, err.Error(), saved)
}

// A lost delivery response (503) is retryable and keeps the value in memory; the retry finds
// nothing delivered and delivers the same secret id without generating another.
func TestLostDeliveryRetriesSameSecretID(t *testing.T) {
	f, r, st := preparedFake(t)
	f.On("PUT auth/approle/role/payments/secret-id", vaultfake.OK(map[string]any{"secret_id": newSecret, "secret_id_accessor": "acc-new"}))
	f.On("PUT secret/data/apps/payments", vaultfake.Fail(http.StatusServiceUnavailable, "unavailable"))
	err := r.Apply(context.Background(), request(nil, nil), st)
	if err == nil || !rotators.IsRetryable(err) {
		t.Fatalf("apply error = %v, want retryable", err)
	}
	var body map[string]any
	f.On("PUT secret/data/apps/payments", func(_ url.Values, b map[string]any) (int, any) {
		body = b
		return http.StatusOK, map[string]any{"data": map[string]any{"version": 2}}
	})
	if err := r.Apply(context.Background(), request(nil, nil), st); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if n := f.Count("PUT auth/approle/role/payments/secret-id"); n != 1 {
		t.Errorf("generated %d secret ids, want 1", n)
	}
	data, _ := body["data"].(map[string]any)
	if data[FieldSecretID] != newSecret || data[FieldAccessor] != "acc-new" {
		t.Errorf("delivered %v", keysOf(data))
	}
	if opts, _ := body["options"].(map[string]any); opts["cas"] != float64(1) {
		t.Errorf("delivery options %v, want cas 1", opts)
	}
	if st.Note(noteNewVersion) != "2" || st.After[fpAccessor] != "acc-new" {
		t.Errorf("state %v after %v", st.Data, st.After)
	}
}

// A refused login fails Verify with a retryable error that names the accessor, never the value.
func TestVerifyRefusedLogin(t *testing.T) {
	f, client := vaultfake.NewRoutes(t, "agent-token")
	f.On("GET auth/approle/role/payments/role-id", vaultfake.OK(map[string]any{"role_id": "role-id-1"}))
	f.KVv2("secret", "apps/payments", 2, map[int]map[string]any{2: {FieldSecretID: newSecret, FieldAccessor: "acc-new"}})
	f.On("PUT auth/approle/role/payments/secret-id-accessor/lookup", vaultfake.OK(map[string]any{"secret_id_num_uses": 0}))
	f.On("PUT auth/approle/login", vaultfake.Fail(http.StatusBadRequest, "invalid role or secret ID"))
	st := &rotators.State{Data: map[string]string{noteNewAccessor: "acc-new", noteNewVersion: "2"}}
	err := New(client).Verify(context.Background(), request(nil, nil), st)
	if err == nil || !rotators.IsRetryable(err) || !errors.Is(err, errVerify) || !strings.Contains(err.Error(), "acc-new") {
		t.Fatalf("verify error = %v, want a retryable verification failure naming the accessor", err)
	}
	assertNoSecret(t, err.Error(), []rotators.State{*st})
}

// A secret id with limited uses is not spent on a verification login.
func TestVerifyLimitedUsesSkipsLogin(t *testing.T) {
	f, client := vaultfake.NewRoutes(t, "agent-token")
	f.KVv2("secret", "apps/payments", 2, map[int]map[string]any{2: {FieldSecretID: newSecret, FieldAccessor: "acc-new"}})
	f.On("PUT auth/approle/role/payments/secret-id-accessor/lookup", vaultfake.OK(map[string]any{"secret_id_num_uses": 1}))
	st := &rotators.State{Data: map[string]string{noteNewAccessor: "acc-new", noteNewVersion: "2"}}
	if err := New(client).Verify(context.Background(), request(nil, nil), st); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if f.Count("PUT auth/approle/login") != 0 || !strings.HasPrefix(st.After["verified_by"], "accessor-lookup") {
		t.Errorf("login made or proof not recorded: %v", st.After)
	}
}

// Retire fails when the old secret id still logs in after its destroy, and revokes the token
// that login produced.
func TestRetireCatchesOldSecretIDStillWorking(t *testing.T) {
	f, client := vaultfake.NewRoutes(t, "agent-token")
	f.On("GET auth/approle/role/payments/role-id", vaultfake.OK(map[string]any{"role_id": "role-id-1"}))
	f.KVv2("secret", "apps/payments", 2, map[int]map[string]any{1: {FieldSecretID: oldSecret, FieldAccessor: "acc-old"}})
	f.On("PUT auth/approle/role/payments/secret-id-accessor/lookup", vaultfake.Fail(http.StatusNotFound, "failed to find accessor entry"))
	f.On("PUT auth/approle/login", func(url.Values, map[string]any) (int, any) {
		return http.StatusOK, map[string]any{"auth": map[string]any{"client_token": "hvs.leaked-if-printed", "accessor": "tok-acc"}}
	})
	f.On("PUT auth/token/revoke-self", func(url.Values, map[string]any) (int, any) { return http.StatusNoContent, nil })
	st := &rotators.State{Before: map[string]string{fpAccessor: "acc-old", fpVersion: "1"}, Data: map[string]string{noteNewAccessor: "acc-new"}}
	err := New(client).Retire(context.Background(), request(nil, nil), st)
	if err == nil || !rotators.IsRetryable(err) || !strings.Contains(err.Error(), "still succeeds") {
		t.Fatalf("retire error = %v", err)
	}
	if f.Count("PUT auth/token/revoke-self") != 1 {
		t.Error("the token of the unexpected login was not revoked")
	}
	if strings.Contains(err.Error(), "hvs.leaked-if-printed") {
		t.Error("the token leaked into the error")
	}
	assertNoSecret(t, err.Error(), []rotators.State{*st})
}

func assertNoSecret(t *testing.T, errText string, states []rotators.State) {
	t.Helper()
	for _, s := range []string{oldSecret, newSecret} {
		if strings.Contains(errText, s) {
			t.Errorf("secret %q in error %q", s, errText)
		}
		for _, st := range states {
			for k, v := range st.Data {
				if strings.Contains(v, s) {
					t.Errorf("secret in note %s", k)
				}
			}
			for _, fp := range []events.Fingerprint{st.Before, st.After} {
				for k, v := range fp {
					if strings.Contains(v, s) {
						t.Errorf("secret in fingerprint %s", k)
					}
				}
			}
		}
	}
}

func keysOf(m map[string]any) []string {
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	return out
}
