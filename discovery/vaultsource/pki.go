package vaultsource

import (
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/rotation-agent/rotation-agent/discovery"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators/pki"
)

// source validates the entry and returns it as a runnable source.
func (s PKISource) source() source {
	mount, role := cleanMount(s.Mount), strings.TrimSpace(s.Role)
	kvMount, folder, _ := strings.Cut(cleanMount(s.DeliverTo), "/")
	folder = cleanMount(folder)
	src := source{key: SourcePKI + ":" + mount + "/" + role}
	switch {
	case !validName(mount, true):
		src.invalid = fmt.Errorf("pki entry: mount %q is not a mount path", s.Mount)
	case !validName(role, false):
		src.invalid = fmt.Errorf("pki entry for mount %s: role %q is not a role name", mount, s.Role)
	case !validName(kvMount, false) || (folder != "" && !validName(folder, true)):
		src.invalid = fmt.Errorf("pki entry for %s/%s: deliver_to %q: want <kv-v2 mount>/<folder>", mount, role, s.DeliverTo)
	}
	src.run = func(w *walker) ([]discovery.Binding, error) { return discoverPKI(w, mount, role, kvMount, folder) }
	return src
}

// discoverPKI walks the KV v2 folder certificates are delivered to and, for every secret that
// holds the serial of a certificate of the PKI mount that is neither revoked, expired nor a
// CA, returns a pki binding selected by the certificate's hosts (common name, DNS and IP
// subject alternative names). The secret's private key is never kept: only its serial is read
// out of it.
func discoverPKI(w *walker, mount, role, kvMount, folder string) ([]discovery.Binding, error) {
	var out []discovery.Binding
	err := w.walkKV(kvMount, folder, func(path string) error {
		if err := w.visit(); err != nil {
			return err
		}
		serial, err := deliveredSerial(w, kvMount, path)
		if err != nil || serial == "" {
			return err
		}
		if err := w.visit(); err != nil {
			return err
		}
		s, err := w.read(mount + "/cert/" + serial)
		if err != nil {
			return err
		}
		if s == nil || s.Data == nil {
			return nil // not a certificate of this mount
		}
		if num(s.Data["revocation_time"]) != 0 {
			return nil
		}
		cert, err := parseCertPEM(str(s.Data["certificate"]))
		if err != nil {
			w.warn("%s/cert/%s skipped: %w", mount, serial, err)
			return nil
		}
		if cert.IsCA || !cert.NotAfter.After(w.now) {
			return nil
		}
		hosts := certHosts(cert)
		if len(hosts) == 0 {
			w.warn("%s/cert/%s skipped: the certificate names no host", mount, serial)
			return nil
		}
		ref := events.CredentialRef{Kind: pki.Kind, Mount: mount, Path: role, Options: map[string]string{
			pki.OptionSerial:    serial,
			pki.OptionDeliverTo: kvMount + "/" + path,
		}}
		src := SourcePKI + ":" + mount + "/cert/" + serial
		out = append(out, discovery.Binding{
			Name:       SourcePrefix + src,
			Source:     SourcePrefix + src,
			Selectors:  discovery.Selectors{discovery.KeyHost: hosts},
			Credential: ref,
		})
		return nil
	})
	return out, err
}

// deliveredSerial reads a delivery secret's current version and returns the serial it holds
// (field serial, or the serial of field certificate), canonical; "" when it holds none. The
// rest of the secret, its private key included, is dropped at once.
func deliveredSerial(w *walker, kvMount, path string) (string, error) {
	s, err := w.read(kvMount + "/data/" + path)
	if err != nil || s == nil || s.Data == nil {
		return "", err
	}
	data, _ := s.Data["data"].(map[string]any)
	if v := str(data[pki.FieldSerial]); v != "" {
		serial, err := normalizeSerial(v)
		if err != nil {
			w.warn("%s/%s: field %s: %w", kvMount, path, pki.FieldSerial, err)
			return "", nil
		}
		return serial, nil
	}
	if p := str(data[pki.FieldCertificate]); p != "" {
		if c, err := parseCertPEM(p); err == nil {
			return serialOf(c), nil
		}
	}
	return "", nil
}

// normalizeSerial returns a serial as Vault prints it: lower-case hex bytes joined by colons.
// It accepts colons, dashes or no separator.
func normalizeSerial(s string) (string, error) {
	h := strings.ToLower(strings.NewReplacer(":", "", "-", "", " ", "").Replace(strings.TrimSpace(s)))
	if len(h)%2 == 1 {
		h = "0" + h
	}
	b, err := hex.DecodeString(h)
	if err != nil || len(b) == 0 {
		return "", fmt.Errorf("%q is not a certificate serial number", s)
	}
	return hexColons(b), nil
}

func hexColons(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = hex.EncodeToString([]byte{c})
	}
	return strings.Join(parts, ":")
}

// serialOf is a certificate's serial as Vault prints it.
func serialOf(c *x509.Certificate) string { return hexColons(c.SerialNumber.Bytes()) }

// parseCertPEM parses the first certificate of a PEM text.
func parseCertPEM(p string) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// certHosts lists the hosts a certificate names, lower-case and sorted: its common name, DNS
// names and IP addresses.
func certHosts(c *x509.Certificate) []string {
	var out []string
	add := func(s string) {
		if s = strings.ToLower(strings.TrimSpace(s)); s != "" {
			out = appendUnique(out, s)
		}
	}
	add(c.Subject.CommonName)
	for _, d := range c.DNSNames {
		add(d)
	}
	for _, ip := range c.IPAddresses {
		add(ip.String())
	}
	sort.Strings(out)
	return out
}
