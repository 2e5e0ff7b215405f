package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"
)

// names are the identities a certificate is issued for: the subject common name and the
// subject alternative names. The replacement certificate must carry the same ones.
type names struct {
	CN    string   `json:"cn,omitempty"`
	DNS   []string `json:"dns,omitempty"`
	IP    []string `json:"ip,omitempty"`
	URI   []string `json:"uri,omitempty"`
	Email []string `json:"email,omitempty"`
}

// namesOf returns the names of c, each list sorted and DNS names and e-mail addresses lower-cased
// (they compare case-insensitively).
func namesOf(c *x509.Certificate) names {
	n := names{CN: c.Subject.CommonName}
	for _, d := range c.DNSNames {
		n.DNS = append(n.DNS, strings.ToLower(d))
	}
	for _, ip := range c.IPAddresses {
		n.IP = append(n.IP, ip.String())
	}
	for _, u := range c.URIs {
		n.URI = append(n.URI, u.String())
	}
	for _, e := range c.EmailAddresses {
		n.Email = append(n.Email, strings.ToLower(e))
	}
	for _, l := range [][]string{n.DNS, n.IP, n.URI, n.Email} {
		slices.Sort(l)
	}
	return n
}

// equal reports whether n and o name the same identities.
func (n names) equal(o names) bool {
	return n.CN == o.CN && slices.Equal(n.DNS, o.DNS) && slices.Equal(n.IP, o.IP) &&
		slices.Equal(n.URI, o.URI) && slices.Equal(n.Email, o.Email)
}

// String describes n for plans and error messages; names are not secret.
func (n names) String() string {
	parts := []string{fmt.Sprintf("CN=%q", n.CN)}
	for _, l := range []struct {
		label string
		vals  []string
	}{{"DNS", n.DNS}, {"IP", n.IP}, {"URI", n.URI}, {"email", n.Email}} {
		if len(l.vals) > 0 {
			parts = append(parts, l.label+"="+strings.Join(l.vals, ","))
		}
	}
	return strings.Join(parts, " ")
}

// encode returns n as a note value.
func (n names) encode() string {
	raw, _ := json.Marshal(n)
	return string(raw)
}

// decodeNames reads names back from a note value.
func decodeNames(s string) (names, error) {
	var n names
	if s == "" {
		return n, errors.New("no names recorded")
	}
	err := json.Unmarshal([]byte(s), &n)
	return n, err
}

// normalizeSerial turns a serial number as Vault shows it (colon- or dash-separated hex, any
// case, or plain hex) into Vault's canonical form: lower-case hex pairs joined by colons.
func normalizeSerial(s string) (string, error) {
	h := strings.ToLower(strings.NewReplacer(":", "", "-", "", " ", "").Replace(strings.TrimSpace(s)))
	if h == "" {
		return "", errors.New("empty serial number")
	}
	if len(h)%2 == 1 {
		h = "0" + h
	}
	raw, err := hex.DecodeString(h)
	if err != nil {
		return "", fmt.Errorf("serial number %q is not hexadecimal", s)
	}
	return formatSerialBytes(raw), nil
}

// serialOf returns the serial number of c in Vault's canonical form.
func serialOf(c *x509.Certificate) string {
	return formatSerialBytes(c.SerialNumber.Bytes())
}

// serialInt parses a canonical serial number.
func serialInt(s string) *big.Int {
	raw, _ := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	return new(big.Int).SetBytes(raw)
}

func formatSerialBytes(raw []byte) string {
	// Vault formats big.Int.Bytes(), which has no leading zero bytes.
	raw = bytes.TrimLeft(raw, "\x00")
	if len(raw) == 0 {
		raw = []byte{0}
	}
	pairs := make([]string, len(raw))
	for i, b := range raw {
		pairs[i] = hex.EncodeToString([]byte{b})
	}
	return strings.Join(pairs, ":")
}

// parseCertPEM parses the first certificate in a PEM text.
func parseCertPEM(s string) (*x509.Certificate, error) {
	certs, err := parseCertsPEM(s)
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs[0], nil
}

// parseCertsPEM parses every certificate in a PEM text, ignoring other blocks.
func parseCertsPEM(s string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := []byte(s)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return out, nil
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		out = append(out, c)
	}
}

// errKey is returned for a private key that cannot be parsed. Its message never contains the
// key or the parser's detail, which could quote key bytes.
var errKey = errors.New("private key is not a PEM RSA, EC, Ed25519 or PKCS#8 key")

// publicKeyOf parses a PEM private key and returns its public key. The private key itself
// never leaves this function.
func publicKeyOf(keyPEM string) (crypto.PublicKey, error) {
	block, _ := pem.Decode([]byte(keyPEM))
	if block == nil {
		return nil, errKey
	}
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, errKey
	}
	if err != nil {
		return nil, errKey
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k.Public(), nil
	case *ecdsa.PrivateKey:
		return k.Public(), nil
	case ed25519.PrivateKey:
		return k.Public(), nil
	}
	return nil, errKey
}

// keyMatches reports whether the PEM private key belongs to c's public key.
func keyMatches(c *x509.Certificate, keyPEM string) (bool, error) {
	pub, err := publicKeyOf(keyPEM)
	if err != nil {
		return false, err
	}
	eq, ok := pub.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(c.PublicKey), nil
}

// verifyChain checks that leaf chains at now to a root of vaultChain (the issuer's chain as
// Vault holds it: the issuer first, then its parents), with the consumer's delivered chain
// accepted as intermediates. It returns the certificate that signed leaf.
func verifyChain(leaf *x509.Certificate, vaultChain, delivered []*x509.Certificate, now time.Time) (*x509.Certificate, error) {
	if len(vaultChain) == 0 {
		return nil, errors.New("vault returned no issuer certificate")
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	haveRoot := false
	for _, c := range vaultChain {
		if bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil {
			roots.AddCert(c)
			haveRoot = true
		} else {
			inter.AddCert(c)
		}
	}
	if !haveRoot {
		// Vault does not know the root of an imported intermediate: trust the top of what it has.
		roots.AddCert(vaultChain[len(vaultChain)-1])
	}
	for _, c := range delivered {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, err
	}
	if len(chains[0]) < 2 {
		return nil, errors.New("certificate is its own root")
	}
	return chains[0][1], nil
}

// pemBlock returns the bytes of the first PEM block of type typ in s, or nil.
func pemBlock(s, typ string) []byte {
	rest := []byte(s)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil
		}
		if block.Type == typ {
			return block.Bytes
		}
	}
}
