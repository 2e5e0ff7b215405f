package discovery

import (
	"reflect"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/schedule"
)

// bind returns a binding the way the inventory loader makes one: selector values lower-case.
func bind(name string, sel Selectors, ref events.CredentialRef, actions map[string]events.Action) Binding {
	return Binding{
		Name:       name,
		Selectors:  sel,
		Credential: ref,
		Actions:    actions,
		Source:     "inventory:test.yaml:" + name,
	}
}

func kv(path string) events.CredentialRef {
	return events.CredentialRef{Kind: "kv-v2", Mount: "secret", Path: path}
}

func names(bs []Binding) []string {
	out := []string{}
	for _, b := range bs {
		out = append(out, b.Name)
	}
	return out
}

func TestMatch(t *testing.T) {
	ix := NewIndex([]Binding{
		bind("svc", Selectors{KeyService: {"payments-api"}}, kv("a"), nil),
		bind("svc-or", Selectors{KeyService: {"payments-api", "payments-worker"}}, kv("b"), nil),
		bind("svc-and-env", Selectors{KeyService: {"payments-api"}, KeyEnvironment: {"production"}}, kv("c"), nil),
		bind("host", Selectors{KeyHost: {"db-01", "db-02"}}, kv("d"), nil),
		bind("host-and-identity", Selectors{KeyHost: {"db-01"}, KeyIdentity: {"svc-build"}}, kv("e"), nil),
		bind("ci", Selectors{KeyCI: {"ci0004711"}}, kv("f"), nil),
		bind("owner", Selectors{KeyOwner: {"team-payments"}}, kv("g"), nil),
		bind("env-only", Selectors{KeyEnvironment: {"staging"}}, kv("h"), nil),
		bind("all-keys", Selectors{
			KeyService: {"checkout"}, KeyHost: {"web-01"}, KeyCI: {"ci1"},
			KeyEnvironment: {"production"}, KeyOwner: {"team-web"}, KeyIdentity: {"svc-web"},
		}, kv("i"), nil),
	})
	if ix.Len() != 9 {
		t.Errorf("Len() = %d, want 9", ix.Len())
	}
	tests := []struct {
		name    string
		targets events.Targets
		want    []string
	}{
		{"no targets", events.Targets{}, []string{}},
		{"unknown target", events.Targets{Services: []string{"billing"}, Hosts: []string{"db-99"}}, []string{}},
		{"one key, OR within it", events.Targets{Services: []string{"payments-worker"}}, []string{"svc-or"}},
		{
			"AND across keys: the service alone does not match svc-and-env",
			events.Targets{Services: []string{"payments-api"}},
			[]string{"svc", "svc-or"},
		},
		{
			"AND across keys: service and environment",
			events.Targets{Services: []string{"payments-api"}, Environments: []string{"production"}},
			[]string{"svc", "svc-or", "svc-and-env"},
		},
		{
			"AND across keys: the environment alone matches neither",
			events.Targets{Environments: []string{"production"}},
			[]string{},
		},
		{
			"a wrong value for one key fails the AND",
			events.Targets{Services: []string{"payments-api"}, Environments: []string{"staging"}},
			[]string{"svc", "svc-or", "env-only"},
		},
		{
			"case does not matter",
			events.Targets{Services: []string{"Payments-API"}, Environments: []string{"PRODUCTION"}},
			[]string{"svc", "svc-or", "svc-and-env"},
		},
		{
			"a binding with a key the change does not name does not match",
			events.Targets{Hosts: []string{"DB-01"}},
			[]string{"host"},
		},
		{
			"host and identity",
			events.Targets{Hosts: []string{"db-01"}, Identities: []string{"svc-build"}},
			[]string{"host", "host-and-identity"},
		},
		{"configuration item", events.Targets{ConfigurationItems: []string{"CI0004711"}}, []string{"ci"}},
		{"owner", events.Targets{Owners: []string{"team-payments"}}, []string{"owner"}},
		{
			"every key at once, in binding order whatever the keys",
			events.Targets{
				Services: []string{"checkout", "payments-api"}, Hosts: []string{"web-01", "db-02"},
				ConfigurationItems: []string{"ci1", "ci0004711"}, Environments: []string{"production"},
				Owners: []string{"team-web", "team-payments"}, Identities: []string{"svc-web"},
			},
			[]string{"svc", "svc-or", "svc-and-env", "host", "ci", "owner", "all-keys"},
		},
		{
			"all keys but one",
			events.Targets{
				Services: []string{"checkout"}, Hosts: []string{"web-01"}, ConfigurationItems: []string{"ci1"},
				Environments: []string{"production"}, Owners: []string{"team-web"},
			},
			[]string{},
		},
		{
			"a target named twice",
			events.Targets{Services: []string{"payments-api", "PAYMENTS-API"}},
			[]string{"svc", "svc-or"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Several times: the index must not depend on map iteration order.
			for range 10 {
				if got := names(ix.Match(tt.targets)); !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("Match(%+v) = %v, want %v", tt.targets, got, tt.want)
				}
			}
		})
	}
}

func TestMatchOrderIsBindingOrder(t *testing.T) {
	// Bindings found through different keys and values come back in the order they were given.
	var bs []Binding
	order := []string{}
	for i, sel := range []Selectors{
		{KeyIdentity: {"svc-z"}},
		{KeyService: {"b"}},
		{KeyHost: {"h"}},
		{KeyService: {"a"}},
		{KeyOwner: {"o"}, KeyService: {"a"}},
		{KeyCI: {"c"}},
		{KeyService: {"b", "a"}},
	} {
		name := string(rune('a' + i))
		bs = append(bs, bind(name, sel, kv(name), nil))
		order = append(order, name)
	}
	ix := NewIndex(bs)
	targets := events.Targets{
		Services: []string{"a", "b"}, Hosts: []string{"h"}, ConfigurationItems: []string{"c"},
		Owners: []string{"o"}, Identities: []string{"svc-z"},
	}
	for range 20 {
		if got := names(ix.Match(targets)); !reflect.DeepEqual(got, order) {
			t.Fatalf("Match = %v, want %v", got, order)
		}
	}
}

func TestMatchInventoryCase(t *testing.T) {
	// Upper-case selector values in the file match targets in any case.
	bs, err := LoadInventory("testdata/good/realistic.yaml", agentKinds)
	if err != nil {
		t.Fatal(err)
	}
	got := names(NewIndex(bs).Match(events.Targets{
		Services: []string{"PAYMENTS-api"}, Environments: []string{"production"},
		Hosts: []string{"db-payments-01.EXAMPLE.internal"},
	}))
	want := []string{"payments-api-db-password", "payments-db-static-role"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Match = %v, want %v", got, want)
	}
}

func TestKnownBugNewIndexCase(t *testing.T) {
	ix := NewIndex([]Binding{bind("upper", Selectors{KeyService: {"Payments-API"}}, kv("a"), nil)})
	if got := names(ix.Match(events.Targets{Services: []string{"Payments-API"}})); len(got) != 1 {
		t.Errorf("Match = %v, want [upper]", got)
	}
}

func TestResolve(t *testing.T) {
	named := events.CredentialRef{Kind: "kv-v2", Mount: "secret", Path: "payments/db", Fields: []string{"password"}}
	other := events.CredentialRef{Kind: "transit", Mount: "transit", Path: "keys/payments"}
	ix := NewIndex([]Binding{
		// Names the credential the event already names (without its fields).
		bind("payments-db", Selectors{KeyService: {"payments-api"}}, kv("payments/db"), nil),
		bind("edge-cert", Selectors{
			KeyService:     {"payments-worker", "payments-api"},
			KeyEnvironment: {"production"},
		}, events.CredentialRef{Kind: "pki", Mount: "pki-int", Path: "payments-edge"}, nil),
		// Two bindings naming one credential: the first one's reason wins.
		bind("api-key-by-host", Selectors{KeyHost: {"api-01"}}, kv("payments/api-key"), nil),
		bind("api-key-by-service", Selectors{KeyService: {"payments-api"}}, kv("payments/api-key"), nil),
		bind("unrelated", Selectors{KeyService: {"billing"}}, kv("billing/db"), nil),
	})
	ch := events.Change{
		ID:          "CHG0031337",
		Targets:     events.Targets{Services: []string{"Payments-API"}, Hosts: []string{"api-01"}, Environments: []string{"production"}},
		Credentials: []events.CredentialRef{named, other},
	}
	want := []Match{
		// The event names payments/db, binding payments-db too: the event's reference with the
		// binding's name.
		{Credential: named, Reason: "named in the event", Source: "event", Binding: "payments-db"},
		{Credential: other, Reason: "named in the event", Source: "event"},
		{
			Credential: events.CredentialRef{Kind: "pki", Mount: "pki-int", Path: "payments-edge"},
			Reason:     "binding edge-cert selects services=payments-api,payments-worker environments=production",
			Source:     "inventory:test.yaml:edge-cert",
			Binding:    "edge-cert",
		},
		{
			Credential: kv("payments/api-key"),
			Reason:     "binding api-key-by-host selects hosts=api-01",
			Source:     "inventory:test.yaml:api-key-by-host",
			Binding:    "api-key-by-host",
		},
	}
	for range 10 {
		if got := ix.Resolve(ch); !reflect.DeepEqual(got, want) {
			t.Fatalf("Resolve:\n got %+v\nwant %+v", got, want)
		}
	}

	// Without targets only the event's credentials; without either, nothing.
	if got := ix.Resolve(events.Change{Credentials: []events.CredentialRef{other}}); !reflect.DeepEqual(got, want[1:2]) {
		t.Errorf("Resolve(no targets) = %+v", got)
	}
	if got := ix.Resolve(events.Change{}); len(got) != 0 {
		t.Errorf("Resolve(empty change) = %+v", got)
	}
}

func TestResolveNilIndex(t *testing.T) {
	var ix *Index
	ref := kv("payments/db")
	ch := events.Change{Targets: events.Targets{Services: []string{"payments-api"}}, Credentials: []events.CredentialRef{ref}}
	want := []Match{{Credential: ref, Reason: "named in the event", Source: "event"}}
	if got := ix.Resolve(ch); !reflect.DeepEqual(got, want) {
		t.Errorf("nil Index Resolve = %+v, want %+v", got, want)
	}
	if got := ix.Resolve(events.Change{Targets: ch.Targets}); len(got) != 0 {
		t.Errorf("nil Index Resolve without credentials = %+v", got)
	}
	// An index of no bindings behaves the same.
	if got := NewIndex(nil).Resolve(ch); !reflect.DeepEqual(got, want) {
		t.Errorf("empty Index Resolve = %+v, want %+v", got, want)
	}
}

func TestResolveActionPolicy(t *testing.T) {
	targets := events.Targets{Services: []string{"payments-api"}}
	sel := Selectors{KeyService: {"payments-api"}}
	withOpts := func(action events.Action, opts map[string]string) events.CredentialRef {
		return events.CredentialRef{Kind: "database-static-role", Mount: "database", Path: "payments-app", Action: action, Options: opts}
	}
	tests := []struct {
		name     string
		binding  Binding
		category string
		action   events.Action
		options  map[string]string
	}{
		{"no category: the credential's action", bind("b", sel, withOpts("", nil), nil), "", "", nil},
		{"no category: verify stays", bind("b", sel, withOpts(events.ActionVerify, nil), nil), "", events.ActionVerify, nil},
		{"other category: the credential's action", bind("b", sel, withOpts(events.ActionVerify, map[string]string{"overlap": "15m"}), nil), "maintenance", events.ActionVerify, map[string]string{"overlap": "15m"}},
		{"decommission revokes", bind("b", sel, withOpts("", map[string]string{"overlap": "15m"}), nil), CategoryDecommission, events.ActionRevoke, map[string]string{"overlap": "15m"}},
		{"decommission revokes a verify credential", bind("b", sel, withOpts(events.ActionVerify, nil), nil), CategoryDecommission, events.ActionRevoke, nil},
		{"exposure keeps an unset action, overlap 0s", bind("b", sel, withOpts("", nil), nil), CategoryExposure, "", map[string]string{"overlap": "0s"}},
		{"exposure keeps rotate, overrides the overlap", bind("b", sel, withOpts(events.ActionRotate, map[string]string{"overlap": "15m", "x": "y"}), nil), CategoryExposure, events.ActionRotate, map[string]string{"overlap": "0s", "x": "y"}},
		{"exposure keeps revoke", bind("b", sel, withOpts(events.ActionRevoke, nil), nil), CategoryExposure, events.ActionRevoke, map[string]string{"overlap": "0s"}},
		{
			"the binding's on entry wins over decommission",
			bind("b", sel, withOpts("", nil), map[string]events.Action{CategoryDecommission: events.ActionVerify}),
			CategoryDecommission, events.ActionVerify, nil,
		},
		{
			"the binding's on entry wins over exposure",
			bind("b", sel, withOpts(events.ActionRotate, nil), map[string]events.Action{CategoryExposure: events.ActionRevoke}),
			CategoryExposure, events.ActionRevoke, nil,
		},
		{
			"the binding's on entry for a category without a built-in policy",
			bind("b", sel, withOpts("", map[string]string{"overlap": "15m"}), map[string]events.Action{"maintenance": events.ActionVerify, CategoryDecommission: events.ActionRevoke}),
			"maintenance", events.ActionVerify, map[string]string{"overlap": "15m"},
		},
		{
			"an on entry for another category does not apply",
			bind("b", sel, withOpts(events.ActionVerify, nil), map[string]events.Action{"maintenance": events.ActionRotate}),
			"migration", events.ActionVerify, nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := cloneBinding(tt.binding)
			ix := NewIndex([]Binding{tt.binding})
			got := ix.Resolve(events.Change{Category: tt.category, Targets: targets})
			if len(got) != 1 {
				t.Fatalf("Resolve = %+v, want one match", got)
			}
			ref := got[0].Credential
			if ref.Action != tt.action {
				t.Errorf("action = %q, want %q", ref.Action, tt.action)
			}
			if tt.action != "" && ref.EffectiveAction() != tt.action {
				t.Errorf("effective action = %q, want %q", ref.EffectiveAction(), tt.action)
			}
			if tt.options != nil || len(ref.Options) != 0 {
				if !reflect.DeepEqual(ref.Options, tt.options) {
					t.Errorf("options = %v, want %v", ref.Options, tt.options)
				}
			}
			// The binding, and the index's copy of it, are untouched, even after the caller
			// changes what Resolve returned.
			for k := range ref.Options {
				ref.Options[k] = "changed by the caller"
			}
			if !reflect.DeepEqual(tt.binding, before) {
				t.Errorf("Resolve changed the binding:\n got %+v\nwant %+v", tt.binding, before)
			}
			if again := ix.Resolve(events.Change{Targets: targets}); !reflect.DeepEqual(again[0].Credential, before.Credential) {
				t.Errorf("a later change without category got %+v, want the binding's own %+v", again[0].Credential, before.Credential)
			}
		})
	}
}

func TestResolveExposureInventory(t *testing.T) {
	// The realistic inventory: an exposure of the payments API, then an ordinary change.
	bs, err := LoadInventory("testdata/good/realistic.yaml", agentKinds)
	if err != nil {
		t.Fatal(err)
	}
	ix := NewIndex(bs)
	ch := events.Change{
		Category: CategoryExposure,
		Targets:  events.Targets{Services: []string{"payments-api"}, Environments: []string{"production"}, ConfigurationItems: []string{"CI0004712"}},
	}
	got := ix.Resolve(ch)
	want := []Match{
		{
			Credential: events.CredentialRef{Kind: "kv-v2", Mount: "secret", Path: "payments/db", Fields: []string{"password"}, Options: map[string]string{"overlap": "0s"}},
			Reason:     "binding payments-api-db-password selects services=payments-api environments=production",
			Source:     "inventory:testdata/good/realistic.yaml:6",
			Binding:    "payments-api-db-password",
		},
		{
			// on: {exposure: revoke}
			Credential: events.CredentialRef{Kind: "pki", Mount: "pki-int", Path: "payments-edge", Action: events.ActionRevoke, Options: map[string]string{"deliver_to": "secret/payments/tls", "ttl": "720h"}},
			Reason:     "binding payments-edge-certificate selects services=payments-api configuration_items=ci0004711,ci0004712",
			Source:     "inventory:testdata/good/realistic.yaml:32",
			Binding:    "payments-edge-certificate",
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Resolve(exposure):\n got %+v\nwant %+v", got, want)
	}
	ch.Category = ""
	if o := ix.Resolve(ch)[0].Credential.Options; o != nil {
		t.Errorf("after an exposure, an ordinary change got options %v", o)
	}
	// Decommission of the CI runner: the token's on entry (revoke) applies.
	got = ix.Resolve(events.Change{Category: CategoryDecommission, Targets: events.Targets{
		Hosts: []string{"ci-runner-07.example.internal"}, Identities: []string{"svc-build"},
	}})
	if len(got) != 1 || got[0].Credential.Action != events.ActionRevoke || got[0].Credential.Kind != "token" {
		t.Errorf("Resolve(decommission) = %+v, want the token, revoked", got)
	}
}

func TestKnownBugExposureMutatesEmptyOptions(t *testing.T) {
	bs, err := ParseInventory("inv.yaml", []byte("version: 1\nbindings:\n  - name: a\n    select: {services: [a]}\n    credential: {kind: kv-v2, mount: secret, path: a, options: {}}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ix := NewIndex(bs)
	ix.Resolve(events.Change{Category: CategoryExposure, Targets: events.Targets{Services: []string{"a"}}})
	if len(bs[0].Credential.Options) != 0 {
		t.Errorf("the binding's options are now %v", bs[0].Credential.Options)
	}
	got := ix.Resolve(events.Change{Targets: events.Targets{Services: []string{"a"}}})
	if v, ok := got[0].Credential.Options["overlap"]; ok {
		t.Errorf("an ordinary change after an exposure got overlap=%s", v)
	}
}

func cloneBinding(b Binding) Binding {
	c := b
	if b.Credential.Options != nil {
		c.Credential.Options = map[string]string{}
		for k, v := range b.Credential.Options {
			c.Credential.Options[k] = v
		}
	}
	return c
}

// A reference Resolve drops as a duplicate of a kept one gives the kept one what it lacks: the
// window, and the binding name with the approved entitlements.
func TestResolveKeepsTheDroppedBindingsData(t *testing.T) {
	window := &schedule.Window{Blackouts: []schedule.Period{{From: time.Date(2026, 12, 24, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 12, 27, 0, 0, 0, 0, time.UTC)}}}
	other := &schedule.Window{Blackouts: []schedule.Period{{From: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC)}}}
	approved := []events.ApprovedEntitlements{{Identity: "payments-api", Policies: []string{"payments-read"}}}
	alsoApproved := []events.ApprovedEntitlements{{Identity: "payments-api", Policies: []string{"admin"}}}
	with := func(b Binding, w *schedule.Window, ents []events.ApprovedEntitlements) Binding {
		b.Window, b.ApprovedEntitlements = w, ents
		return b
	}
	tok := events.CredentialRef{Kind: "token", Mount: "token", Path: "acc-1", Action: events.ActionRevoke}
	tokDelivered := tok
	tokDelivered.Options = map[string]string{"deliver_to": "secret/apps/payments/token"}
	sel := Selectors{KeyService: {"payments-api"}}
	targets := events.Targets{Services: []string{"payments-api"}}
	tests := []struct {
		name     string
		bindings []Binding
		change   events.Change
		want     Match
	}{
		{
			name:     "event names the token without deliver_to, its binding has deliver_to",
			bindings: []Binding{with(bind("payments-token", sel, tokDelivered, nil), window, approved)},
			change:   events.Change{Targets: targets, Credentials: []events.CredentialRef{tok}},
			want:     Match{Credential: tok, Reason: "named in the event", Source: "event", Binding: "payments-token", Window: window, Entitlements: approved},
		},
		{
			name:     "event names the credential and no target matches: the window still applies",
			bindings: []Binding{with(bind("payments-token", sel, tokDelivered, nil), window, approved)},
			change:   events.Change{Credentials: []events.CredentialRef{tok}},
			want:     Match{Credential: tok, Reason: "named in the event", Source: "event", Window: window},
		},
		{
			name: "the first binding has neither window nor entitlements, the second both",
			bindings: []Binding{
				bind("by-host", Selectors{KeyHost: {"api-01"}}, kv("payments/db"), nil),
				with(bind("by-service", sel, kv("payments/db"), nil), window, approved),
			},
			change: events.Change{Targets: events.Targets{Services: []string{"payments-api"}, Hosts: []string{"api-01"}}},
			want: Match{Credential: kv("payments/db"), Reason: "binding by-host selects hosts=api-01", Source: "inventory:test.yaml:by-host",
				Binding: "by-service", Window: window, Entitlements: approved},
		},
		{
			name: "both bindings have a window and entitlements: the first one's",
			bindings: []Binding{
				with(bind("by-host", Selectors{KeyHost: {"api-01"}}, kv("payments/db"), nil), window, approved),
				with(bind("by-service", sel, kv("payments/db"), nil), other, alsoApproved),
			},
			change: events.Change{Targets: events.Targets{Services: []string{"payments-api"}, Hosts: []string{"api-01"}}},
			want: Match{Credential: kv("payments/db"), Reason: "binding by-host selects hosts=api-01", Source: "inventory:test.yaml:by-host",
				Binding: "by-host", Window: window, Entitlements: approved},
		},
		{
			name: "break-glass binding of an emergency change",
			bindings: []Binding{func() Binding {
				b := with(bind("break-glass-db", Selectors{KeyService: {"nobody"}}, kv("payments/db"), nil), window, approved)
				b.BreakGlass = true
				return b
			}()},
			change: events.Change{Type: events.ChangeEmergency},
			want: Match{Credential: kv("payments/db"), Reason: "break-glass binding break-glass-db (emergency change)", Source: "inventory:test.yaml:break-glass-db",
				Binding: "break-glass-db", Window: window, Entitlements: approved},
		},
		{
			name: "break-glass binding of a credential the emergency change names",
			bindings: []Binding{func() Binding {
				b := with(bind("break-glass-token", Selectors{KeyService: {"nobody"}}, tokDelivered, nil), nil, approved)
				b.BreakGlass = true
				return b
			}()},
			change: events.Change{Type: events.ChangeEmergency, Credentials: []events.CredentialRef{tok}},
			want:   Match{Credential: tok, Reason: "named in the event", Source: "event", Binding: "break-glass-token", Entitlements: approved},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NewIndex(tt.bindings).Resolve(tt.change)
			if len(got) != 1 || !reflect.DeepEqual(got[0], tt.want) {
				t.Errorf("Resolve:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
