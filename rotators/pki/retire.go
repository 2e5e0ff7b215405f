package pki

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// Retire revokes the old certificate and checks that it is really dead for relying parties:
// Vault shows a revocation time for the serial and the serial is on the issuer's CRL, whose
// signature checks against the issuer. A mount that rebuilds its CRL only periodically is asked
// to rebuild it (crl/rotate). A certificate that already expired is not revoked (Vault refuses
// to list expired certificates on a CRL) and is reported as expired.
func (r *Rotator) Retire(ctx context.Context, req rotators.Request, st *rotators.State) error {
	ref := req.Credential
	mount := mountOf(ref)
	old := st.Note(noteOldSerial)
	if old == "" {
		return rotators.Permanent(fmt.Errorf("state of %s has no old serial", ref.ID()))
	}
	if st.After == nil {
		st.After = events.Fingerprint{}
	}
	st.After["old_serial"] = old
	rec, err := r.readCert(ctx, mount, old)
	if err != nil {
		return err
	}
	if rec == nil {
		// Tidy removes certificates some time after they expire.
		if notAfter, perr := time.Parse(time.RFC3339, st.Note(noteOldNotAfter)); perr == nil && req.Now().After(notAfter) {
			st.After["old_serial_state"] = "expired"
			return nil
		}
		return rotators.Permanent(fmt.Errorf("%s: old certificate %s is no longer on mount %s", ref.ID(), old, mount))
	}
	if rec.revokedAt.IsZero() {
		expired, err := r.revoke(ctx, mount, old)
		if err != nil {
			return err
		}
		if expired {
			st.After["old_serial_state"] = "expired"
			return nil
		}
		if rec, err = r.readCert(ctx, mount, old); err != nil {
			return err
		}
		if rec == nil || rec.revokedAt.IsZero() {
			return rotators.Retryable(fmt.Errorf("%w: %s: certificate %s shows no revocation time after revoking it", errVerify, ref.ID(), old))
		}
	}
	list, err := r.crl(ctx, mount, rec.issuerID)
	if err != nil {
		return err
	}
	if !onCRL(list, old) {
		if err := r.rotateCRL(ctx, mount); err != nil {
			return err
		}
		if list, err = r.crl(ctx, mount, rec.issuerID); err != nil {
			return err
		}
		if !onCRL(list, old) {
			return rotators.Retryable(fmt.Errorf("%w: %s: certificate %s is revoked but not on the CRL of %s even after a rebuild (is the CRL disabled in %s/config/crl?)",
				errVerify, ref.ID(), old, mount, mount))
		}
	}
	if rec.issuerID != "" {
		chain, err := r.issuerCerts(ctx, mount, rec.issuerID)
		if err != nil {
			return err
		}
		if err := list.CheckSignatureFrom(chain[0]); err != nil {
			return rotators.Retryable(fmt.Errorf("%w: %s: the CRL listing %s is not signed by issuer %s: %w", errVerify, ref.ID(), old, rec.issuerID, err))
		}
	}
	st.After["old_serial_state"] = "revoked"
	st.After["old_revoked_at"] = rec.revokedAt.UTC().Format(time.RFC3339)
	if list.Number != nil {
		st.After["crl_number"] = list.Number.String()
	}
	return nil
}

// onCRL reports whether serial is listed on list.
func onCRL(list *x509.RevocationList, serial string) bool {
	want := serialInt(serial)
	for _, e := range list.RevokedCertificateEntries {
		if e.SerialNumber != nil && e.SerialNumber.Cmp(want) == 0 {
			return true
		}
	}
	return false
}
