package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

// testCA is a throwaway CA for unit tests.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  string
}

func newTestCA(t *testing.T, cn string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

// leaf issues a certificate for tmpl's names with a new EC key; it returns the certificate's
// PEM and the key's PEM (SEC 1).
func (ca *testCA) leaf(t *testing.T, serial int64, tmpl *x509.Certificate) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(serial)
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
}

func TestNormalizeSerial(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"1a:2b:3c", "1a:2b:3c", ""},
		{"1A-2B-3C", "1a:2b:3c", ""},
		{" 1a2b3c ", "1a:2b:3c", ""},
		{"a:2b", "0a:2b", ""},
		{"abc", "0a:bc", ""},
		{"00:7f", "7f", ""}, // Vault shows big.Int bytes: no leading zero byte
		{"", "", "empty"},
		{"zz:11", "", "not hexadecimal"},
		{"1a;2b", "", "not hexadecimal"},
	}
	for _, tc := range tests {
		got, err := normalizeSerial(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("normalizeSerial(%q) = %q, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("normalizeSerial(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	c := &x509.Certificate{SerialNumber: new(big.Int).SetBytes([]byte{0x0a, 0xff, 0x01})}
	if got := serialOf(c); got != "0a:ff:01" {
		t.Errorf("serialOf = %q", got)
	}
	if serialInt("0a:ff:01").Cmp(c.SerialNumber) != 0 {
		t.Error("serialInt does not round-trip")
	}
}

func TestParseTarget(t *testing.T) {
	for in, want := range map[string]string{
		"secret/app/tls":    "secret/app/tls",
		"/secret/app/tls/":  "secret/app/tls",
		"kv/team/a/b/cert ": "kv/team/a/b/cert",
	} {
		got, err := parseTarget(in)
		if err != nil || got.String() != want || got.mount != strings.SplitN(want, "/", 2)[0] {
			t.Errorf("parseTarget(%q) = %+v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "secret", "secret/", "/app"} {
		if _, err := parseTarget(bad); err == nil || !strings.Contains(err.Error(), OptionDeliverTo) {
			t.Errorf("parseTarget(%q) error = %v, want one naming %s", bad, err, OptionDeliverTo)
		}
	}
}

func TestNamesOfAndEqual(t *testing.T) {
	u, _ := url.Parse("spiffe://example.test/api")
	c := &x509.Certificate{
		Subject:  pkix.Name{CommonName: "api.example.test"},
		DNSNames: []string{"WWW.example.test", "api.example.test"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.7")},
		URIs: []*url.URL{u}, EmailAddresses: []string{"Ops@example.test"},
	}
	n := namesOf(c)
	if n.CN != "api.example.test" || strings.Join(n.DNS, ",") != "api.example.test,www.example.test" ||
		n.IP[0] != "10.0.0.7" || n.URI[0] != "spiffe://example.test/api" || n.Email[0] != "ops@example.test" {
		t.Fatalf("namesOf = %+v", n)
	}
	back, err := decodeNames(n.encode())
	if err != nil || !back.equal(n) {
		t.Fatalf("names do not round-trip through a note: %+v, %v", back, err)
	}
	for name, mod := range map[string]func(*names){
		"cn":    func(m *names) { m.CN = "other" },
		"dns":   func(m *names) { m.DNS = m.DNS[:1] },
		"ip":    func(m *names) { m.IP = []string{"10.0.0.8"} },
		"uri":   func(m *names) { m.URI = nil },
		"email": func(m *names) { m.Email = append(m.Email, "x@example.test") },
	} {
		m, _ := decodeNames(n.encode())
		mod(&m)
		if m.equal(n) {
			t.Errorf("names differing in %s compare equal", name)
		}
	}
	for _, want := range []string{`CN="api.example.test"`, "DNS=api.example.test,www.example.test", "IP=10.0.0.7", "URI=spiffe://", "email=ops@"} {
		if !strings.Contains(n.String(), want) {
			t.Errorf("names.String() = %q lacks %q", n, want)
		}
	}
	if _, err := decodeNames(""); err == nil {
		t.Error("decodeNames accepted an empty note")
	}
}

func TestKeyMatches(t *testing.T) {
	ca := newTestCA(t, "CA")
	certPEM, keyPEM := ca.leaf(t, 2, &x509.Certificate{Subject: pkix.Name{CommonName: "a.example.test"}})
	_, otherKey := ca.leaf(t, 3, &x509.Certificate{Subject: pkix.Name{CommonName: "a.example.test"}})
	c, err := parseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := keyMatches(c, keyPEM); !ok || err != nil {
		t.Errorf("own key: %v, %v", ok, err)
	}
	if ok, err := keyMatches(c, otherKey); ok || err != nil {
		t.Errorf("other key: %v, %v; want false", ok, err)
	}

	// Every PEM key form Vault can return parses.
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(edKey)
	for name, p := range map[string]string{
		"pkcs1":  string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})),
		"pkcs8":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})),
		"sec1":   keyPEM,
		"pkcs8r": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: mustPKCS8(t, rsaKey)})),
	} {
		if _, err := publicKeyOf(p); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A broken key gives a fixed message that quotes nothing of the input.
	broken := "-----BEGIN EC PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcy1jYW5hcnk=\n-----END EC PRIVATE KEY-----\n"
	for _, p := range []string{broken, "not pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("x")}))} {
		_, err := keyMatches(c, p)
		if !errors.Is(err, errKey) {
			t.Errorf("keyMatches(%.20q) error = %v, want errKey", p, err)
		}
	}
}

func mustPKCS8(t *testing.T, k any) []byte {
	t.Helper()
	b, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyChain(t *testing.T) {
	ca := newTestCA(t, "Root")
	other := newTestCA(t, "Other root")
	certPEM, _ := ca.leaf(t, 5, &x509.Certificate{Subject: pkix.Name{CommonName: "a.example.test"}, DNSNames: []string{"a.example.test"}})
	leaf, _ := parseCertPEM(certPEM)
	signer, err := verifyChain(leaf, []*x509.Certificate{ca.cert}, nil, time.Now())
	if err != nil || !signer.Equal(ca.cert) {
		t.Fatalf("verifyChain = %v, %v", signer, err)
	}
	if _, err := verifyChain(leaf, []*x509.Certificate{other.cert}, []*x509.Certificate{ca.cert}, time.Now()); err == nil {
		t.Error("a leaf chained to a CA that is not Vault's issuer was accepted (delivered chain must not add roots)")
	}
	if _, err := verifyChain(leaf, []*x509.Certificate{ca.cert}, nil, time.Now().Add(48*time.Hour)); err == nil {
		t.Error("an expired chain was accepted")
	}
	if _, err := verifyChain(leaf, nil, nil, time.Now()); err == nil {
		t.Error("an empty issuer chain was accepted")
	}
}

func TestParseCertsPEMSkipsOtherBlocksAndRejectsGarbage(t *testing.T) {
	ca := newTestCA(t, "Root")
	mixed := "junk\n" + string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1}})) + ca.pem + ca.pem
	certs, err := parseCertsPEM(mixed)
	if err != nil || len(certs) != 2 {
		t.Errorf("parseCertsPEM = %d certs, %v; want 2", len(certs), err)
	}
	if _, err := parseCertPEM("nothing"); err == nil {
		t.Error("parseCertPEM accepted text without a certificate")
	}
	bad := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("garbage")}))
	if _, err := parseCertsPEM(bad); err == nil {
		t.Error("parseCertsPEM accepted a corrupt certificate")
	}
}

func TestOnCRL(t *testing.T) {
	ca := newTestCA(t, "Root")
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(7), ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: big.NewInt(0x0aff01), RevocationTime: time.Now()}},
	}, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if !onCRL(list, "0a:ff:01") || onCRL(list, "0a:ff:02") {
		t.Error("onCRL does not match serials by value")
	}
}
