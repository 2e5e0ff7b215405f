package vaultsource

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/discovery"
	"github.com/rotation-agent/rotation-agent/events"
)

func byName(bs []discovery.Binding) map[string]discovery.Binding {
	out := map[string]discovery.Binding{}
	for _, b := range bs {
		out[b.Name] = b
	}
	return out
}

func sourceErrors(t *testing.T, errs []error) []*SourceError {
	t.Helper()
	var out []*SourceError
	for _, err := range errs {
		var se *SourceError
		if !errors.As(err, &se) {
			t.Fatalf("error %v is not a *SourceError", err)
		}
		out = append(out, se)
	}
	return out
}

func TestDiscoverKVTaggedSecrets(t *testing.T) {
	f, client := newFake(t)
	f.ok("LIST secret/metadata/apps", keys("payments/", "plain"))
	f.ok("LIST secret/metadata/apps/payments", keys("db", "gone"))
	f.ok("GET secret/metadata/apps/plain", kvMeta(map[string]any{"team": "x"}))
	f.ok("GET secret/metadata/apps/payments/db", kvMeta(map[string]any{
		"service":          "Payments, billing",
		"environment":      "prod",
		"owner":            "Team-Pay",
		"rotate_fields":    "password, api_key",
		"rotation_overlap": "1h",
		"rotation_retire":  "destroy",
		"description":      "ignored",
	}))
	deleted := kvMeta(map[string]any{"service": "payments"})
	deleted["versions"] = map[string]any{"1": map[string]any{"deletion_time": "2020-01-01T00:00:00Z", "destroyed": false}}
	f.ok("GET secret/metadata/apps/payments/gone", deleted)

	bs, errs := Discover(context.Background(), client, Config{KV: []KVSource{{Mount: "secret", Prefix: "/apps/"}}})
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	want := []discovery.Binding{{
		Name:   "discovery:kv-v2:secret/apps/payments/db",
		Source: "discovery:kv-v2:secret/apps/payments/db",
		Selectors: discovery.Selectors{
			discovery.KeyService:     {"billing", "payments"},
			discovery.KeyEnvironment: {"prod"},
			discovery.KeyOwner:       {"team-pay"},
		},
		Credential: events.CredentialRef{Kind: "kv-v2", Mount: "secret", Path: "apps/payments/db",
			Fields: []string{"password", "api_key"}, Options: map[string]string{"overlap": "1h", "retire": "destroy"}},
		Owner: "Team-Pay",
	}}
	if !reflect.DeepEqual(bs, want) {
		t.Fatalf("bindings:\n got %+v\nwant %+v", bs, want)
	}
}

func TestDiscoverOneSourceFailingLeavesTheOthers(t *testing.T) {
	f, client := newFake(t)
	f.ok("LIST secret/metadata", keys("a"))
	f.ok("GET secret/metadata/a", kvMeta(map[string]any{"host": "web1"}))
	f.fail("LIST database/static-roles", 500, "internal error")
	f.fail("LIST auth/approle/role", 403, "permission denied")

	cfg := Config{
		KV:       []KVSource{{Mount: "secret"}, {Mount: ""}},
		Database: []DatabaseSource{{Mount: "database"}},
		AppRole:  []AppRoleSource{{Mount: "auth/approle/"}},
	}
	bs, errs := Discover(context.Background(), client, cfg)
	if len(bs) != 1 || bs[0].Credential.ID() != "kv-v2:secret/a" {
		t.Fatalf("bindings %+v, want the KV secret only", bs)
	}
	ses := sourceErrors(t, errs)
	got := map[string]bool{}
	for _, se := range ses {
		if !se.Failed {
			t.Errorf("%v: want Failed", se)
		}
		got[se.Source] = true
	}
	for _, want := range []string{"kv-v2:", "database:database", "approle:approle"} {
		if !got[want] {
			t.Errorf("no failure reported for %s (got %v)", want, errs)
		}
	}
	if !strings.Contains(errors.Join(errs...).Error(), "permission denied") {
		t.Errorf("errors %v do not say why", errs)
	}
}

func TestDiscoverCapKeepsPartialResult(t *testing.T) {
	f, client := newFake(t)
	f.ok("LIST secret/metadata", keys("a", "b", "c", "d"))
	for _, k := range []string{"a", "b", "c", "d"} {
		f.ok("GET secret/metadata/"+k, kvMeta(map[string]any{"service": k}))
	}
	bs, errs := Discover(context.Background(), client, Config{KV: []KVSource{{Mount: "secret"}}, MaxVisits: 3})
	if len(bs) != 2 {
		t.Fatalf("got %d bindings, want 2 (folder + 2 secrets = 3 visits)", len(bs))
	}
	if len(errs) != 1 || !errors.Is(errs[0], ErrCapReached) || !strings.Contains(errs[0].Error(), "stopped after 3 items") {
		t.Fatalf("errors %v, want one saying the cap of 3 was reached", errs)
	}
	if sourceErrors(t, errs)[0].Failed {
		t.Error("a capped source is not a failed one: its partial result is usable")
	}
	if n := f.count("GET secret/metadata/c"); n != 0 {
		t.Errorf("read past the cap: %d", n)
	}
}

func TestDiscoverBadTagSkipsTheSecretOnly(t *testing.T) {
	f, client := newFake(t)
	f.ok("LIST secret/metadata", keys("a", "b"))
	f.ok("GET secret/metadata/a", kvMeta(map[string]any{"service": "a", "rotation_action": "explode"}))
	f.ok("GET secret/metadata/b", kvMeta(map[string]any{"service": "b", "rotation_action": "Revoke"}))
	bs, errs := Discover(context.Background(), client, Config{KV: []KVSource{{Mount: "secret"}}})
	if len(bs) != 1 || bs[0].Credential.Path != "b" || bs[0].Credential.Action != events.ActionRevoke {
		t.Fatalf("bindings %+v, want b with action revoke", bs)
	}
	ses := sourceErrors(t, errs)
	if len(ses) != 1 || ses[0].Failed || !strings.Contains(ses[0].Error(), "secret/a skipped") {
		t.Fatalf("errors %v, want one item problem about secret/a", errs)
	}
}

// testCert makes a PEM certificate.
func testCert(t *testing.T, serial int64, cn string, dns []string, ips []net.IP, notAfter time.Time, ca bool) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn}, DNSNames: dns, IPAddresses: ips,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: notAfter, IsCA: ca, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestDiscoverPKI(t *testing.T) {
	f, client := newFake(t)
	future := time.Now().Add(30 * 24 * time.Hour)
	live := testCert(t, 0x0a1b, "Web1.example.com", []string{"web1.example.com", "web1"}, []net.IP{net.ParseIP("10.0.0.5")}, future, false)
	f.ok("LIST secret/metadata/certs", keys("live", "revoked", "expired", "ca", "bypem", "nothing", "elsewhere"))
	f.ok("GET secret/data/certs/live", map[string]any{"data": map[string]any{"serial": "0A-1B", "private_key": "-----BEGIN PRIVATE KEY-----secret"}})
	f.ok("GET pki/cert/0a:1b", map[string]any{"certificate": live, "revocation_time": 0})
	f.ok("GET secret/data/certs/revoked", map[string]any{"data": map[string]any{"serial": "02"}})
	f.ok("GET pki/cert/02", map[string]any{"certificate": testCert(t, 2, "web2", nil, nil, future, false), "revocation_time": 1700000000})
	f.ok("GET secret/data/certs/expired", map[string]any{"data": map[string]any{"serial": "03"}})
	f.ok("GET pki/cert/03", map[string]any{"certificate": testCert(t, 3, "web3", nil, nil, time.Now().Add(-time.Hour), false), "revocation_time": 0})
	f.ok("GET secret/data/certs/ca", map[string]any{"data": map[string]any{"serial": "04"}})
	f.ok("GET pki/cert/04", map[string]any{"certificate": testCert(t, 4, "root", nil, nil, future, true), "revocation_time": 0})
	bypem := testCert(t, 5, "api.example.com", nil, nil, future, false)
	f.ok("GET secret/data/certs/bypem", map[string]any{"data": map[string]any{"certificate": bypem}})
	f.ok("GET pki/cert/05", map[string]any{"certificate": bypem, "revocation_time": 0})
	f.ok("GET secret/data/certs/nothing", map[string]any{"data": map[string]any{"note": "x"}})
	f.ok("GET secret/data/certs/elsewhere", map[string]any{"data": map[string]any{"serial": "06"}}) // not on pki: 404

	bs, errs := Discover(context.Background(), client, Config{PKI: []PKISource{{Mount: "pki", Role: "web", DeliverTo: "secret/certs"}}})
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	got := byName(bs)
	if len(bs) != 2 {
		t.Fatalf("bindings %+v, want live and bypem", bs)
	}
	b, ok := got["discovery:pki:pki/cert/0a:1b"]
	if !ok {
		t.Fatalf("no binding for serial 0a:1b in %v", got)
	}
	if want := []string{"10.0.0.5", "web1", "web1.example.com"}; !reflect.DeepEqual(b.Selectors[discovery.KeyHost], want) {
		t.Errorf("hosts %v, want %v", b.Selectors[discovery.KeyHost], want)
	}
	wantRef := events.CredentialRef{Kind: "pki", Mount: "pki", Path: "web", Options: map[string]string{"serial": "0a:1b", "deliver_to": "secret/certs/live"}}
	if !reflect.DeepEqual(b.Credential, wantRef) {
		t.Errorf("credential %+v, want %+v", b.Credential, wantRef)
	}
	if p := got["discovery:pki:pki/cert/05"]; p.Credential.Options["deliver_to"] != "secret/certs/bypem" {
		t.Errorf("certificate found by its PEM: %+v", p)
	}
	for _, b := range bs {
		if strings.Contains(b.Name+b.Source+strings.Join(b.Selectors[discovery.KeyHost], ",")+mapText(b.Credential.Options), "PRIVATE KEY") {
			t.Errorf("binding %s carries the private key", b.Name)
		}
	}
}

func mapText(m map[string]string) string {
	var b strings.Builder
	for k, v := range m {
		b.WriteString(k + "=" + v + " ")
	}
	return b.String()
}

func TestDiscoverAppRoleAndTokens(t *testing.T) {
	f, client := newFake(t)
	f.ok("LIST auth/approle/role", keys("web", "batch"))
	f.ok("LIST auth/approle/role/web/secret-id", keys("acc-1", "acc-gone", "acc-expired"))
	f.ok("PUT auth/approle/role/web/secret-id-accessor/lookup acc-1", map[string]any{
		"secret_id_accessor": "acc-1",
		"creation_time":      time.Now().Format(time.RFC3339Nano),
		"expiration_time":    "0001-01-01T00:00:00Z",
		"metadata":           map[string]any{"service": "web", "deliver_to": "secret/approle/web", "rotation_round": "2", "change_id": "CHG1", "rotation_wrap_ttl": "10m"},
	})
	f.fail("PUT auth/approle/role/web/secret-id-accessor/lookup acc-gone", 404, `failed to find accessor entry for secret_id_accessor: "acc-gone"`)
	f.ok("PUT auth/approle/role/web/secret-id-accessor/lookup acc-expired", map[string]any{
		"expiration_time": time.Now().Add(-time.Minute).Format(time.RFC3339Nano),
		"metadata":        map[string]any{"service": "web"},
	})
	f.ok("LIST auth/approle/role/batch/secret-id", keys("acc-2"))
	f.ok("PUT auth/approle/role/batch/secret-id-accessor/lookup acc-2", map[string]any{"metadata": map[string]any{}})

	f.ok("LIST auth/token/accessors", keys("tok-1", "tok-2", "tok-3", "tok-gone"))
	f.ok("PUT auth/token/lookup-accessor tok-1", map[string]any{"path": "auth/token/create", "meta": map[string]any{"host": "web1", "identity": "svc-web"}, "id": ""})
	f.ok("PUT auth/token/lookup-accessor tok-2", map[string]any{"path": "auth/approle/login", "meta": map[string]any{"service": "web"}})
	f.ok("PUT auth/token/lookup-accessor tok-3", map[string]any{"path": "auth/token/create", "meta": nil})
	f.fail("PUT auth/token/lookup-accessor tok-gone", 400, "invalid accessor")

	bs, errs := Discover(context.Background(), client, Config{AppRole: []AppRoleSource{{Mount: "approle"}}, Tokens: true})
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	if len(bs) != 2 {
		t.Fatalf("bindings %+v, want role web and token tok-1", bs)
	}
	ar, tok := bs[0], bs[1]
	wantAR := events.CredentialRef{Kind: "approle-secret-id", Mount: "approle", Path: "web", Options: map[string]string{
		"deliver_to": "secret/approle/web", "accessor": "acc-1", "wrap_ttl": "10m",
		"metadata": `{"deliver_to":"secret/approle/web","rotation_wrap_ttl":"10m","service":"web"}`,
	}}
	if !reflect.DeepEqual(ar.Credential, wantAR) || ar.Source != "discovery:approle:approle/role/web" {
		t.Errorf("approle binding %+v\nwant credential %+v", ar, wantAR)
	}
	wantTok := events.CredentialRef{Kind: "token", Mount: "token", Path: "tok-1", Action: events.ActionRevoke}
	if !reflect.DeepEqual(tok.Credential, wantTok) || tok.Source != "discovery:token:token/accessors/tok-1" {
		t.Errorf("token binding %+v, want credential %+v", tok, wantTok)
	}
	if want := (discovery.Selectors{discovery.KeyHost: {"web1"}, discovery.KeyIdentity: {"svc-web"}}); !reflect.DeepEqual(tok.Selectors, want) {
		t.Errorf("token selectors %v, want %v", tok.Selectors, want)
	}
}

func TestDiscoverAppRoleSeveralSecretIDsLeaveTheAccessorToDeliverTo(t *testing.T) {
	f, client := newFake(t)
	f.ok("LIST auth/approle/role", keys("web"))
	f.ok("LIST auth/approle/role/web/secret-id", keys("old", "new"))
	meta := map[string]any{"service": "web", "deliver_to": "secret/approle/web"}
	f.ok("PUT auth/approle/role/web/secret-id-accessor/lookup old", map[string]any{"creation_time": "2024-01-01T00:00:00Z", "metadata": meta})
	f.ok("PUT auth/approle/role/web/secret-id-accessor/lookup new", map[string]any{"creation_time": "2024-02-01T00:00:00Z", "metadata": meta})
	bs, errs := Discover(context.Background(), client, Config{AppRole: []AppRoleSource{{Mount: "approle"}}})
	if len(errs) != 0 || len(bs) != 1 {
		t.Fatalf("bindings %+v errors %v, want one binding", bs, errs)
	}
	if _, set := bs[0].Credential.Options["accessor"]; set {
		t.Errorf("option accessor set with two tagged secret ids: %v", bs[0].Credential.Options)
	}
}

func TestDiscoverDatabase(t *testing.T) {
	f, client := newFake(t)
	f.ok("LIST database/static-roles", keys("app", "report"))
	f.ok("GET database/static-roles/app", map[string]any{"db_name": "pg", "username": "App_User"})
	f.ok("GET database/static-roles/report", map[string]any{"db_name": "pg", "username": "reporter"})
	f.ok("GET database/config/pg", map[string]any{"connection_details": map[string]any{
		"connection_url": "postgresql://{{username}}:{{password}}@DB1.internal:5432/app?sslmode=disable"}})
	bs, errs := Discover(context.Background(), client, Config{Database: []DatabaseSource{{Mount: "database"}}})
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	if len(bs) != 6 {
		t.Fatalf("got %d bindings, want 3 per role: %+v", len(bs), bs)
	}
	if n := f.count("GET database/config/pg"); n != 1 {
		t.Errorf("connection read %d times, want once", n)
	}
	ix := discovery.NewIndex(bs)
	for _, tc := range []struct {
		targets events.Targets
		want    []string
	}{
		{events.Targets{Identities: []string{"app_user"}}, []string{"database-static-role:database/app"}},
		{events.Targets{ConfigurationItems: []string{"PG"}}, []string{"database-static-role:database/app", "database-static-role:database/report"}},
		{events.Targets{Hosts: []string{"db1.internal"}}, []string{"database-static-role:database/app", "database-static-role:database/report"}},
		{events.Targets{Hosts: []string{"db2"}}, nil},
	} {
		var got []string
		for _, m := range ix.Resolve(events.Change{Targets: tc.targets}) {
			got = append(got, m.Credential.ID())
			if m.Source != "discovery:database:database/static-roles/"+m.Credential.Path {
				t.Errorf("match source %q", m.Source)
			}
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("targets %+v resolved %v, want %v", tc.targets, got, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := Config{
		KV:        []KVSource{{Mount: "secret"}, {Mount: "secret/"}, {Mount: "kv", Prefix: "a/../b"}},
		PKI:       []PKISource{{Mount: "pki", Role: "web"}, {Mount: "pki", Role: "a/b", DeliverTo: "secret/x"}},
		Schedule:  "61 * * * *",
		MaxVisits: -1,
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid configuration accepted")
	}
	for _, want := range []string{"kv-v2:secret is listed twice", "prefix \"a/../b\"", "deliver_to \"\"", "role \"a/b\"", "above maximum", "max_visits -1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if err := (Config{KV: []KVSource{{Mount: "secret", Prefix: "apps"}}, Schedule: "@hourly"}).Validate(); err != nil {
		t.Errorf("valid configuration refused: %v", err)
	}
}
