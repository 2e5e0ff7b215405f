package pki

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/rotators"
)

// certRecord is a certificate as the PKI mount stores it, with its revocation state.
type certRecord struct {
	cert *x509.Certificate
	// revokedAt is zero while the certificate is not revoked.
	revokedAt time.Time
	// issuerID names the issuer that revoked it; empty before revocation.
	issuerID string
}

// readCert reads <mount>/cert/<serial>. It returns nil and no error when the mount has no such
// certificate.
func (r *Rotator) readCert(ctx context.Context, mount, serial string) (*certRecord, error) {
	s, err := r.client.Logical().ReadWithContext(ctx, mount+"/cert/"+serial)
	if err != nil {
		return nil, classify(fmt.Sprintf("read certificate %s from %s", serial, mount), err)
	}
	if s == nil || s.Data == nil {
		return nil, nil
	}
	pemText, _ := s.Data["certificate"].(string)
	c, err := parseCertPEM(pemText)
	if err != nil {
		return nil, rotators.Permanent(fmt.Errorf("certificate %s on %s: %w", serial, mount, err))
	}
	rec := &certRecord{cert: c}
	rec.issuerID, _ = s.Data["issuer_id"].(string)
	if ts := int64Of(s.Data["revocation_time"]); ts != 0 {
		rec.revokedAt = time.Unix(ts, 0).UTC()
		if rfc, _ := s.Data["revocation_time_rfc3339"].(string); rfc != "" {
			if t, err := time.Parse(time.RFC3339Nano, rfc); err == nil {
				rec.revokedAt = t.UTC()
			}
		}
	}
	return rec, nil
}

// issued is a certificate freshly issued by Vault. keyPEM is the only copy of its private key:
// it goes to the consumer's KV secret and nowhere else.
type issued struct {
	serial    string
	cert      *x509.Certificate
	certPEM   string
	keyPEM    string
	issuingCA string
	chain     string
}

// issue asks <mount>/issue/<role> for a certificate with the names n.
func (r *Rotator) issue(ctx context.Context, mount, role string, n names, ttl string) (*issued, error) {
	data := map[string]any{"format": "pem"}
	if n.CN != "" {
		data["common_name"] = n.CN
		if !slices.Contains(n.DNS, strings.ToLower(n.CN)) && !slices.Contains(n.Email, strings.ToLower(n.CN)) {
			// The old certificate did not repeat its CN as a SAN; neither may the new one.
			data["exclude_cn_from_sans"] = true
		}
	}
	if alt := append(append([]string{}, n.DNS...), n.Email...); len(alt) > 0 {
		data["alt_names"] = strings.Join(alt, ",")
	}
	if len(n.IP) > 0 {
		data["ip_sans"] = strings.Join(n.IP, ",")
	}
	if len(n.URI) > 0 {
		data["uri_sans"] = strings.Join(n.URI, ",")
	}
	if ttl != "" {
		data["ttl"] = ttl
	}
	s, err := r.client.Logical().WriteWithContext(ctx, mount+"/issue/"+role, data)
	if err != nil {
		return nil, classify(fmt.Sprintf("issue a certificate from %s/issue/%s", mount, role), err)
	}
	if s == nil || s.Data == nil {
		return nil, rotators.Retryable(fmt.Errorf("issue from %s/issue/%s: empty response", mount, role))
	}
	out := &issued{}
	out.certPEM, _ = s.Data["certificate"].(string)
	out.keyPEM, _ = s.Data["private_key"].(string)
	out.issuingCA, _ = s.Data["issuing_ca"].(string)
	out.chain = joinChain(s.Data["ca_chain"])
	c, err := parseCertPEM(out.certPEM)
	if err != nil {
		return nil, rotators.Permanent(fmt.Errorf("certificate issued by %s/issue/%s: %w", mount, role, err))
	}
	if out.keyPEM == "" {
		return nil, rotators.Permanent(fmt.Errorf("%s/issue/%s returned no private key", mount, role))
	}
	out.cert, out.serial = c, serialOf(c)
	return out, nil
}

// revoke asks <mount>/revoke to revoke serial. It reports whether Vault refused to revoke
// because the certificate already expired (Vault answers that with a warning, not an error).
func (r *Rotator) revoke(ctx context.Context, mount, serial string) (expired bool, err error) {
	s, err := r.client.Logical().WriteWithContext(ctx, mount+"/revoke", map[string]any{"serial_number": serial})
	if err != nil {
		return false, classify(fmt.Sprintf("revoke certificate %s on %s", serial, mount), err)
	}
	if s != nil {
		for _, w := range s.Warnings {
			if strings.Contains(w, "already expired") {
				return true, nil
			}
		}
	}
	return false, nil
}

// issuerChain returns the certificate chain (issuer first) of the issuer that role issues from.
func (r *Rotator) issuerChain(ctx context.Context, mount, role string) ([]*x509.Certificate, error) {
	ref := "default"
	rs, err := r.client.Logical().ReadWithContext(ctx, mount+"/roles/"+role)
	if err != nil {
		return nil, classify(fmt.Sprintf("read role %s/roles/%s", mount, role), err)
	}
	if rs == nil || rs.Data == nil {
		return nil, rotators.Permanent(fmt.Errorf("role %s/roles/%s does not exist", mount, role))
	}
	if v, _ := rs.Data["issuer_ref"].(string); v != "" {
		ref = v
	}
	return r.issuerCerts(ctx, mount, ref)
}

// issuerCerts reads <mount>/issuer/<ref>/json: the issuer's certificate followed by its chain.
func (r *Rotator) issuerCerts(ctx context.Context, mount, ref string) ([]*x509.Certificate, error) {
	s, err := r.client.Logical().ReadWithContext(ctx, mount+"/issuer/"+ref+"/json")
	if err != nil {
		return nil, classify(fmt.Sprintf("read issuer %s of %s", ref, mount), err)
	}
	if s == nil || s.Data == nil {
		return nil, rotators.Permanent(fmt.Errorf("issuer %s of %s does not exist", ref, mount))
	}
	pemText, _ := s.Data["certificate"].(string)
	certs, err := parseCertsPEM(pemText + "\n" + joinChain(s.Data["ca_chain"]))
	if err != nil || len(certs) == 0 {
		return nil, rotators.Permanent(fmt.Errorf("issuer %s of %s has no readable certificate: %w", ref, mount, err))
	}
	return certs, nil
}

// crl reads the CRL of issuerID (or the mount's default CRL when issuerID is empty), as Vault
// publishes it to relying parties.
func (r *Rotator) crl(ctx context.Context, mount, issuerID string) (*x509.RevocationList, error) {
	path, field := mount+"/cert/crl", "certificate"
	if issuerID != "" {
		path, field = mount+"/issuer/"+issuerID+"/crl", "crl"
	}
	s, err := r.client.Logical().ReadWithContext(ctx, path)
	if err != nil {
		return nil, classify("read CRL "+path, err)
	}
	if s == nil || s.Data == nil {
		return nil, rotators.Retryable(fmt.Errorf("%s: no CRL published", path))
	}
	pemText, _ := s.Data[field].(string)
	der := pemBlock(pemText, "X509 CRL")
	if der == nil {
		return nil, rotators.Retryable(fmt.Errorf("%s: no CRL published", path))
	}
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, rotators.Retryable(fmt.Errorf("%s: parse CRL: %w", path, err))
	}
	return list, nil
}

// rotateCRL asks Vault to rebuild the mount's CRLs now (<mount>/crl/rotate), for mounts that
// rebuild them only periodically (auto_rebuild).
func (r *Rotator) rotateCRL(ctx context.Context, mount string) error {
	if _, err := r.client.Logical().ReadWithContext(ctx, mount+"/crl/rotate"); err != nil {
		return classify("rebuild the CRL of "+mount, err)
	}
	return nil
}

// kvVersion is one version of a KV v2 secret.
type kvVersion struct {
	version int
	created time.Time
	data    map[string]any
}

// currentKV returns the current version number of the deliver_to secret, 0 when it does not
// exist.
func (r *Rotator) currentKV(ctx context.Context, t target) (int, error) {
	meta, err := r.client.KVv2(t.mount).GetMetadata(ctx, t.path)
	if errors.Is(err, vault.ErrSecretNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, classify("read metadata of "+t.String(), err)
	}
	return meta.CurrentVersion, nil
}

// readKV reads one version of the deliver_to secret; a deleted or destroyed version has no data.
func (r *Rotator) readKV(ctx context.Context, t target, version int) (*kvVersion, error) {
	s, err := r.client.KVv2(t.mount).GetVersion(ctx, t.path, version)
	if errors.Is(err, vault.ErrSecretNotFound) {
		return &kvVersion{version: version}, nil
	}
	if err != nil {
		return nil, classify(fmt.Sprintf("read version %d of %s", version, t), err)
	}
	out := &kvVersion{version: version, data: s.Data}
	if s.VersionMetadata != nil {
		out.created = s.VersionMetadata.CreatedTime
	}
	return out, nil
}

// classify wraps err with what was being done and marks it retryable or permanent.
func classify(what string, err error) error {
	wrapped := fmt.Errorf("%s: %w", what, err)
	if errors.Is(err, vault.ErrSecretNotFound) {
		return rotators.Permanent(wrapped)
	}
	if rotators.IsRetryable(err) {
		return rotators.Retryable(wrapped)
	}
	return rotators.Permanent(wrapped)
}

func joinChain(v any) string {
	switch c := v.(type) {
	case string:
		return c
	case []any:
		parts := make([]string, 0, len(c))
		for _, p := range c {
			if s, ok := p.(string); ok {
				parts = append(parts, strings.TrimSpace(s))
			}
		}
		return strings.Join(parts, "\n")
	case []string:
		return strings.Join(c, "\n")
	}
	return ""
}

func int64Of(v any) int64 {
	switch n := v.(type) {
	case json.Number:
		i, _ := n.Int64()
		return i
	case float64:
		return int64(n)
	case int64:
		return n
	case int:
		return int64(n)
	}
	return 0
}
