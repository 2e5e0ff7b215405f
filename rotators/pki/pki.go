// Package pki replaces a certificate issued by a Vault PKI mount: it issues a new certificate
// for the same names from the same role, delivers it with its private key to the KV v2 secret
// the consumer reads, proves the delivered pair is a valid certificate chain with a matching
// key, and after the overlap window revokes the old serial and checks it is on the CRL.
package pki

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// Kind is the credential kind handled by this package. A credential of this kind names the
// PKI mount in Mount and the role to issue from in Path.
const Kind = "pki"

// Options a credential reference may carry for this kind.
const (
	// OptionSerial is the serial number of the certificate being replaced, colon- or
	// dash-separated hex as Vault shows it. Without it the serial is read from the deliver_to
	// secret.
	OptionSerial = "serial"
	// OptionDeliverTo is "<kv-v2 mount>/<path>": the secret the consumer reads its certificate
	// from. The first path segment is the mount. Required.
	OptionDeliverTo = "deliver_to"
	// OptionTTL optionally asks for a lifetime for the new certificate (a Vault duration such as
	// "720h"); without it the role's default applies.
	OptionTTL = "ttl"
)

// Fields of the deliver_to secret. Other fields the secret holds are kept as they are.
const (
	FieldCertificate = "certificate"
	FieldPrivateKey  = "private_key"
	FieldIssuingCA   = "issuing_ca"
	FieldCAChain     = "ca_chain"
	FieldSerial      = "serial"
)

// Notes kept in the rotation state; none of them is secret.
const (
	noteOldSerial   = "old_serial"
	noteOldNames    = "old_names"
	noteOldNotAfter = "old_not_after"
	noteBase        = "deliver_base_version"
	noteIssuingAt   = "issuing_at"
	noteNewSerial   = "new_serial"
	noteDelivered   = "delivered_version"
	noteOrphaned    = "orphaned_serials"
)

// clockSkew is how much earlier than the recorded intent a delivered version may have been
// created and still be taken for the agent's own delivery (Vault's clock against the agent's).
const clockSkew = 5 * time.Second

// Rotator replaces PKI certificates. The new certificate and its private key exist only in
// memory and in the deliver_to KV secret; the rotation state holds serial numbers, names,
// versions and dates.
type Rotator struct {
	client *vault.Client
}

var _ rotators.Rotator = (*Rotator)(nil)

// New returns a PKI rotator using client, whose retries should be off: the agent owns retries,
// and a retried issue request would issue a second certificate.
func New(client *vault.Client) *Rotator { return &Rotator{client: client} }

// Kind returns "pki".
func (r *Rotator) Kind() string { return Kind }

// target is a KV v2 secret: its mount and its path inside the mount.
type target struct{ mount, path string }

// String returns "<mount>/<path>".
func (t target) String() string { return t.mount + "/" + t.path }

// parseTarget reads a deliver_to option.
func parseTarget(s string) (target, error) {
	s = strings.Trim(strings.TrimSpace(s), "/")
	mount, path, ok := strings.Cut(s, "/")
	if !ok || mount == "" || strings.Trim(path, "/") == "" {
		return target{}, fmt.Errorf("option %s=%q: want <kv-v2 mount>/<path>", OptionDeliverTo, s)
	}
	return target{mount: mount, path: strings.Trim(path, "/")}, nil
}

// check validates a credential reference and returns its deliver_to target and the serial
// named in its options (canonical, or empty).
func (r *Rotator) check(ref events.CredentialRef) (target, string, error) {
	if ref.EffectiveAction() != events.ActionRotate {
		return target{}, "", rotators.Permanent(fmt.Errorf("pki supports the rotate action only, not %q", ref.EffectiveAction()))
	}
	if strings.Trim(ref.Mount, "/") == "" || strings.Trim(ref.Path, "/") == "" {
		return target{}, "", rotators.Permanent(fmt.Errorf("%s: name the PKI mount in mount and the role in path", ref.ID()))
	}
	t, err := parseTarget(ref.Options[OptionDeliverTo])
	if err != nil {
		return target{}, "", rotators.Permanent(fmt.Errorf("%s: %w", ref.ID(), err))
	}
	serial := ""
	if s := ref.Options[OptionSerial]; s != "" {
		if serial, err = normalizeSerial(s); err != nil {
			return target{}, "", rotators.Permanent(fmt.Errorf("%s: option %s: %w", ref.ID(), OptionSerial, err))
		}
	}
	return t, serial, nil
}

func mountOf(ref events.CredentialRef) string { return strings.Trim(ref.Mount, "/") }
func roleOf(ref events.CredentialRef) string  { return strings.Trim(ref.Path, "/") }

// current describes the certificate being replaced.
type current struct {
	serial string
	rec    *certRecord
	// base is the deliver_to version the rotation starts from (0: the secret does not exist).
	base int
	// deliveredSerial is the serial the deliver_to secret holds now, if any.
	deliveredSerial string
}

// readCurrent finds the certificate being replaced: the serial named (or, without one, the one
// in the deliver_to secret), read from the PKI mount.
func (r *Rotator) readCurrent(ctx context.Context, ref events.CredentialRef, t target, serial string) (*current, error) {
	cur := &current{serial: serial}
	base, err := r.currentKV(ctx, t)
	if err != nil {
		return nil, err
	}
	cur.base = base
	if base > 0 {
		v, err := r.readKV(ctx, t, base)
		if err != nil {
			return nil, err
		}
		cur.deliveredSerial = deliveredSerial(v.data)
	}
	if cur.serial == "" {
		if cur.deliveredSerial == "" {
			return nil, rotators.Permanent(fmt.Errorf("%s: no %s option and %s holds no certificate serial", ref.ID(), OptionSerial, t))
		}
		cur.serial = cur.deliveredSerial
	}
	rec, err := r.readCert(ctx, mountOf(ref), cur.serial)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, rotators.Permanent(fmt.Errorf("%s: certificate %s is not on mount %s", ref.ID(), cur.serial, mountOf(ref)))
	}
	cur.rec = rec
	return cur, nil
}

// deliveredSerial returns the serial a deliver_to secret holds: its serial field, or the
// serial of its certificate.
func deliveredSerial(data map[string]any) string {
	if s, _ := data[FieldSerial].(string); s != "" {
		if n, err := normalizeSerial(s); err == nil {
			return n
		}
	}
	if p, _ := data[FieldCertificate].(string); p != "" {
		if c, err := parseCertPEM(p); err == nil {
			return serialOf(c)
		}
	}
	return ""
}

// Plan reads the old certificate and the deliver_to secret and reports what a rotation would do.
func (r *Rotator) Plan(ctx context.Context, req rotators.Request) (rotators.Plan, error) {
	ref := req.Credential
	t, serial, err := r.check(ref)
	if err != nil {
		return rotators.Plan{}, err
	}
	cur, err := r.readCurrent(ctx, ref, t, serial)
	if err != nil {
		return rotators.Plan{}, err
	}
	if _, err := r.issuerChain(ctx, mountOf(ref), roleOf(ref)); err != nil {
		return rotators.Plan{}, err
	}
	n := namesOf(cur.rec.cert)
	changes := []string{
		fmt.Sprintf("issue a new certificate from %s/issue/%s for %s, replacing serial %s (valid until %s)",
			mountOf(ref), roleOf(ref), n, cur.serial, cur.rec.cert.NotAfter.UTC().Format(time.RFC3339)),
		fmt.Sprintf("write it with its private key to %s as version %d (check-and-set on version %d)", t, cur.base+1, cur.base),
		fmt.Sprintf("after the overlap window: revoke serial %s on %s and check it is on the CRL", cur.serial, mountOf(ref)),
	}
	if !cur.rec.revokedAt.IsZero() {
		changes[2] = fmt.Sprintf("after the overlap window: check serial %s (already revoked) is on the CRL", cur.serial)
	}
	return rotators.Plan{Action: events.ActionRotate, Current: beforeFingerprint(cur), Changes: changes}, nil
}

// Prepare records the certificate being replaced: its serial, names and expiry, and the
// deliver_to version the delivery will check-and-set on. A fresh round after repeated failures
// keeps replacing the certificate the first round started from.
func (r *Rotator) Prepare(ctx context.Context, req rotators.Request, st *rotators.State) error {
	ref := req.Credential
	t, serial, err := r.check(ref)
	if err != nil {
		return err
	}
	fresh := st.Before == nil || st.Before["serial"] == ""
	if !fresh {
		serial = st.Before["serial"]
	}
	cur, err := r.readCurrent(ctx, ref, t, serial)
	if err != nil {
		return err
	}
	st.SetNote(noteOldSerial, cur.serial)
	st.SetNote(noteOldNames, namesOf(cur.rec.cert).encode())
	st.SetNote(noteOldNotAfter, cur.rec.cert.NotAfter.UTC().Format(time.RFC3339))
	st.SetNote(noteBase, strconv.Itoa(cur.base))
	if fresh {
		st.Before = beforeFingerprint(cur)
	}
	return nil
}

func beforeFingerprint(cur *current) events.Fingerprint {
	fp := rotators.Fingerprint(
		"serial", cur.serial,
		"not_after", cur.rec.cert.NotAfter.UTC().Format(time.RFC3339),
		"cn", cur.rec.cert.Subject.CommonName,
		"deliver_to_version", strconv.Itoa(cur.base),
	)
	if cur.deliveredSerial != "" && cur.deliveredSerial != cur.serial {
		fp["delivered_serial"] = cur.deliveredSerial
	}
	return fp
}

// Promote has nothing to do: delivery to the consumer's secret is the promotion, and Verify
// checked that the secret's current version holds the new certificate.
func (r *Rotator) Promote(context.Context, rotators.Request, *rotators.State) error { return nil }
