package agent

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/rotation-agent/rotation-agent/discovery"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
)

const privilegedInventory = `version: 1
bindings:
  - name: batch-logins
    select: {services: [batch]}
    credential: {kind: lease-prefix, mount: auth, path: approle/login, options: {force: "true"}}
  - name: db-leases
    select: {services: [reports]}
    credential: {kind: lease-prefix, mount: database, path: creds/reports}
`

// A privileged option is honoured only when a binding the agent loaded declares it for the
// same credential; a change event alone may not ask for it.
func TestAuthoriseRefusesPrivilegedOptionsNoBindingDeclares(t *testing.T) {
	file := filepath.Join(t.TempDir(), "inventory.yaml")
	writeInventory(t, file, privilegedInventory, time.Now())
	log, _ := logtest.NewNullLogger()
	c, err := newCatalog(file, []string{"kv-v2", "lease-prefix", "token"}, log)
	if err != nil {
		t.Fatal(err)
	}
	c.setDiscovered([]discovery.Binding{{
		Name: "discovery:test", Source: "discovery:test", Selectors: discovery.Selectors{discovery.KeyService: {"x"}},
		Credential: events.CredentialRef{Kind: "lease-prefix", Mount: "auth", Path: "userpass/login", Options: map[string]string{"force": "1"}},
	}})
	lease := func(mount, path string, opts map[string]string) events.CredentialRef {
		return events.CredentialRef{Kind: "lease-prefix", Mount: mount, Path: path, Options: opts}
	}
	tests := []struct {
		name    string
		ref     events.CredentialRef
		refused bool
	}{
		{"force on a prefix no binding names", lease("auth", "other/login", map[string]string{"force": "true"}), true},
		{"force on a prefix bound without force", lease("database", "creds/reports", map[string]string{"force": "TRUE"}), true},
		{"force the inventory declares", lease("auth", "approle/login", map[string]string{"force": "t"}), false},
		{"force discovery declares", lease("auth", "userpass/login", map[string]string{"force": "true"}), false},
		{"force=false", lease("auth", "other/login", map[string]string{"force": "false"}), false},
		{"no force", lease("auth", "other/login", nil), false},
		{"a force the rotator will reject as invalid", lease("auth", "other/login", map[string]string{"force": "yes"}), false},
		{"force on a kind without it", events.CredentialRef{Kind: "kv-v2", Mount: "secret", Path: "a", Options: map[string]string{"force": "true"}}, false},
		{"orphan_children no binding declares", events.CredentialRef{Kind: "token", Mount: "auth/token", Path: "accessor/abc", Options: map[string]string{"orphan_children": "true"}}, true},
		{"orphan_children=false", events.CredentialRef{Kind: "token", Mount: "auth/token", Path: "accessor/abc", Options: map[string]string{"orphan_children": "false"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.authorise(tt.ref)
			if (err != nil) != tt.refused {
				t.Fatalf("authorise = %v, refused want %t", err, tt.refused)
			}
			if err == nil {
				return
			}
			if rotators.IsRetryable(err) {
				t.Errorf("a refusal is retryable: %v", err)
			}
			want := []string{"option force=", "refused", "sys/leases/revoke-force", tt.ref.ID(), "not a change event"}
			if tt.ref.Kind == "token" {
				want = []string{"option orphan_children=", "refused", "auth/token/revoke-orphan", tt.ref.ID(), "not a change event"}
			}
			for _, want := range want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("refusal %q lacks %q", err, want)
				}
			}
		})
	}
}

// Without an inventory nothing may ask for a privileged option.
func TestAuthoriseWithoutInventory(t *testing.T) {
	log, _ := logtest.NewNullLogger()
	c, err := newCatalog("", nil, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.authorise(events.CredentialRef{Kind: "lease-prefix", Mount: "auth", Path: "approle/login", Options: map[string]string{"force": "true"}}); err == nil {
		t.Error("force was authorised without any binding")
	}
}
