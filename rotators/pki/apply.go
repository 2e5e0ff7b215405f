package pki

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/failpoint"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// errChanged marks a deliver_to secret written by someone else during the rotation.
var errChanged = errors.New("changed outside the agent")

// Apply issues the replacement certificate and delivers it, with its private key, to the
// deliver_to secret with check-and-set on the version Prepare recorded.
//
// The intent to issue is saved first and the new serial right after issuing; the certificate is
// then delivered even if saving its serial failed, because its private key exists only in this
// process. A run resumed after a crash therefore finds one of these:
//   - an intent without a serial: an earlier attempt may have delivered a certificate it could
//     not record; a certificate for the same names, on this mount, delivered as the version
//     after the base one after the intent, is adopted. Otherwise a new one is issued. A crash
//     between Vault issuing and the serial being saved leaves an orphan certificate whose
//     private key nobody holds: harmless, but it stays in the mount's inventory until it expires.
//   - a serial not yet delivered: its private key is lost, so that certificate is revoked
//     (recorded as orphaned_serials) and a new one is issued.
//   - a serial already delivered (the response was lost): it is adopted.
func (r *Rotator) Apply(ctx context.Context, req rotators.Request, st *rotators.State) error {
	ref := req.Credential
	if st.Note(noteDelivered) != "" {
		return nil
	}
	t, _, err := r.check(ref)
	if err != nil {
		return err
	}
	want, err := decodeNames(st.Note(noteOldNames))
	if err != nil {
		return rotators.Permanent(fmt.Errorf("state of %s has no certificate names: %w", ref.ID(), err))
	}
	base, err := strconv.Atoi(st.Note(noteBase))
	if err != nil {
		return rotators.Permanent(fmt.Errorf("state of %s has no deliver_to base version", ref.ID()))
	}
	mount := mountOf(ref)
	now, err := r.currentKV(ctx, t)
	if err != nil {
		return err
	}

	switch {
	case st.Note(noteNewSerial) != "":
		newSerial := st.Note(noteNewSerial)
		if now > base {
			v, err := r.readKV(ctx, t, base+1)
			if err != nil {
				return err
			}
			if deliveredSerial(v.data) == newSerial {
				c, err := parseCertPEM(stringField(v.data, FieldCertificate))
				if err != nil {
					return rotators.Permanent(fmt.Errorf("%s version %d: %w", t, base+1, err))
				}
				adopt(st, c, base+1)
				return nil
			}
			return r.changed(ctx, ref, t, base, now, st)
		}
		// Issued but never delivered: its private key died with the attempt that held it.
		if err := r.retireOrphan(ctx, mount, newSerial, st); err != nil {
			return err
		}
	case st.Note(noteIssuingAt) != "" && now > base:
		v, err := r.readKV(ctx, t, base+1)
		if err != nil {
			return err
		}
		c, err := r.ours(ctx, ref, v, want, st)
		if err != nil {
			return err
		}
		if c == nil {
			return r.changed(ctx, ref, t, base, now, st)
		}
		st.SetNote(noteNewSerial, serialOf(c))
		adopt(st, c, base+1)
		return nil
	}
	if now != base {
		return r.changed(ctx, ref, t, base, now, st)
	}
	return r.issueAndDeliver(ctx, req, st, t, base, want)
}

// issueAndDeliver issues the new certificate and writes it to t at version base+1.
func (r *Rotator) issueAndDeliver(ctx context.Context, req rotators.Request, st *rotators.State, t target, base int, want names) error {
	ref := req.Credential
	mount := mountOf(ref)
	keep := map[string]any{}
	if base > 0 {
		v, err := r.readKV(ctx, t, base)
		if err != nil {
			return err
		}
		maps.Copy(keep, v.data)
	}
	st.SetNote(noteIssuingAt, req.Now().UTC().Format(time.RFC3339Nano))
	if err := req.Save(ctx, st); err != nil {
		return rotators.Retryable(fmt.Errorf("record the intent to issue a certificate for %s: %w", ref.ID(), err))
	}
	iss, err := r.issue(ctx, mount, roleOf(ref), want, ref.Options[OptionTTL])
	if err != nil {
		return err
	}
	st.SetNote(noteNewSerial, iss.serial)
	saveErr := req.Save(ctx, st)
	// Deliver even when the serial could not be recorded: the private key exists only here, and
	// a delivered certificate is recognised from deliver_to itself after a crash.
	version, err := r.deliver(ctx, t, base, keep, iss)
	if err != nil {
		if !rotators.IsRetryable(err) {
			// It will never be delivered and its key dies with this attempt.
			if rerr := r.retireOrphan(ctx, mount, iss.serial, st); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		return err
	}
	failpoint.Hit(failpoint.AfterVaultWrite)
	adopt(st, iss.cert, version)
	if saveErr != nil {
		return rotators.Retryable(fmt.Errorf("record serial %s of the new certificate for %s (it was delivered): %w", iss.serial, ref.ID(), saveErr))
	}
	return nil
}

// deliver writes the certificate, its key and chain to t with check-and-set on base, keeping
// the secret's other fields, and returns the written version.
func (r *Rotator) deliver(ctx context.Context, t target, base int, keep map[string]any, iss *issued) (int, error) {
	data := maps.Clone(keep)
	data[FieldCertificate] = iss.certPEM
	data[FieldPrivateKey] = iss.keyPEM
	data[FieldIssuingCA] = iss.issuingCA
	data[FieldCAChain] = iss.chain
	data[FieldSerial] = iss.serial
	written, err := r.client.KVv2(t.mount).Put(ctx, t.path, data, vault.WithCheckAndSet(base))
	if err != nil {
		var re *vault.ResponseError
		if errors.As(err, &re) && re.StatusCode >= 400 && re.StatusCode < 500 && re.StatusCode != 429 {
			if strings.Contains(strings.Join(re.Errors, " "), "check-and-set") {
				return 0, rotators.Permanent(fmt.Errorf("deliver to %s: %w (version %d is no longer current); not overwritten", t, errChanged, base))
			}
			return 0, rotators.Permanent(fmt.Errorf("deliver to %s: %w", t, err))
		}
		return 0, rotators.Retryable(fmt.Errorf("deliver to %s: %w", t, err))
	}
	if written == nil || written.VersionMetadata == nil {
		return base + 1, nil
	}
	return written.VersionMetadata.Version, nil
}

// ours returns the certificate in v if an earlier attempt of this rotation delivered it: the
// version was created after the recorded intent and holds a certificate for the same names,
// other than the old one, that this mount issued. It returns nil when v is someone else's.
func (r *Rotator) ours(ctx context.Context, ref events.CredentialRef, v *kvVersion, want names, st *rotators.State) (*x509.Certificate, error) {
	// A version that cannot be read as ours is someone else's: not an error, just not ours.
	intent, perr := time.Parse(time.RFC3339Nano, st.Note(noteIssuingAt))
	if perr != nil || v.data == nil || v.created.Before(intent.Add(-clockSkew)) {
		return nil, nil //nolint:nilerr // a version that does not parse as ours is not ours
	}
	c, cerr := parseCertPEM(stringField(v.data, FieldCertificate))
	if cerr != nil || deliveredSerial(v.data) != serialOf(c) || serialOf(c) == st.Note(noteOldSerial) || !namesOf(c).equal(want) {
		return nil, nil //nolint:nilerr // a version that does not parse as ours is not ours
	}
	rec, err := r.readCert(ctx, mountOf(ref), serialOf(c))
	if err != nil {
		return nil, err
	}
	if rec == nil || !rec.cert.Equal(c) {
		return nil, nil
	}
	return c, nil
}

// changed refuses to go on with a deliver_to secret someone else wrote, after revoking a
// certificate this rotation issued and can no longer deliver.
func (r *Rotator) changed(ctx context.Context, ref events.CredentialRef, t target, base, now int, st *rotators.State) error {
	err := rotators.Permanent(fmt.Errorf("%s: %s %w: version %d is current, the rotation started from %d", ref.ID(), t, errChanged, now, base))
	if s := st.Note(noteNewSerial); s != "" {
		if rerr := r.retireOrphan(ctx, mountOf(ref), s, st); rerr != nil {
			return errors.Join(err, rerr)
		}
	}
	return err
}

// retireOrphan revokes a certificate this rotation issued but cannot deliver, records its
// serial, and clears the notes of the attempt that issued it.
func (r *Rotator) retireOrphan(ctx context.Context, mount, serial string, st *rotators.State) error {
	if _, err := r.revoke(ctx, mount, serial); err != nil {
		return fmt.Errorf("revoke undelivered certificate %s: %w", serial, err)
	}
	orphans := st.Note(noteOrphaned)
	if orphans != "" {
		orphans += ","
	}
	st.SetNote(noteOrphaned, orphans+serial)
	delete(st.Data, noteNewSerial)
	delete(st.Data, noteIssuingAt)
	return nil
}

// adopt records c, delivered as version, as the rotation's new certificate.
func adopt(st *rotators.State, c *x509.Certificate, version int) {
	st.SetNote(noteNewSerial, serialOf(c))
	st.SetNote(noteDelivered, strconv.Itoa(version))
	st.After = rotators.Fingerprint(
		"serial", serialOf(c),
		"not_after", c.NotAfter.UTC().Format(time.RFC3339),
		"cn", c.Subject.CommonName,
		"deliver_to_version", strconv.Itoa(version),
	)
	if o := st.Note(noteOrphaned); o != "" {
		st.After["orphaned_serials_revoked"] = o
	}
}

func stringField(data map[string]any, key string) string {
	s, _ := data[key].(string)
	return s
}
