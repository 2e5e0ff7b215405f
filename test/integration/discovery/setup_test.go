// Package discovery runs Vault discovery (discovery/vaultsource) against a real in-process
// Vault core, and a real PostgreSQL for the database engine, under the least-privilege policy
// it documents: tagged KV v2 secrets, delivered PKI certificates, AppRole secret ids and tokens
// by metadata, database static roles; change events resolved through the discovered
// bindings; a cache that keeps its last good result.
package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/discovery"
	"github.com/rotation-agent/rotation-agent/discovery/vaultsource"
	"github.com/rotation-agent/rotation-agent/rotators"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// discoveryPolicy is what discovery needs for the sources these tests configure: KV v2 mount
// secret/ folder apps, PKI mount pki/ delivering to secret/certs, AppRole at auth/approle,
// tokens, and the database mount database/. It is the policy documented for the agent.
const discoveryPolicy = `
# kv: {mount: secret, prefix: apps}
path "secret/metadata/apps/*" { capabilities = ["list", "read"] }

# pki: {mount: pki, role: web, deliver_to: secret/certs}
path "secret/metadata/certs/*" { capabilities = ["list"] }
path "secret/data/certs/*"     { capabilities = ["read"] }
path "pki/cert/*"              { capabilities = ["read"] }

# approle: {mount: approle}
path "auth/approle/role"                              { capabilities = ["list"] }
path "auth/approle/role/+/secret-id"                  { capabilities = ["list"] }
path "auth/approle/role/+/secret-id-accessor/lookup"  { capabilities = ["update"] }

# tokens: true
path "auth/token/accessors"      { capabilities = ["list", "sudo"] }
path "auth/token/lookup-accessor" { capabilities = ["update"] }

# database: {mount: database}
path "database/static-roles"   { capabilities = ["list"] }
path "database/static-roles/*" { capabilities = ["read"] }
path "database/config/*"       { capabilities = ["read"] }
`

const policyName = "rotation-agent-discovery"

// discoveryClient returns a client like the agent's (TLS to the cluster CA, no client retries)
// holding a token bound to discoveryPolicy only.
func discoveryClient(t *testing.T, v *harness.Vault) *vaultapi.Client {
	t.Helper()
	putPolicy(t, v, discoveryPolicy)
	tok, err := v.Root.Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: []string{policyName}, TTL: "1h", NoDefaultPolicy: true})
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	conf := vaultapi.DefaultConfig()
	conf.Address = v.Addr
	conf.MaxRetries = 0
	if err := conf.ConfigureTLS(&vaultapi.TLSConfig{CACert: v.CACertFile}); err != nil {
		t.Fatal(err)
	}
	c, err := vaultapi.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(tok.Auth.ClientToken)
	return c
}

func putPolicy(t *testing.T, v *harness.Vault, policy string) {
	t.Helper()
	if err := v.Root.Sys().PutPolicy(policyName, policy); err != nil {
		t.Fatalf("put policy: %v", err)
	}
}

// write writes a Vault path as root and fails the test on an error.
func write(t *testing.T, c *vaultapi.Client, path string, data map[string]any) *vaultapi.Secret {
	t.Helper()
	s, err := c.Logical().Write(path, data)
	if err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return s
}

// putTagged writes a KV v2 secret under secret/ with custom metadata.
func putTagged(t *testing.T, v *harness.Vault, path string, data map[string]any, custom map[string]any) {
	t.Helper()
	v.PutKV(t, path, data)
	if custom == nil {
		return
	}
	if err := v.Root.KVv2("secret").PutMetadata(context.Background(), path, vaultapi.KVMetadataPutInput{CustomMetadata: custom}); err != nil {
		t.Fatalf("put metadata secret/%s: %v", path, err)
	}
}

// discover runs discovery with a deadline.
func discover(t *testing.T, c *vaultapi.Client, cfg vaultsource.Config) ([]discovery.Binding, []error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return vaultsource.Discover(ctx, c, cfg)
}

// mustDiscover runs discovery and fails the test on any error.
func mustDiscover(t *testing.T, c *vaultapi.Client, cfg vaultsource.Config) []discovery.Binding {
	t.Helper()
	bs, errs := discover(t, c, cfg)
	if len(errs) > 0 {
		t.Fatalf("discovery errors: %v", errs)
	}
	return bs
}

// ids lists the credential ids of bindings, sorted.
func ids(bs []discovery.Binding) []string {
	out := make([]string, 0, len(bs))
	for _, b := range bs {
		out = append(out, b.Credential.ID())
	}
	sort.Strings(out)
	return out
}

// only returns the single binding of bs, failing the test otherwise.
func only(t *testing.T, bs []discovery.Binding) discovery.Binding {
	t.Helper()
	if len(bs) != 1 {
		t.Fatalf("want exactly one binding, got %d: %s", len(bs), render(bs))
	}
	return bs[0]
}

// render is bindings (or anything) as JSON, for messages and leak scans.
func render(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(raw)
}

// plan runs a rotator's read-only Plan for a discovered credential: proof that the binding
// names a credential the agent can act on.
func plan(t *testing.T, rot rotators.Rotator, b discovery.Binding) rotators.Plan {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ref := rotators.WithDefaultAction(rot, b.Credential)
	p, err := rot.Plan(ctx, rotators.Request{ChangeID: "CHG-DISCOVERY", Credential: ref, Now: time.Now,
		Save:     func(context.Context, *rotators.State) error { return errors.New("plan must not save") },
		Generate: func(context.Context) (string, error) { return "", errors.New("plan must not generate") },
	})
	if err != nil {
		t.Fatalf("plan for discovered %s: %v", b.Credential.ID(), err)
	}
	return p
}

// assertNoLeak fails the test if any secret value appears in what discovery returned.
func assertNoLeak(t *testing.T, secrets map[string]string, returned ...any) {
	t.Helper()
	var texts []string
	for _, r := range returned {
		if errs, ok := r.([]error); ok {
			for _, err := range errs {
				texts = append(texts, err.Error())
			}
			continue
		}
		texts = append(texts, render(r))
	}
	for name, secret := range secrets {
		if len(secret) < 8 {
			t.Fatalf("secret %s is too short to scan for", name)
		}
		needles := []string{secret}
		if lines := strings.Split(strings.TrimSpace(secret), "\n"); len(lines) > 2 {
			needles = append(needles, lines[1][:32]) // a PEM body line survives JSON escaping
		}
		for _, text := range texts {
			for _, n := range needles {
				if strings.Contains(text, n) {
					t.Errorf("the %s leaked into discovery's output: %s", name, text)
				}
			}
		}
	}
}
