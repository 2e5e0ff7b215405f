package pki

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/rotation-agent/rotation-agent/rotators"
)

// errVerify marks a delivered certificate that does not work.
var errVerify = errors.New("verification failed")

// Verify reads what the consumer reads — the current version of the deliver_to secret — and
// proves it works: its certificate parses, is the one Vault issued
// under the new serial, names the same CN and SANs as the old one, is valid now, and chains to
// the role's issuer in Vault; its issuing_ca is that issuer; its private key matches the
// certificate's public key.
func (r *Rotator) Verify(ctx context.Context, req rotators.Request, st *rotators.State) error {
	ref := req.Credential
	t, _, err := r.check(ref)
	if err != nil {
		return err
	}
	want, err := decodeNames(st.Note(noteOldNames))
	if err != nil {
		return rotators.Permanent(fmt.Errorf("state of %s has no certificate names: %w", ref.ID(), err))
	}
	newSerial := st.Note(noteNewSerial)
	delivered, err := strconv.Atoi(st.Note(noteDelivered))
	if err != nil || newSerial == "" {
		return rotators.Permanent(fmt.Errorf("state of %s has no delivered certificate", ref.ID()))
	}
	fail := func(format string, args ...any) error {
		return rotators.Retryable(fmt.Errorf("%w: %s: %s", errVerify, ref.ID(), fmt.Sprintf(format, args...)))
	}

	now, err := r.currentKV(ctx, t)
	if err != nil {
		return err
	}
	if now < delivered {
		return fail("%s is at version %d, before the delivered version %d", t, now, delivered)
	}
	// A later version is fine as long as it still holds a working new certificate: what
	// matters is what the consumer reads.
	v, err := r.readKV(ctx, t, now)
	if err != nil {
		return err
	}
	leaf, err := parseCertPEM(stringField(v.data, FieldCertificate))
	if err != nil {
		return fail("%s field %s: %v", t, FieldCertificate, err)
	}
	if got := serialOf(leaf); got != newSerial || deliveredSerial(v.data) != newSerial {
		return fail("%s version %d holds certificate %s (serial field %q), not the new serial %s", t, now, got, stringField(v.data, FieldSerial), newSerial)
	}
	rec, err := r.readCert(ctx, mountOf(ref), newSerial)
	if err != nil {
		return err
	}
	if rec == nil || !rec.cert.Equal(leaf) {
		return fail("the delivered certificate is not the one %s issued under serial %s", mountOf(ref), newSerial)
	}
	if !rec.revokedAt.IsZero() {
		return fail("certificate %s was revoked at %s", newSerial, rec.revokedAt.Format(time.RFC3339))
	}
	if got := namesOf(leaf); !got.equal(want) {
		return fail("the new certificate names %s, the old one %s", got, want)
	}
	at := req.Now()
	if at.Before(leaf.NotBefore) || at.After(leaf.NotAfter) {
		return fail("the new certificate is valid from %s to %s, not at %s",
			leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
	}
	vaultChain, err := r.issuerChain(ctx, mountOf(ref), roleOf(ref))
	if err != nil {
		return err
	}
	deliveredChain, err := parseCertsPEM(stringField(v.data, FieldIssuingCA) + "\n" + stringField(v.data, FieldCAChain))
	if err != nil {
		return fail("%s fields %s/%s: %v", t, FieldIssuingCA, FieldCAChain, err)
	}
	signer, err := verifyChain(leaf, vaultChain, deliveredChain, at)
	if err != nil {
		return fail("the new certificate does not chain to the issuer of role %s: %v", roleOf(ref), err)
	}
	issuingCA, err := parseCertPEM(stringField(v.data, FieldIssuingCA))
	if err != nil || !issuingCA.Equal(signer) {
		return fail("%s field %s is not the certificate that issued the new one", t, FieldIssuingCA)
	}
	ok, err := keyMatches(leaf, stringField(v.data, FieldPrivateKey))
	if err != nil {
		return fail("%s field %s: %v", t, FieldPrivateKey, err)
	}
	if !ok {
		return fail("the private key in %s does not match the new certificate's public key", t)
	}
	return nil
}
