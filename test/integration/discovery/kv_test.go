package discovery

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/rotation-agent/rotation-agent/discovery"
	"github.com/rotation-agent/rotation-agent/discovery/vaultsource"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators/kvv2"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

var kvConfig = vaultsource.Config{KV: []vaultsource.KVSource{{Mount: "secret", Prefix: "apps"}}}

// Tagged secrets under the configured folder are found, with their rotate_fields and
// rotation_ options; untagged, deleted and out-of-folder secrets are not.
func TestKVTaggedSecretsAreFound(t *testing.T) {
	v := harness.StartVault(t)
	c := discoveryClient(t, v)
	secrets := map[string]string{"payments password": "pw-payments-3f9a1c2e", "web api key": "key-web-77d1e0b4", "retired password": "pw-retired-0c4d9e11", "other password": "pw-other-5b2a8f60"}

	putTagged(t, v, "apps/payments/db", map[string]any{"username": "pay", "password": secrets["payments password"]}, map[string]any{
		"service": "payments", "environment": "prod", "owner": "Team-Pay",
		"rotate_fields": "password", "rotation_overlap": "1h", "rotation_retire": "destroy",
		"description": "payments database login",
	})
	putTagged(t, v, "apps/payments/readme", map[string]any{"note": "not a credential"}, nil)
	putTagged(t, v, "apps/payments/config", map[string]any{"mode": "fast"}, map[string]any{"team": "payments"})
	putTagged(t, v, "apps/web/deep/api", map[string]any{"api_key": secrets["web api key"]}, map[string]any{"host": "WEB1.example.com, web2.example.com"})
	putTagged(t, v, "apps/old/retired", map[string]any{"password": secrets["retired password"]}, map[string]any{"service": "payments", "environment": "prod"})
	if err := v.Root.KVv2("secret").Delete(context.Background(), "apps/old/retired"); err != nil {
		t.Fatal(err)
	}
	putTagged(t, v, "other/tagged", map[string]any{"password": secrets["other password"]}, map[string]any{"service": "payments", "environment": "prod"})

	bs, errs := discover(t, c, kvConfig)
	if len(errs) != 0 {
		t.Fatalf("discovery errors: %v", errs)
	}
	if got, want := ids(bs), []string{"kv-v2:secret/apps/payments/db", "kv-v2:secret/apps/web/deep/api"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("discovered %v, want %v", got, want)
	}
	var pay discovery.Binding
	for _, b := range bs {
		if b.Credential.Path == "apps/payments/db" {
			pay = b
		}
	}
	want := discovery.Binding{
		Name:      "discovery:kv-v2:secret/apps/payments/db",
		Source:    "discovery:kv-v2:secret/apps/payments/db",
		Selectors: discovery.Selectors{discovery.KeyService: {"payments"}, discovery.KeyEnvironment: {"prod"}, discovery.KeyOwner: {"team-pay"}},
		Credential: events.CredentialRef{Kind: kvv2.Kind, Mount: "secret", Path: "apps/payments/db", Fields: []string{"password"},
			Options: map[string]string{"overlap": "1h", "retire": "destroy"}},
		Owner: "Team-Pay",
	}
	if !reflect.DeepEqual(pay, want) {
		t.Errorf("payments binding\n got %s\nwant %s", render(pay), render(want))
	}

	// The agent can act on what discovery found.
	p := plan(t, kvv2.New(v.Root), pay)
	if p.Action != events.ActionRotate || p.Current["version"] != "1" || !strings.Contains(strings.Join(p.Changes, "\n"), "password") {
		t.Errorf("the kv-v2 rotator plans %+v, want a rotation of field password from version 1", p)
	}

	ix := discovery.NewIndex(bs)
	matches := ix.Resolve(events.Change{Targets: events.Targets{Services: []string{"Payments"}, Environments: []string{"prod"}, Owners: []string{"team-pay"}}})
	if len(matches) != 1 || matches[0].Credential.ID() != "kv-v2:secret/apps/payments/db" ||
		matches[0].Source != want.Source || !strings.Contains(matches[0].Reason, want.Source) || matches[0].Credential.Options["overlap"] != "1h" {
		t.Errorf("payments change resolved to %s", render(matches))
	}
	// Tags on several keys must all be named (AND across keys), as in an inventory.
	if m := ix.Resolve(events.Change{Targets: events.Targets{Services: []string{"payments"}, Environments: []string{"prod"}}}); len(m) != 0 {
		t.Errorf("a change naming the service and environment but not the owner resolved to %s", render(m))
	}
	if m := ix.Resolve(events.Change{Targets: events.Targets{Hosts: []string{"web2.example.com"}}}); len(m) != 1 || m[0].Credential.Path != "apps/web/deep/api" {
		t.Errorf("host change resolved to %s", render(m))
	}
	assertNoLeak(t, secrets, bs, errs, matches)
}

// A source that reaches the visit cap stops, says so, and keeps what it found.
func TestKVVisitCap(t *testing.T) {
	v := harness.StartVault(t)
	c := discoveryClient(t, v)
	for i := 0; i < 10; i++ {
		putTagged(t, v, fmt.Sprintf("apps/s%02d", i), map[string]any{"password": "x"}, map[string]any{"service": "bulk"})
	}
	cfg := kvConfig
	cfg.MaxVisits = 5
	bs, errs := discover(t, c, cfg)
	if len(errs) != 1 || !errors.Is(errs[0], vaultsource.ErrCapReached) || !strings.Contains(errs[0].Error(), "stopped after 5 items") {
		t.Fatalf("errors %v, want one saying the cap of 5 was hit", errs)
	}
	if got := ids(bs); len(got) != 4 || got[0] != "kv-v2:secret/apps/s00" {
		t.Errorf("capped walk kept %v, want the first 4 secrets (the folder counts as a visit)", got)
	}
	cfg.MaxVisits = 0
	if bs := mustDiscover(t, c, cfg); len(bs) != 10 {
		t.Errorf("with the default cap: %d bindings, want 10", len(bs))
	}
}
