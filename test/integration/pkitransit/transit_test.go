package pkitransit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
	"github.com/rotation-agent/rotation-agent/rotators/transit"
	"github.com/rotation-agent/rotation-agent/test/harness"
	"github.com/rotation-agent/rotation-agent/test/harness/drive"
)

const consumerPlaintext = "order #4711: 3 widgets"

// transitEnv is a transit mount with one key and a consumer's data protected with version 1.
type transitEnv struct {
	v   *harness.Vault
	rot *transit.Rotator
	ref events.CredentialRef
	// token is the consumer's ciphertext, signature or HMAC made with version 1.
	token string
	typ   string
}

func setupTransit(t *testing.T, keyType string, opts map[string]string) *transitEnv {
	t.Helper()
	v := harness.StartVault(t)
	if err := v.Root.Sys().Mount("transit", &vaultapi.MountInput{Type: "transit"}); err != nil {
		t.Fatalf("mount transit: %v", err)
	}
	params := map[string]any{"type": keyType}
	if keyType == "hmac" {
		params["key_size"] = 32
	}
	if _, err := v.Root.Logical().Write("transit/keys/orders", params); err != nil {
		t.Fatalf("create key: %v", err)
	}
	e := &transitEnv{v: v, rot: transit.New(agentClient(t, v)), typ: keyType,
		ref: events.CredentialRef{Kind: transit.Kind, Mount: "transit", Path: "orders", Options: opts}}
	e.token = e.protect(t, 0)
	if !strings.HasPrefix(e.token, "vault:v1:") {
		t.Fatalf("consumer token %q is not version 1", e.token)
	}
	return e
}

// protect encrypts, signs or HMACs the consumer's value as the consumer would (version 0: the
// latest).
func (e *transitEnv) protect(t *testing.T, version int) string {
	t.Helper()
	in := base64.StdEncoding.EncodeToString([]byte(consumerPlaintext))
	path, field, data := "transit/encrypt/orders", "ciphertext", map[string]any{"plaintext": in}
	switch e.typ {
	case "ed25519":
		path, field, data = "transit/sign/orders", "signature", map[string]any{"input": in}
	case "hmac":
		path, field, data = "transit/hmac/orders", "hmac", map[string]any{"input": in}
	}
	if version > 0 {
		data["key_version"] = version
	}
	s, err := e.v.Root.Logical().Write(path, data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return s.Data[field].(string)
}

// usable reports whether Vault still decrypts (or verifies) tok for the consumer.
func (e *transitEnv) usable(t *testing.T, tok string) bool {
	t.Helper()
	in := base64.StdEncoding.EncodeToString([]byte(consumerPlaintext))
	var s *vaultapi.Secret
	var err error
	switch e.typ {
	case "ed25519":
		s, err = e.v.Root.Logical().Write("transit/verify/orders", map[string]any{"input": in, "signature": tok})
	case "hmac":
		s, err = e.v.Root.Logical().Write("transit/verify/orders", map[string]any{"input": in, "hmac": tok})
	default:
		s, err = e.v.Root.Logical().Write("transit/decrypt/orders", map[string]any{"ciphertext": tok})
	}
	var re *vaultapi.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest && strings.Contains(strings.Join(re.Errors, " "), "too old") {
		return false
	}
	if err != nil {
		t.Fatalf("check %s: %v", e.typ, err)
	}
	if e.typ == "ed25519" || e.typ == "hmac" {
		return s.Data["valid"] == true
	}
	return s.Data["plaintext"] == base64.StdEncoding.EncodeToString([]byte(consumerPlaintext))
}

// keyState reads latest_version and min_decryption_version.
func keyState(t *testing.T, v *harness.Vault) (latest, minDecryption int) {
	t.Helper()
	s, err := v.Root.Logical().Read("transit/keys/orders")
	if err != nil || s == nil {
		t.Fatalf("read key: %v", err)
	}
	l, _ := s.Data["latest_version"].(json.Number).Int64()
	m, _ := s.Data["min_decryption_version"].(json.Number).Int64()
	return int(l), int(m)
}

// The happy path for each way a key is exercised: one new version; data of the old version
// stays usable through the overlap; with min_decryption=raise it is refused after it, without
// the option it stays usable.
func TestTransitRotation(t *testing.T) {
	cases := []struct {
		keyType string
		raise   bool
	}{
		{"aes256-gcm96", true},
		{"aes256-gcm96", false},
		{"ed25519", true},
		{"hmac", true},
	}
	for _, tc := range cases {
		name := tc.keyType
		opts := map[string]string{}
		if tc.raise {
			name += "/raise"
			opts[transit.OptionMinDecryption] = transit.MinDecryptionRaise
		}
		t.Run(name, func(t *testing.T) {
			e := setupTransit(t, tc.keyType, opts)
			ctx := context.Background()
			j, c := &drive.Journal{}, drive.NewClock(time.Now())
			req := request(e.ref, j, c)

			plan, err := e.rot.Plan(ctx, req)
			if err != nil {
				t.Fatalf("plan: %v", err)
			}
			if !strings.Contains(strings.Join(plan.Changes, "\n"), "from version 1 to version 2") || plan.Current["latest_version"] != "1" {
				t.Errorf("plan = %+v", plan)
			}
			if latest, _ := keyState(t, e.v); latest != 1 {
				t.Fatal("plan rotated the key")
			}

			var st rotators.State
			out := drive.MustRun(t, e.rot, req, &st, overlap)
			if !out.Completed || !out.RetirePending {
				t.Fatalf("outcome = %+v", out)
			}
			if latest, minDec := keyState(t, e.v); latest != 2 || minDec != 1 {
				t.Fatalf("key at latest %d min_decryption %d, want 2 and 1", latest, minDec)
			}
			if fresh := e.protect(t, 0); !strings.HasPrefix(fresh, "vault:v2:") {
				t.Errorf("new data is protected with %q, want version 2", fresh[:9])
			}
			if !e.usable(t, e.token) {
				t.Error("data of version 1 is refused during the overlap")
			}
			if st.Before["latest_version"] != "1" || st.After["latest_version"] != "2" || st.After["adopted"] != "" {
				t.Errorf("fingerprints before=%v after=%v", st.Before, st.After)
			}

			c.Advance(overlap + 1)
			if out = drive.MustRun(t, e.rot, req, &st, overlap); !out.Retired {
				t.Fatalf("outcome = %+v", out)
			}
			latest, minDec := keyState(t, e.v)
			if latest != 2 {
				t.Errorf("latest_version %d after retire, want 2", latest)
			}
			fresh := e.protect(t, 0)
			if !e.usable(t, fresh) {
				t.Error("data of the new version is refused after retire")
			}
			if tc.raise {
				if minDec != 2 || e.usable(t, e.token) {
					t.Errorf("min_decryption %d, version 1 usable %v: want 2 and refused", minDec, e.usable(t, e.token))
				}
				if st.After["min_decryption_version"] != "2" || !strings.Contains(st.After["old_versions"], "refused as too old") {
					t.Errorf("retire fingerprint = %v", st.After)
				}
			} else {
				if minDec != 1 || !e.usable(t, e.token) {
					t.Errorf("without raise: min_decryption %d, version 1 usable %v: want 1 and usable", minDec, e.usable(t, e.token))
				}
				if !strings.Contains(st.After["old_versions"], "still decryptable") {
					t.Errorf("retire fingerprint = %v", st.After)
				}
			}
		})
	}
}

// The journal fails right after the key was rotated (the apply step cannot be recorded done),
// and again right after min_decryption_version was raised. Each resumed run adopts what Vault
// already did: the key is rotated exactly once and raised once.
func TestTransitResumeDoesNotRotateTwice(t *testing.T) {
	e := setupTransit(t, "aes256-gcm96", map[string]string{transit.OptionMinDecryption: transit.MinDecryptionRaise})
	j, c := &drive.Journal{}, drive.NewClock(time.Now())
	j.Fail = func(st *rotators.State) error {
		if st.Done == rotators.StepApply && st.Started == "" {
			return drive.ErrSaveFailed
		}
		return nil
	}
	var st rotators.State
	if _, err := drive.Run(t, e.rot, request(e.ref, j, c), &st, overlap); err == nil {
		t.Fatal("drive did not report the journal failure")
	}
	if latest, _ := keyState(t, e.v); latest != 2 {
		t.Fatalf("latest_version %d after the failed drive, want 2", latest)
	}
	resumed := j.Last(t)
	if resumed.Done != rotators.StepPrepare || resumed.Data["rotating_at"] == "" {
		t.Fatalf("journal = %+v, want prepare done and the intent to rotate", resumed)
	}
	j.Fail = nil
	if out := drive.MustRun(t, e.rot, request(e.ref, j, c), &resumed, overlap); !out.Completed || !out.Resumed {
		t.Fatalf("outcome = %+v", out)
	}
	if latest, _ := keyState(t, e.v); latest != 2 {
		t.Errorf("latest_version %d after the resumed run, want 2 (one rotation)", latest)
	}
	if resumed.After["latest_version"] != "2" || resumed.After["adopted"] != "" {
		t.Errorf("after fingerprint = %v", resumed.After)
	}

	// Now the retire: its completion cannot be saved, and the agent restarts.
	c.Advance(overlap + 1)
	j.Fail = func(st *rotators.State) error {
		if st.Done == rotators.StepRetire {
			return drive.ErrSaveFailed
		}
		return nil
	}
	if _, err := drive.Run(t, e.rot, request(e.ref, j, c), &resumed, overlap); err == nil {
		t.Fatal("drive did not report the journal failure")
	}
	if _, minDec := keyState(t, e.v); minDec != 2 {
		t.Fatalf("min_decryption_version %d, want 2", minDec)
	}
	again := j.Last(t)
	if again.Started != rotators.StepRetire {
		t.Fatalf("journal = %+v, want retire started", again)
	}
	j.Fail = nil
	if out := drive.MustRun(t, e.rot, request(e.ref, j, c), &again, overlap); !out.Retired {
		t.Fatalf("outcome = %+v", out)
	}
	if latest, minDec := keyState(t, e.v); latest != 2 || minDec != 2 {
		t.Errorf("key at latest %d min_decryption %d, want 2 and 2", latest, minDec)
	}
	if e.usable(t, e.token) {
		t.Error("version 1 data still decrypts")
	}
}

// A journal that cannot record the intent to rotate stops the rotation before Vault is touched.
func TestTransitNoRotationWithoutTheIntentSaved(t *testing.T) {
	e := setupTransit(t, "aes256-gcm96", nil)
	j, c := &drive.Journal{}, drive.NewClock(time.Now())
	j.Fail = func(st *rotators.State) error {
		if st.Data["rotating_at"] != "" {
			return drive.ErrSaveFailed
		}
		return nil
	}
	var st rotators.State
	if _, err := drive.Run(t, e.rot, request(e.ref, j, c), &st, overlap); err == nil || !rotators.IsRetryable(err) {
		t.Fatalf("drive: %v, want a retryable error", err)
	}
	if latest, _ := keyState(t, e.v); latest != 1 {
		t.Errorf("latest_version %d, want 1: the key was rotated without the intent on record", latest)
	}
}

// A rotation found already done by someone else (an automatic rotation between prepare and
// apply) is adopted, not repeated.
func TestTransitAdoptsAForeignRotation(t *testing.T) {
	e := setupTransit(t, "aes256-gcm96", nil)
	j, c := &drive.Journal{Fail: drive.FailAtStep(rotators.StepApply)}, drive.NewClock(time.Now())
	var st rotators.State
	if _, err := drive.Run(t, e.rot, request(e.ref, j, c), &st, overlap); err == nil {
		t.Fatal("drive did not stop before apply")
	}
	if _, err := e.v.Root.Logical().Write("transit/keys/orders/rotate", nil); err != nil {
		t.Fatal(err)
	}
	st = j.Last(t)
	if out := drive.MustRun(t, e.rot, request(e.ref, j, c), &st, overlap); !out.Completed {
		t.Fatalf("outcome = %+v", out)
	}
	if latest, _ := keyState(t, e.v); latest != 2 {
		t.Errorf("latest_version %d, want 2", latest)
	}
	if st.After["latest_version"] != "2" || st.After["adopted"] == "" {
		t.Errorf("after fingerprint = %v, want version 2 marked adopted", st.After)
	}
}

// Between apply and verify an operator rotates again and raises min_decryption_version past
// the new version: the version the rotation made no longer decrypts, and verify says so. The
// driver then starts a fresh round, which rotates the key once more; that version works.
func TestTransitVerifyCatchesAVersionThatDoesNotDecrypt(t *testing.T) {
	e := setupTransit(t, "aes256-gcm96", nil)
	j, c := &drive.Journal{Fail: drive.FailAtStep(rotators.StepVerify)}, drive.NewClock(time.Now())
	var st rotators.State
	if _, err := drive.Run(t, e.rot, request(e.ref, j, c), &st, overlap); err == nil {
		t.Fatal("drive did not stop before verify")
	}
	st = j.Last(t)
	if _, err := e.v.Root.Logical().Write("transit/keys/orders/rotate", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.v.Root.Logical().Write("transit/keys/orders/config", map[string]any{"min_decryption_version": 3}); err != nil {
		t.Fatal(err)
	}
	_, err := drive.Run(t, e.rot, request(e.ref, j, c), &st, overlap)
	if err == nil {
		t.Fatal("verify accepted a key version that no longer decrypts")
	}
	if !rotators.IsRetryable(err) || !strings.Contains(err.Error(), "verify") || !strings.Contains(err.Error(), "version 2 was refused") {
		t.Errorf("error %q, want a retryable verify error about version 2", err)
	}
	if st.Done != rotators.StepApply || st.Failures != 1 {
		t.Errorf("state done=%q failures=%d, want apply and 1", st.Done, st.Failures)
	}
	errs := []error{err}

	// Verify keeps failing on version 2; after the third failure the rotation starts over and
	// rotates once more: version 4 (after the operator's version 3) passes verify.
	var out rotators.Outcome
	for i := 0; i < 2*rotators.MaxStepFailures && !out.Completed; i++ {
		out, err = drive.Run(t, e.rot, request(e.ref, j, c), &st, overlap)
		errs = append(errs, err)
		if !out.Completed && err != nil && !strings.Contains(err.Error(), "version 2 was refused") {
			t.Fatalf("attempt %d failed for another reason: %v", i, err)
		}
	}
	if !out.Completed || st.Rounds != 1 || !st.Verified {
		t.Fatalf("outcome %+v rounds %d verified %t err %v, want completed in a fresh round", out, st.Rounds, st.Verified, err)
	}
	if latest, minDecryption := keyState(t, e.v); latest != 4 || minDecryption != 3 {
		t.Errorf("key at latest_version %d, min_decryption_version %d; want 4 (one rotation per round) and 3", latest, minDecryption)
	}
	if st.After["latest_version"] != "4" || st.After["adopted"] != "" || st.Before["latest_version"] != "3" {
		t.Errorf("fingerprints before %v after %v, want the fresh round's rotation 3 -> 4", st.Before, st.After)
	}
	fresh := e.protect(t, 4)
	if !strings.HasPrefix(fresh, "vault:v4:") || !e.usable(t, fresh) {
		t.Error("data protected with the fresh round's version is not usable")
	}
	for _, err := range errs {
		if err != nil && !rotators.IsRetryable(err) {
			t.Errorf("a failure before the fresh round was permanent: %v", err)
		}
	}
}

// Misconfigured references are refused without touching the key.
func TestTransitRefusesBadReferences(t *testing.T) {
	e := setupTransit(t, "aes256-gcm96", nil)
	c := drive.NewClock(time.Now())
	for _, tc := range []struct {
		name string
		ref  events.CredentialRef
		want string
	}{
		{"unknown option value", events.CredentialRef{Kind: transit.Kind, Mount: "transit", Path: "orders",
			Options: map[string]string{transit.OptionMinDecryption: "lower"}}, "want keep or raise"},
		{"missing key", events.CredentialRef{Kind: transit.Kind, Mount: "transit", Path: "nope"}, "does not exist"},
		{"revoke action", events.CredentialRef{Kind: transit.Kind, Mount: "transit", Path: "orders", Action: events.ActionRevoke}, "rotate action only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st rotators.State
			_, err := drive.Run(t, e.rot, request(tc.ref, &drive.Journal{}, c), &st, overlap)
			if err == nil || rotators.IsRetryable(err) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want a permanent error mentioning %q", err, tc.want)
			}
		})
	}
	if latest, _ := keyState(t, e.v); latest != 1 {
		t.Errorf("latest_version %d, want 1", latest)
	}
}
