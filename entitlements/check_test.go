package entitlements

import (
	"context"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/vaultfake"
	"github.com/rotation-agent/rotation-agent/rotators"
)

func TestParseIdentity(t *testing.T) {
	tests := []struct {
		in   string
		want Identity
		bad  bool
	}{
		{in: "approle:approle/payments", want: Identity{Kind: KindAppRole, Mount: "approle", Name: "payments"}},
		{in: "approle:payments", want: Identity{Kind: KindAppRole, Mount: "approle", Name: "payments"}},
		{in: "approle:teams/ops/approle/deployer", want: Identity{Kind: KindAppRole, Mount: "teams/ops/approle", Name: "deployer"}},
		{in: "token-role:ci", want: Identity{Kind: KindTokenRole, Name: "ci"}},
		{in: "entity:svc-payments", want: Identity{Kind: KindEntity, Name: "svc-payments"}},
		{in: "group:payments-team", want: Identity{Kind: KindGroup, Name: "payments-team"}},
		{in: "token:hmac-accessor-1", want: Identity{Kind: KindToken, Name: "hmac-accessor-1"}},
		{in: "payments", bad: true},
		{in: "user:alice", bad: true},
		{in: "entity:", bad: true},
		{in: "entity:a/b", bad: true},
		{in: "group:a b", bad: true},
		{in: "approle:payments?x=1", bad: true},
	}
	for _, tc := range tests {
		got, err := ParseIdentity(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseIdentity(%q) = %+v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseIdentity(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

var checkedAt = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func checker(t *testing.T, remediate bool) (*vaultfake.Routes, *Checker) {
	f, client := vaultfake.NewRoutes(t, "agent-token")
	return f, &Checker{Client: client, Remediate: remediate, Now: func() time.Time { return checkedAt }}
}

func approval(identity string, policies ...string) Approval {
	return Approval{ApprovedEntitlements: events.ApprovedEntitlements{Identity: identity, Policies: policies}, Source: "change event"}
}

func TestCheckReadsEachIdentityKind(t *testing.T) {
	tests := []struct {
		identity, route, key string
	}{
		{"approle:auth-ci/deployer", "GET auth/auth-ci/role/deployer/policies", "token_policies"},
		{"token-role:ci", "GET auth/token/roles/ci", "allowed_policies"},
		{"entity:svc", "GET identity/entity/name/svc", "policies"},
		{"group:ops", "GET identity/group/name/ops", "policies"},
		{"token:acc-1", "PUT auth/token/lookup-accessor", "policies"},
	}
	for _, tc := range tests {
		t.Run(tc.identity, func(t *testing.T) {
			f, c := checker(t, false)
			f.On(tc.route, vaultfake.OK(map[string]any{tc.key: []string{"b", "extra", "a"}}))
			got, err := c.Check(context.Background(), approval(tc.identity, "a", "b", "missing"))
			if err != nil {
				t.Fatal(err)
			}
			want := events.EntitlementEvidence{
				Identity: tc.identity, Kind: got.Kind, Source: "change event", Status: events.EntitlementDrift,
				ApprovedPolicies: []string{"a", "b", "missing"}, ActualPolicies: []string{"a", "b", "extra"},
				ExtraPolicies: []string{"extra"}, MissingPolicies: []string{"missing"}, Capabilities: []events.CapabilityEvidence{}, CheckedAt: checkedAt,
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestCheckMatch(t *testing.T) {
	f, c := checker(t, true)
	f.On("GET auth/approle/role/p/policies", vaultfake.OK(map[string]any{"token_policies": []string{"read", "read"}}))
	got, err := c.Check(context.Background(), approval("approle:p", "read"))
	if err != nil || got.Status != events.EntitlementMatch || got.Remediation != nil {
		t.Fatalf("got %+v, %v; want a match and nothing written", got, err)
	}
	if f.Count("PUT auth/approle/role/p/policies") != 0 {
		t.Error("a matching identity was written")
	}
}

func TestCheckRemediates(t *testing.T) {
	f, c := checker(t, true)
	current := []string{"admin", "read"}
	f.On("GET identity/group/name/ops", func(url.Values, map[string]any) (int, any) {
		return http.StatusOK, map[string]any{"data": map[string]any{"policies": current}}
	})
	var written any
	f.On("PUT identity/group/name/ops", func(_ url.Values, body map[string]any) (int, any) {
		written = body["policies"]
		current = []string{"read"}
		return http.StatusNoContent, nil
	})
	got, err := c.Check(context.Background(), approval("group:ops", "read"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != events.EntitlementRemediated || got.Remediation == nil || !got.Remediation.Verified ||
		!reflect.DeepEqual(got.ExtraPolicies, []string{"admin"}) || !reflect.DeepEqual(written, []any{"read"}) {
		t.Errorf("got %+v (wrote %v), want remediated with the approved policies written", got, written)
	}
}

// Remediation that would add policies needs an approval from a binding the agent loaded: an
// approval from a change event may only take policies away.
func TestCheckRemediationAddsPoliciesOnlyForBindings(t *testing.T) {
	tests := []struct {
		name     string
		current  []string
		approved []string
		mayGrant bool
		status   events.EntitlementStatus
		written  []any
		err      string
	}{
		{"event approval removes", []string{"admin", "read"}, []string{"read"}, false, events.EntitlementRemediated, []any{"read"}, ""},
		{"event approval would add", []string{"read"}, []string{"admin", "read"}, false, events.EntitlementDrift, nil,
			"remediation refused: it would add admin, and only an inventory binding's approval may add policies to an identity; an approval from the change event may only remove them"},
		{"event approval would add and remove", []string{"admin"}, []string{"read"}, false, events.EntitlementDrift, nil, "remediation refused: it would add read"},
		{"binding approval adds", []string{"read"}, []string{"admin", "read"}, true, events.EntitlementRemediated, []any{"admin", "read"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := checker(t, true)
			current := tt.current
			f.On("GET identity/group/name/ops", func(url.Values, map[string]any) (int, any) {
				return http.StatusOK, map[string]any{"data": map[string]any{"policies": current}}
			})
			var written any
			f.On("PUT identity/group/name/ops", func(_ url.Values, body map[string]any) (int, any) {
				written = body["policies"]
				current = tt.approved
				return http.StatusNoContent, nil
			})
			a := approval("group:ops", tt.approved...)
			if tt.mayGrant {
				a.Source, a.MayGrant = "binding ops", true
			}
			got, err := c.Check(context.Background(), a)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.status || !strings.HasPrefix(got.Error, tt.err) || (tt.err == "") != (got.Error == "") {
				t.Errorf("status %s, error %q; want %s, %q", got.Status, got.Error, tt.status, tt.err)
			}
			if tt.written == nil && (written != nil || got.Remediation != nil) {
				t.Errorf("policies written: %v (remediation %+v)", written, got.Remediation)
			}
			if tt.written != nil && !reflect.DeepEqual(written, tt.written) {
				t.Errorf("wrote %v, want %v", written, tt.written)
			}
		})
	}
}

func TestCheckRemediationNotTakenStaysDrift(t *testing.T) {
	f, c := checker(t, true)
	f.On("GET identity/entity/name/svc", vaultfake.OK(map[string]any{"policies": []string{"admin"}}))
	f.On("PUT identity/entity/name/svc", vaultfake.OK(nil)) // accepted, but the read-back still shows admin
	got, err := c.Check(context.Background(), approval("entity:svc"))
	if err != nil || got.Status != events.EntitlementDrift || got.Remediation == nil || got.Remediation.Verified {
		t.Errorf("got %+v, %v; want drift with an unverified remediation", got, err)
	}
	f2, c2 := checker(t, true)
	f2.On("GET identity/entity/name/svc", vaultfake.OK(map[string]any{"policies": []string{"admin"}}))
	f2.On("PUT identity/entity/name/svc", vaultfake.Fail(http.StatusForbidden, "permission denied"))
	got, err = c2.Check(context.Background(), approval("entity:svc"))
	if err != nil || got.Status != events.EntitlementDrift || !strings.Contains(got.Error, "remediation failed") {
		t.Errorf("got %+v, %v; want drift naming the failed remediation", got, err)
	}
}

func TestCheckTokenCapabilities(t *testing.T) {
	f, c := checker(t, true)
	f.On("PUT auth/token/lookup-accessor", vaultfake.OK(map[string]any{"policies": []string{"default", "read"}}))
	f.On("PUT sys/capabilities-accessor", func(_ url.Values, body map[string]any) (int, any) {
		paths, _ := body["paths"].([]any)
		p, _ := paths[0].(string)
		caps := []string{"read"}
		if p == "secret/data/admin" {
			caps = []string{"read", "update"}
		}
		return http.StatusOK, map[string]any{"data": map[string]any{p: caps, "capabilities": caps}}
	})
	a := approval("token:acc-1", "default", "read")
	a.Capabilities = map[string][]string{"secret/data/app": {"read"}, "secret/data/admin": {"read"}}
	got, err := c.Check(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != events.EntitlementDrift || len(got.Capabilities) != 2 {
		t.Fatalf("got %+v, want capability drift", got)
	}
	admin := got.Capabilities[0]
	if admin.Path != "secret/data/admin" || admin.Status != events.CapabilityDrift || !reflect.DeepEqual(admin.Extra, []string{"update"}) {
		t.Errorf("admin path = %+v, want drift with extra update", admin)
	}
	if got.Capabilities[1].Status != events.CapabilityMatch {
		t.Errorf("app path = %+v, want match", got.Capabilities[1])
	}
	if got.Remediation != nil || f.Count("PUT auth/token/lookup-accessor") != 1 {
		t.Errorf("a token's capability drift must not be remediated: %+v", got.Remediation)
	}
}

func TestCheckFailures(t *testing.T) {
	t.Run("unknown identity form", func(t *testing.T) {
		_, c := checker(t, false)
		got, err := c.Check(context.Background(), approval("user:alice"))
		if err != nil || got.Status != events.EntitlementError || !strings.Contains(got.Error, "is not one of") {
			t.Errorf("got %+v, %v", got, err)
		}
	})
	t.Run("identity missing", func(t *testing.T) {
		_, c := checker(t, false)
		got, err := c.Check(context.Background(), approval("entity:ghost"))
		if err != nil || got.Status != events.EntitlementError || got.Error == "" {
			t.Errorf("got %+v, %v; want an error result", got, err)
		}
	})
	t.Run("permission denied", func(t *testing.T) {
		f, c := checker(t, false)
		f.On("GET auth/token/roles/ci", vaultfake.Fail(http.StatusForbidden, "permission denied"))
		got, err := c.Check(context.Background(), approval("token-role:ci"))
		if err != nil || got.Status != events.EntitlementError || !strings.Contains(got.Error, "permission denied") {
			t.Errorf("got %+v, %v; want an error result", got, err)
		}
	})
	t.Run("vault unavailable", func(t *testing.T) {
		f, c := checker(t, false)
		f.On("GET auth/token/roles/ci", vaultfake.Fail(http.StatusServiceUnavailable, "sealed"))
		_, err := c.Check(context.Background(), approval("token-role:ci"))
		if !rotators.IsRetryable(err) {
			t.Errorf("err = %v, want retryable", err)
		}
	})
}
