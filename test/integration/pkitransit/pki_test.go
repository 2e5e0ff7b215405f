package pkitransit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
	"github.com/rotation-agent/rotation-agent/rotators/pki"
	"github.com/rotation-agent/rotation-agent/test/harness"
	"github.com/rotation-agent/rotation-agent/test/harness/drive"
)

const (
	deliverPath = "app/tls" // in secret/
	consumerCN  = "api.example.test"
)

// pkiEnv is a PKI mount with a root CA and a role, and a consumer whose certificate lives in
// secret/app/tls.
type pkiEnv struct {
	v     *harness.Vault
	rot   *pki.Rotator
	ref   events.CredentialRef
	old   bundle
	roots *x509.CertPool
	// crlPath is where relying parties fetch the DER CRL of the role's issuer.
	crlPath string
}

// bundle is a certificate as Vault issued it.
type bundle struct {
	serial, cert, key, issuingCA string
	chain                        []string
}

func setupPKI(t *testing.T, withSerial bool) *pkiEnv {
	t.Helper()
	return setupPKIWith(t, pkiSetup{serial: withSerial})
}

// pkiSetup chooses how the PKI mount is set up.
type pkiSetup struct {
	// serial names the old serial in the credential's options.
	serial bool
	// intermediate makes the role issue from an intermediate CA signed by the root.
	intermediate bool
	// autoRebuildCRL makes the mount rebuild its CRL only periodically.
	autoRebuildCRL bool
}

func setupPKIWith(t *testing.T, o pkiSetup) *pkiEnv {
	t.Helper()
	v := harness.StartVault(t)
	if err := v.Root.Sys().Mount("pki", &vaultapi.MountInput{Type: "pki", Config: vaultapi.MountConfigInput{MaxLeaseTTL: "87600h"}}); err != nil {
		t.Fatalf("mount pki: %v", err)
	}
	root, err := v.Root.Logical().Write("pki/root/generate/internal", map[string]any{
		"common_name": "Rotation Test Root CA", "ttl": "87600h", "key_type": "ec", "key_bits": 256,
	})
	if err != nil {
		t.Fatalf("generate root: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(root.Data["certificate"].(string))) {
		t.Fatal("root certificate does not parse")
	}
	role := map[string]any{
		"allowed_domains": "example.test", "allow_subdomains": true, "allow_ip_sans": true,
		"allowed_uri_sans": "spiffe://example.test/*", "key_type": "ec", "key_bits": 256,
		"ttl": "72h", "max_ttl": "720h",
	}
	crlPath := "pki/crl"
	if o.intermediate {
		id := intermediateIssuer(t, v)
		role["issuer_ref"] = id
		crlPath = "pki/issuer/" + id + "/crl/der"
	}
	if _, err := v.Root.Logical().Write("pki/roles/web", role); err != nil {
		t.Fatalf("create role: %v", err)
	}
	if o.autoRebuildCRL {
		if _, err := v.Root.Logical().Write("pki/config/crl", map[string]any{"auto_rebuild": true, "auto_rebuild_grace_period": "12h", "expiry": "72h"}); err != nil {
			t.Fatalf("configure CRL: %v", err)
		}
	}
	old := issueCert(t, v, consumerCN)
	v.PutKV(t, deliverPath, map[string]any{
		"certificate": old.cert, "private_key": old.key, "issuing_ca": old.issuingCA,
		"ca_chain": strings.Join(old.chain, "\n"), "serial": old.serial, "owner": "payments",
	})
	ref := events.CredentialRef{Kind: pki.Kind, Mount: "pki", Path: "web",
		Options: map[string]string{pki.OptionDeliverTo: "secret/" + deliverPath}}
	if o.serial {
		// As an operator may paste it: dash-separated, upper case.
		ref.Options[pki.OptionSerial] = strings.ToUpper(strings.ReplaceAll(old.serial, ":", "-"))
	}
	return &pkiEnv{v: v, rot: pki.New(agentClient(t, v)), ref: ref, old: old, roots: roots, crlPath: crlPath}
}

// intermediateIssuer creates an intermediate CA in the pki mount, signed by its root, and
// returns its issuer id.
func intermediateIssuer(t *testing.T, v *harness.Vault) string {
	t.Helper()
	csr, err := v.Root.Logical().Write("pki/intermediate/generate/internal", map[string]any{
		"common_name": "Rotation Test Intermediate CA", "key_type": "ec", "key_bits": 256,
	})
	if err != nil {
		t.Fatalf("generate intermediate: %v", err)
	}
	signed, err := v.Root.Logical().Write("pki/root/sign-intermediate", map[string]any{
		"csr": csr.Data["csr"], "common_name": "Rotation Test Intermediate CA", "ttl": "8760h",
	})
	if err != nil {
		t.Fatalf("sign intermediate: %v", err)
	}
	set, err := v.Root.Logical().Write("pki/intermediate/set-signed", map[string]any{"certificate": signed.Data["certificate"]})
	if err != nil {
		t.Fatalf("set signed intermediate: %v", err)
	}
	ids, _ := set.Data["imported_issuers"].([]any)
	if len(ids) != 1 {
		t.Fatalf("set-signed imported issuers %v, want one", set.Data["imported_issuers"])
	}
	return ids[0].(string)
}

// issueCert issues a certificate for cn (plus a second DNS name, an IP and a URI SAN) as a
// consumer's provisioning would.
func issueCert(t *testing.T, v *harness.Vault, cn string) bundle {
	t.Helper()
	s, err := v.Root.Logical().Write("pki/issue/web", map[string]any{
		"common_name": cn, "alt_names": "www.example.test", "ip_sans": "10.0.0.7",
		"uri_sans": "spiffe://example.test/api",
	})
	if err != nil {
		t.Fatalf("issue %s: %v", cn, err)
	}
	b := bundle{
		serial: s.Data["serial_number"].(string), cert: s.Data["certificate"].(string),
		key: s.Data["private_key"].(string), issuingCA: s.Data["issuing_ca"].(string),
	}
	for _, c := range s.Data["ca_chain"].([]any) {
		b.chain = append(b.chain, c.(string))
	}
	return b
}

// issuedCount counts the certificates the mount has issued (LIST pki/certs).
func issuedCount(t *testing.T, v *harness.Vault) int {
	t.Helper()
	s, err := v.Root.Logical().List("pki/certs")
	if err != nil || s == nil {
		t.Fatalf("list pki/certs: %v", err)
	}
	return len(s.Data["keys"].([]any))
}

// revocationTime reads pki/cert/<serial> and returns its revocation_time (0: not revoked).
func revocationTime(t *testing.T, v *harness.Vault, serial string) int64 {
	t.Helper()
	s, err := v.Root.Logical().Read("pki/cert/" + serial)
	if err != nil || s == nil {
		t.Fatalf("read pki/cert/%s: %v", serial, err)
	}
	n, err := s.Data["revocation_time"].(json.Number).Int64()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// onCRL fetches the DER CRL a relying party downloads for the role's issuer and reports whether serial is
// listed.
func onCRL(t *testing.T, e *pkiEnv, serial string) bool {
	t.Helper()
	resp, err := e.v.Root.Logical().ReadRaw(e.crlPath)
	if err != nil {
		t.Fatalf("fetch %s: %v", e.crlPath, err)
	}
	defer resp.Body.Close()
	der, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("parse CRL: %v", err)
	}
	raw, err := hex.DecodeString(strings.ReplaceAll(serial, ":", ""))
	if err != nil {
		t.Fatal(err)
	}
	want := new(big.Int).SetBytes(raw)
	for _, e := range list.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(want) == 0 {
			return true
		}
	}
	return false
}

// delivered reads the consumer's secret and checks, as the consumer's TLS stack would, that it
// holds a usable certificate for the consumer's names; it returns the version and the bundle.
func delivered(t *testing.T, e *pkiEnv) (int, bundle) {
	t.Helper()
	s := e.v.KV(t, deliverPath, 0)
	str := func(k string) string { v, _ := s.Data[k].(string); return v }
	b := bundle{serial: str("serial"), cert: str("certificate"), key: str("private_key"), issuingCA: str("issuing_ca")}
	if _, err := tls.X509KeyPair([]byte(b.cert), []byte(b.key)); err != nil {
		t.Errorf("delivered certificate and key do not form a TLS key pair: %v", err)
	}
	leaf, err := x509.ParseCertificate(pemBytes(t, b.cert))
	if err != nil {
		t.Fatalf("delivered certificate: %v", err)
	}
	inter := x509.NewCertPool()
	inter.AppendCertsFromPEM([]byte(str("ca_chain")))
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: e.roots, Intermediates: inter, DNSName: consumerCN}); err != nil {
		t.Errorf("delivered certificate does not verify for %s against the root CA: %v", consumerCN, err)
	}
	if leaf.Subject.CommonName != consumerCN || !slices.Equal(sorted(leaf.DNSNames), []string{consumerCN, "www.example.test"}) ||
		len(leaf.IPAddresses) != 1 || leaf.IPAddresses[0].String() != "10.0.0.7" ||
		len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://example.test/api" {
		t.Errorf("delivered certificate names CN=%s DNS=%v IP=%v URI=%v, want the old certificate's names",
			leaf.Subject.CommonName, leaf.DNSNames, leaf.IPAddresses, leaf.URIs)
	}
	if b.issuingCA != e.old.issuingCA {
		t.Errorf("delivered issuing_ca is not the root CA")
	}
	if s.Data["owner"] != "payments" {
		t.Errorf("field owner = %v: the secret's other fields must be kept", s.Data["owner"])
	}
	return s.VersionMetadata.Version, b
}

func pemBytes(t *testing.T, s string) []byte {
	t.Helper()
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		t.Fatalf("no PEM block in the delivered certificate")
	}
	return block.Bytes
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// The happy path: a replacement for the same names is issued once and delivered with
// check-and-set; the old certificate keeps working through the overlap; after it the old
// serial is revoked and on the CRL. No private key appears in anything the rotator returns.
func TestPKIRotationReplacesDeliversAndRevokes(t *testing.T) {
	e := setupPKI(t, true)
	ctx := context.Background()
	issued0 := issuedCount(t, e.v)
	j, c := &drive.Journal{}, drive.NewClock(time.Now())
	req := request(e.ref, j, c)

	plan, err := e.rot.Plan(ctx, req)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	planText := strings.Join(plan.Changes, "\n")
	for _, want := range []string{"pki/issue/web", consumerCN, "www.example.test", "10.0.0.7", "spiffe://example.test/api", e.old.serial, "secret/app/tls as version 2", "revoke serial"} {
		if !strings.Contains(planText, want) {
			t.Errorf("plan lacks %q:\n%s", want, planText)
		}
	}
	if plan.Current["serial"] != e.old.serial || plan.Current["cn"] != consumerCN {
		t.Errorf("plan current = %v", plan.Current)
	}
	if issuedCount(t, e.v) != issued0 || e.v.KV(t, deliverPath, 0).VersionMetadata.Version != 1 {
		t.Fatal("plan wrote to Vault")
	}

	var st rotators.State
	out := drive.MustRun(t, e.rot, req, &st, overlap)
	if !out.Completed || !out.RetirePending || out.Retired {
		t.Fatalf("outcome = %+v, want completed with retire pending", out)
	}
	if got := issuedCount(t, e.v); got != issued0+1 {
		t.Errorf("%d certificates issued, want exactly 1", got-issued0)
	}
	version, nb := delivered(t, e)
	if version != 2 || nb.serial == "" || nb.serial == e.old.serial {
		t.Fatalf("deliver_to at version %d with serial %q, want version 2 with a new serial", version, nb.serial)
	}
	if revocationTime(t, e.v, e.old.serial) != 0 || onCRL(t, e, e.old.serial) {
		t.Error("old certificate revoked before the overlap window ended")
	}
	if st.Before["serial"] != e.old.serial || st.After["serial"] != nb.serial || st.After["cn"] != consumerCN ||
		st.After["not_after"] == "" || st.Before["not_after"] == "" || st.After["deliver_to_version"] != "2" {
		t.Errorf("fingerprints before=%v after=%v", st.Before, st.After)
	}

	c.Advance(overlap + 1)
	out = drive.MustRun(t, e.rot, req, &st, overlap)
	if !out.Retired {
		t.Fatalf("outcome = %+v, want retired", out)
	}
	if revocationTime(t, e.v, e.old.serial) == 0 {
		t.Error("old serial shows no revocation_time after retire")
	}
	if !onCRL(t, e, e.old.serial) {
		t.Error("old serial is not on the CRL after retire")
	}
	if revocationTime(t, e.v, nb.serial) != 0 || onCRL(t, e, nb.serial) {
		t.Error("the new certificate was revoked")
	}
	if st.After["old_serial"] != e.old.serial || st.After["old_serial_state"] != "revoked" || st.After["old_revoked_at"] == "" {
		t.Errorf("retire fingerprint = %v", st.After)
	}

	// Driving a finished rotation again changes nothing.
	if out = drive.MustRun(t, e.rot, req, &st, overlap); !out.Retired {
		t.Errorf("outcome of a repeated drive = %+v", out)
	}
	if got := issuedCount(t, e.v); got != issued0+1 || e.v.KV(t, deliverPath, 0).VersionMetadata.Version != 2 {
		t.Errorf("a repeated drive issued or delivered again (issued %d, version %d)", got-issued0, e.v.KV(t, deliverPath, 0).VersionMetadata.Version)
	}

	planJSON, _ := json.Marshal(plan)
	fps, _ := json.Marshal([]any{st.Before, st.After, st.Data})
	drive.AssertNoLeak(t, map[string]string{"old private key": e.old.key, "new private key": nb.key},
		map[string][]string{"journal": j.Texts(), "plan": {string(planJSON)}, "fingerprints": {string(fps)}})
}

// Saving the new serial fails right after Vault issued the certificate; the agent then dies.
// The rotator delivered the certificate anyway (its key existed only in memory), so the agent
// resuming from the journal — which holds only the intent — finds it in deliver_to and adopts
// it: one certificate issued, one delivery.
func TestPKIResumeAdoptsADeliveryTheJournalMissed(t *testing.T) {
	e := setupPKI(t, false) // no serial option: the old serial is read from deliver_to
	issued0 := issuedCount(t, e.v)
	j, c := &drive.Journal{}, drive.NewClock(time.Now())
	failed := false
	j.Fail = func(st *rotators.State) error {
		// From the save of the new serial on, the journal is down until the agent dies.
		if failed || st.Data["new_serial"] != "" {
			failed = true
			return drive.ErrSaveFailed
		}
		return nil
	}
	req := request(e.ref, j, c)
	var st rotators.State
	if _, err := drive.Run(t, e.rot, req, &st, overlap); err == nil || !rotators.IsRetryable(err) {
		t.Fatalf("drive with a failing journal: %v, want a retryable error", err)
	}
	if !failed {
		t.Fatal("the serial was never saved")
	}

	resumed := j.Last(t)
	if resumed.Data["issuing_at"] == "" || resumed.Data["new_serial"] != "" || resumed.Done != rotators.StepPrepare {
		t.Fatalf("journal = %+v, want the intent to issue and no serial", resumed)
	}
	if v := e.v.KV(t, deliverPath, 0).VersionMetadata.Version; v != 2 {
		t.Fatalf("deliver_to at version %d, want 2: the certificate is delivered even when its serial cannot be saved", v)
	}
	j.Fail = nil
	out := drive.MustRun(t, e.rot, request(e.ref, j, c), &resumed, overlap)
	if !out.Completed || !out.Resumed {
		t.Fatalf("outcome = %+v", out)
	}
	if got := issuedCount(t, e.v); got != issued0+1 {
		t.Errorf("%d certificates issued over the crash, want 1", got-issued0)
	}
	version, nb := delivered(t, e)
	if version != 2 || resumed.After["serial"] != nb.serial || resumed.Before["serial"] != e.old.serial {
		t.Errorf("deliver_to version %d serial %s; fingerprints before=%v after=%v", version, nb.serial, resumed.Before, resumed.After)
	}

	c.Advance(overlap + 1)
	if out = drive.MustRun(t, e.rot, request(e.ref, j, c), &resumed, overlap); !out.Retired {
		t.Fatalf("outcome = %+v, want retired", out)
	}
	if revocationTime(t, e.v, e.old.serial) == 0 || !onCRL(t, e, e.old.serial) {
		t.Error("old serial not revoked and on the CRL")
	}
}

// The agent dies after the new serial was saved and before delivery: the certificate's key is
// gone. The resumed run revokes that orphan (and says so) and issues one replacement.
func TestPKIResumeRevokesAnUndeliveredCertificate(t *testing.T) {
	e := setupPKI(t, true)
	issued0 := issuedCount(t, e.v)
	j, c := &drive.Journal{}, drive.NewClock(time.Now())
	ctx, crash := context.WithCancel(context.Background())
	j.Fail = func(st *rotators.State) error {
		if st.Data["new_serial"] != "" && st.Data["delivered_version"] == "" {
			crash() // the save goes through; everything after it fails
		}
		return nil
	}
	var st rotators.State
	if _, err := rotators.Drive(ctx, e.rot, request(e.ref, j, c), &st, overlap); err == nil {
		t.Fatal("drive survived the crash")
	}
	if v := e.v.KV(t, deliverPath, 0).VersionMetadata.Version; v != 1 {
		t.Fatalf("deliver_to at version %d after the crash, want 1 (not delivered)", v)
	}
	resumed := j.Last(t)
	orphan := resumed.Data["new_serial"]
	if orphan == "" {
		t.Fatalf("journal has no serial: %+v", resumed)
	}
	j.Fail = nil
	if out := drive.MustRun(t, e.rot, request(e.ref, j, c), &resumed, overlap); !out.Completed {
		t.Fatalf("outcome = %+v", out)
	}
	if got := issuedCount(t, e.v); got != issued0+2 {
		t.Errorf("%d certificates issued, want 2 (the orphan and its replacement)", got-issued0)
	}
	if revocationTime(t, e.v, orphan) == 0 || !onCRL(t, e, orphan) {
		t.Error("the undelivered certificate was not revoked")
	}
	version, nb := delivered(t, e)
	if version != 2 || nb.serial == orphan || nb.serial == e.old.serial {
		t.Errorf("deliver_to version %d serial %s", version, nb.serial)
	}
	if resumed.After["orphaned_serials_revoked"] != orphan {
		t.Errorf("after fingerprint %v does not report the revoked orphan %s", resumed.After, orphan)
	}
}

// The journal fails after apply: the resumed run verifies and finishes without issuing again.
func TestPKIResumeAfterApplyDoesNotIssueAgain(t *testing.T) {
	e := setupPKI(t, true)
	issued0 := issuedCount(t, e.v)
	j, c := &drive.Journal{Fail: drive.FailAtStep(rotators.StepVerify)}, drive.NewClock(time.Now())
	var st rotators.State
	if _, err := drive.Run(t, e.rot, request(e.ref, j, c), &st, overlap); err == nil {
		t.Fatal("drive did not report the journal failure")
	}
	resumed := j.Last(t)
	if resumed.Done != rotators.StepApply {
		t.Fatalf("journal done = %q, want apply", resumed.Done)
	}
	if out := drive.MustRun(t, e.rot, request(e.ref, j, c), &resumed, overlap); !out.Completed || !resumed.Verified {
		t.Fatalf("outcome = %+v verified=%v", out, resumed.Verified)
	}
	if got := issuedCount(t, e.v); got != issued0+1 {
		t.Errorf("%d certificates issued, want 1", got-issued0)
	}
	if version, _ := delivered(t, e); version != 2 {
		t.Errorf("deliver_to at version %d, want 2", version)
	}
}

// Between apply and verify the consumer's secret is tampered with. Verify must refuse it; after
// repeated failures the driver starts over, and the fresh round delivers a working certificate
// while still retiring the original old serial.
func TestPKIVerifyCatchesABrokenDelivery(t *testing.T) {
	cases := []struct {
		name    string
		tamper  func(t *testing.T, e *pkiEnv, data map[string]any)
		wantErr string
	}{
		{"certificate for another CN", func(t *testing.T, e *pkiEnv, data map[string]any) {
			other := issueCert(t, e.v, "other.example.test")
			data["certificate"] = other.cert // the serial field still names the new serial
		}, "not the new serial"},
		{"private key of another certificate", func(t *testing.T, e *pkiEnv, data map[string]any) {
			other := issueCert(t, e.v, consumerCN)
			data["private_key"] = other.key
		}, "does not match the new certificate's public key"},
		{"private key not a key", func(t *testing.T, e *pkiEnv, data map[string]any) {
			data["private_key"] = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"
		}, "private key is not"},
		{"issuing_ca of another CA", func(t *testing.T, e *pkiEnv, data map[string]any) {
			data["issuing_ca"] = data["certificate"]
		}, "is not the certificate that issued"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := setupPKI(t, true)
			j, c := &drive.Journal{Fail: drive.FailAtStep(rotators.StepVerify)}, drive.NewClock(time.Now())
			var st rotators.State
			if _, err := drive.Run(t, e.rot, request(e.ref, j, c), &st, overlap); err == nil {
				t.Fatal("drive did not stop before verify")
			}
			st = j.Last(t)
			s := e.v.KV(t, deliverPath, 0)
			data := s.Data
			newKey, _ := data["private_key"].(string)
			tc.tamper(t, e, data)
			e.v.PutKV(t, deliverPath, data)

			var errs []string
			for i := 0; i < rotators.MaxStepFailures; i++ {
				_, err := drive.Run(t, e.rot, request(e.ref, j, c), &st, overlap)
				if err == nil {
					t.Fatalf("attempt %d: verify accepted a broken delivery", i+1)
				}
				if !rotators.IsRetryable(err) || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "verify") {
					t.Fatalf("attempt %d: error %q, want a retryable verify error containing %q", i+1, err, tc.wantErr)
				}
				errs = append(errs, err.Error())
			}
			if st.Rounds != 1 || st.Done != "" {
				t.Fatalf("after %d failures: rounds=%d done=%q, want a fresh start", rotators.MaxStepFailures, st.Rounds, st.Done)
			}
			out := drive.MustRun(t, e.rot, request(e.ref, j, c), &st, overlap)
			if !out.Completed {
				t.Fatalf("fresh round outcome = %+v", out)
			}
			version, nb := delivered(t, e)
			if version != 4 || st.After["serial"] != nb.serial || st.Before["serial"] != e.old.serial {
				t.Errorf("after the fresh round: deliver_to version %d serial %s, before=%v after=%v", version, nb.serial, st.Before, st.After)
			}
			c.Advance(overlap + 1)
			if out = drive.MustRun(t, e.rot, request(e.ref, j, c), &st, overlap); !out.Retired {
				t.Fatalf("outcome = %+v", out)
			}
			if !onCRL(t, e, e.old.serial) {
				t.Error("the original old serial was not revoked after the fresh round")
			}
			drive.AssertNoLeak(t, map[string]string{"old key": e.old.key, "first new key": newKey, "final key": nb.key},
				map[string][]string{"journal": j.Texts(), "errors": errs})
		})
	}
}

// Misconfigured references are refused before anything is written.
func TestPKIRefusesBadReferences(t *testing.T) {
	e := setupPKI(t, false)
	issued0 := issuedCount(t, e.v)
	c := drive.NewClock(time.Now())
	bad := []struct {
		name string
		opts map[string]string
		want string
	}{
		{"no deliver_to", map[string]string{}, "deliver_to"},
		{"deliver_to without a path", map[string]string{pki.OptionDeliverTo: "secret"}, "deliver_to"},
		{"serial not hex", map[string]string{pki.OptionDeliverTo: "secret/" + deliverPath, pki.OptionSerial: "zz:11"}, "not hexadecimal"},
		{"serial of no certificate", map[string]string{pki.OptionDeliverTo: "secret/" + deliverPath, pki.OptionSerial: "01:02:03"}, "is not on mount pki"},
		{"deliver_to without a certificate", map[string]string{pki.OptionDeliverTo: "secret/app/none"}, "no serial option"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			ref := e.ref
			ref.Options = tc.opts
			var st rotators.State
			_, err := drive.Run(t, e.rot, request(ref, &drive.Journal{}, c), &st, overlap)
			if err == nil || rotators.IsRetryable(err) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want a permanent error mentioning %q", err, tc.want)
			}
		})
	}
	if issuedCount(t, e.v) != issued0 {
		t.Error("a refused reference issued a certificate")
	}
}

// Real deployments issue from an intermediate CA, and some mounts rebuild their CRL only
// periodically: the delivered chain must verify through the intermediate, and the old serial
// must be on the intermediate's CRL (the rotator asks for a rebuild when it is not yet).
func TestPKIIntermediateIssuerAndPeriodicCRL(t *testing.T) {
	e := setupPKIWith(t, pkiSetup{serial: true, intermediate: true, autoRebuildCRL: true})
	if len(e.old.chain) != 2 {
		t.Fatalf("consumer chain has %d certificates, want the intermediate and the root", len(e.old.chain))
	}
	// The mount really defers its CRL: a revocation does not show on it by itself.
	other := issueCert(t, e.v, "other.example.test")
	if _, err := e.v.Root.Logical().Write("pki/revoke", map[string]any{"serial_number": other.serial}); err != nil {
		t.Fatal(err)
	}
	if onCRL(t, e, other.serial) {
		t.Fatal("the CRL was rebuilt on revocation; this test needs a periodic CRL")
	}
	issued0 := issuedCount(t, e.v)
	j, c := &drive.Journal{}, drive.NewClock(time.Now())
	var st rotators.State
	if out := drive.MustRun(t, e.rot, request(e.ref, j, c), &st, overlap); !out.Completed {
		t.Fatalf("outcome = %+v", out)
	}
	version, nb := delivered(t, e)
	if version != 2 || nb.serial == e.old.serial {
		t.Fatalf("deliver_to version %d serial %s", version, nb.serial)
	}
	c.Advance(overlap + 1)
	if out := drive.MustRun(t, e.rot, request(e.ref, j, c), &st, overlap); !out.Retired {
		t.Fatalf("outcome = %+v", out)
	}
	if revocationTime(t, e.v, e.old.serial) == 0 || !onCRL(t, e, e.old.serial) {
		t.Errorf("old serial not revoked and on the intermediate's CRL (%s)", e.crlPath)
	}
	if got := issuedCount(t, e.v); got != issued0+1 {
		t.Errorf("%d certificates issued, want 1", got-issued0)
	}
	if st.After["crl_number"] == "" || st.After["old_serial_state"] != "revoked" {
		t.Errorf("retire fingerprint = %v", st.After)
	}
}
