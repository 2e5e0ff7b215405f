package entitlements

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/vaultfake"
)

const (
	probeSecretID = "probe-secret-id-canary-0001"
	probeToken    = "hvs.probe-token-canary-0001"
	declaredPath  = "secret/data/payments/*"
)

// sink records what the checker hands to the redactor.
type sink struct {
	mu      sync.Mutex
	added   []string
	forgot  []string
	current map[string]bool
}

func (s *sink) Add(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil {
		s.current = map[string]bool{}
	}
	s.added = append(s.added, v)
	s.current[v] = true
}

func (s *sink) Forget(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forgot = append(s.forgot, v)
	delete(s.current, v)
}

func authReply(token, accessor string) vaultfake.Handler {
	return func(url.Values, map[string]any) (int, any) {
		return http.StatusOK, map[string]any{"auth": map[string]any{"client_token": token, "accessor": accessor}}
	}
}

func noContent(url.Values, map[string]any) (int, any) { return http.StatusNoContent, nil }

// probeChecker is a checker with probes on, and an AppRole role payments whose policies match
// the approval, that hands out a probe secret id and logs in.
func probeChecker(t *testing.T) (*vaultfake.Routes, *Checker, *sink) {
	f, c := checker(t, false)
	s := &sink{}
	c.Probe, c.Secrets = true, s
	f.On("GET auth/approle/role/payments/policies", vaultfake.OK(map[string]any{"token_policies": []string{"payments"}}))
	f.On("GET auth/approle/role/payments/role-id", vaultfake.OK(map[string]any{"role_id": "role-id-1"}))
	f.On("PUT auth/approle/role/payments/secret-id", func(_ url.Values, body map[string]any) (int, any) {
		if body["num_uses"] != float64(1) || body["ttl"] != probeTTL {
			t.Errorf("probe secret id requested with %v, want single use and ttl %s", body, probeTTL)
		}
		return http.StatusOK, map[string]any{"data": map[string]any{"secret_id": probeSecretID, "secret_id_accessor": "sid-acc-1"}}
	})
	f.On("PUT auth/approle/login", authReply(probeToken, "tok-acc-1"))
	f.On("PUT auth/token/revoke-self", noContent)
	f.On("PUT auth/approle/role/payments/secret-id-accessor/destroy", noContent)
	return f, c, s
}

func probeApproval(identity string, caps ...string) Approval {
	a := approval(identity, "payments")
	a.Capabilities = map[string][]string{declaredPath: caps}
	return a
}

// assertNoProbeSecrets fails when the result carries the probe's secret id or token, or when
// the redactor was not told both and then told to forget them.
func assertNoProbeSecrets(t *testing.T, got events.EntitlementEvidence, s *sink, handed ...string) {
	t.Helper()
	raw, _ := json.Marshal(got)
	for _, secret := range []string{probeSecretID, probeToken} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("result carries a probe secret: %s", raw)
		}
	}
	for _, h := range handed {
		if !slices.Contains(s.added, h) || !slices.Contains(s.forgot, h) {
			t.Errorf("the redactor was not told %q and then told to forget it: added %v, forgot %v", h, s.added, s.forgot)
		}
	}
	if len(s.current) != 0 {
		t.Errorf("the redactor still holds probe values: %v", s.current)
	}
}

func TestProbeMeasuresAppRoleCapabilities(t *testing.T) {
	f, c, s := probeChecker(t)
	f.On("PUT sys/capabilities-self", func(_ url.Values, body map[string]any) (int, any) {
		return http.StatusOK, map[string]any{"data": map[string]any{declaredPath: []string{"update", "read"}}}
	})
	got, err := c.Check(context.Background(), probeApproval("approle:payments", "read"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != events.EntitlementDrift || len(got.Capabilities) != 1 {
		t.Fatalf("got %+v, want capability drift", got)
	}
	ce := got.Capabilities[0]
	if ce.Status != events.CapabilityDrift || ce.MeasuredBy != events.MeasuredByProbeLogin || !slices.Equal(ce.Extra, []string{"update"}) || ce.Note != "" {
		t.Errorf("capability = %+v, want drift with extra [update] measured by probe-login", ce)
	}
	for _, route := range []string{"PUT auth/token/revoke-self", "PUT auth/approle/role/payments/secret-id-accessor/destroy"} {
		if f.Count(route) != 1 {
			t.Errorf("%s called %d times, want once", route, f.Count(route))
		}
	}
	assertNoProbeSecrets(t, got, s, probeSecretID, probeToken)
}

func TestProbeFailuresLeaveCapabilitiesNotComputedAndCleanUp(t *testing.T) {
	tests := []struct {
		name     string
		identity string
		set      func(f *vaultfake.Routes)
		note     string
		cleanup  []string
		handed   []string
	}{
		{
			name:     "login refused",
			identity: "approle:payments",
			set: func(f *vaultfake.Routes) {
				f.On("PUT auth/approle/login", vaultfake.Fail(http.StatusBadRequest, "invalid role or secret ID"))
			},
			note:    "not measured: probe login at auth/approle/login refused",
			cleanup: []string{"PUT auth/approle/role/payments/secret-id-accessor/destroy"},
			handed:  []string{probeSecretID},
		},
		{
			name:     "capabilities refused, token revoked by accessor",
			identity: "approle:payments",
			set: func(f *vaultfake.Routes) {
				f.On("PUT sys/capabilities-self", vaultfake.Fail(http.StatusInternalServerError, "internal error"))
				f.On("PUT auth/token/revoke-self", vaultfake.Fail(http.StatusForbidden, "permission denied"))
				f.On("PUT auth/token/revoke-accessor", noContent)
			},
			note:    "not measured: capabilities of the probe token",
			cleanup: []string{"PUT auth/token/revoke-self", "PUT auth/token/revoke-accessor", "PUT auth/approle/role/payments/secret-id-accessor/destroy"},
			handed:  []string{probeSecretID, probeToken},
		},
		{
			name:     "token role token not created",
			identity: "token-role:ci",
			set: func(f *vaultfake.Routes) {
				f.On("GET auth/token/roles/ci", vaultfake.OK(map[string]any{"allowed_policies": []string{"payments"}}))
				f.On("PUT auth/token/create/ci", vaultfake.Fail(http.StatusBadRequest, "token policies must be a subset"))
			},
			note: "not measured: create a probe token with token role ci",
		},
		{
			name:     "token left behind is named",
			identity: "token-role:ci",
			set: func(f *vaultfake.Routes) {
				f.On("GET auth/token/roles/ci", vaultfake.OK(map[string]any{"allowed_policies": []string{"payments"}}))
				f.On("PUT auth/token/create/ci", authReply(probeToken, "tok-acc-2"))
				f.On("PUT sys/capabilities-self", vaultfake.Fail(http.StatusInternalServerError, "internal error"))
				f.On("PUT auth/token/revoke-self", vaultfake.Fail(http.StatusInternalServerError, "internal error"))
				f.On("PUT auth/token/revoke-accessor", vaultfake.Fail(http.StatusInternalServerError, "internal error"))
				f.On("PUT auth/token/lookup-accessor", vaultfake.OK(map[string]any{"accessor": "tok-acc-2"}))
			},
			note:    "the probe token (accessor tok-acc-2) could not be revoked and expires with its TTL",
			cleanup: []string{"PUT auth/token/revoke-self", "PUT auth/token/revoke-accessor"},
			handed:  []string{probeToken},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, c, s := probeChecker(t)
			tc.set(f)
			got, err := c.Check(context.Background(), probeApproval(tc.identity, "read"))
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != events.EntitlementMatch || len(got.Capabilities) != 1 {
				t.Fatalf("got %+v, want a policy match with one capability result", got)
			}
			ce := got.Capabilities[0]
			if ce.Status != events.CapabilityNotComputed || ce.MeasuredBy != "" || !strings.Contains(ce.Note, tc.note) {
				t.Errorf("capability = %+v, want not_computed with a note containing %q", ce, tc.note)
			}
			for _, route := range tc.cleanup {
				if f.Count(route) != 1 {
					t.Errorf("clean-up %s called %d times, want once; calls %v", route, f.Count(route), f.Calls())
				}
			}
			assertNoProbeSecrets(t, got, s, tc.handed...)
		})
	}
}

func TestCapabilitiesNotComputedWithoutAProbe(t *testing.T) {
	tests := []struct {
		name, identity, route, key, note string
		probe                            bool
	}{
		{"probe off", "approle:payments", "GET auth/approle/role/payments/policies", "token_policies", "capability probes are off", false},
		{"entity", "entity:svc", "GET identity/entity/name/svc", "policies", "cannot obtain without the entity's own credentials", true},
		{"group", "group:ops", "GET identity/group/name/ops", "policies", "cannot obtain without the group's own credentials", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, c := checker(t, false)
			c.Probe = tc.probe
			f.On(tc.route, vaultfake.OK(map[string]any{tc.key: []string{"payments"}}))
			got, err := c.Check(context.Background(), probeApproval(tc.identity, "read"))
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Capabilities) != 1 || got.Capabilities[0].Status != events.CapabilityNotComputed || !strings.Contains(got.Capabilities[0].Note, tc.note) {
				t.Errorf("capabilities = %+v, want not_computed with a note containing %q", got.Capabilities, tc.note)
			}
			if calls := f.Calls(); len(calls) != 1 {
				t.Errorf("calls %v, want only the policy read", calls)
			}
		})
	}
}

func TestRemeasuredNotesWhatRemediationLeft(t *testing.T) {
	drift := events.CapabilityEvidence{Path: "p", Status: events.CapabilityDrift, Extra: []string{"update"}}
	tests := []struct {
		name      string
		after     events.CapabilityEvidence
		wantDrift bool
		wantNote  string
	}{
		{"match", events.CapabilityEvidence{Path: "p", Status: events.CapabilityMatch}, false, "after remediation: match"},
		{"still drift", events.CapabilityEvidence{Path: "p", Status: events.CapabilityDrift, Extra: []string{"update"}}, true, "after remediation: still drift (extra [update], missing [])"},
		{"not measured", events.CapabilityEvidence{Path: "p", Status: events.CapabilityNotComputed}, true, "after remediation: not measured"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := []events.CapabilityEvidence{drift}
			if got := remeasured(before, []events.CapabilityEvidence{tc.after}); got != tc.wantDrift || before[0].Note != tc.wantNote || before[0].Status != events.CapabilityDrift {
				t.Errorf("remeasured = %v, %+v; want drift %v and note %q, the drift found kept", got, before[0], tc.wantDrift, tc.wantNote)
			}
		})
	}
}

// The probe's own clients (the login, the probe token's requests) stay in the agent's Vault
// namespace.
func TestProbeKeepsTheVaultNamespace(t *testing.T) {
	f, c, _ := probeChecker(t)
	f.On("PUT sys/capabilities-self", vaultfake.OK(map[string]any{declaredPath: []string{"read"}}))
	var mu sync.Mutex
	var outside []string
	c.Client = vaultfake.Client(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ns := r.Header.Get("X-Vault-Namespace"); ns != "team-a/" && ns != "team-a" {
			mu.Lock()
			outside = append(outside, vaultfake.Key(r)+" in namespace "+ns)
			mu.Unlock()
		}
		f.ServeHTTP(w, r)
	}), "agent-token")
	c.Client.SetNamespace("team-a")
	got, err := c.Check(context.Background(), probeApproval("approle:payments", "read"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Capabilities[0].Status != events.CapabilityMatch {
		t.Errorf("capability = %+v, want a match", got.Capabilities[0])
	}
	if len(outside) != 0 || f.Count("PUT auth/approle/login") != 1 {
		t.Errorf("requests outside the namespace: %v", outside)
	}
}
