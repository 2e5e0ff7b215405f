// Package transit rotates a key of a Vault transit mount: it adds a new key version, proves the
// new version encrypts (or signs) and decrypts (or verifies), and after the overlap window
// optionally raises the key's minimum decryption version so data protected with the old
// versions no longer decrypts.
package transit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/vaultcall"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// Kind is the credential kind handled by this package. A credential of this kind names the
// transit mount in Mount and the key in Path.
const Kind = "transit"

// Options a credential reference may carry for this kind.
const (
	// OptionMinDecryption says what happens to the old key versions after the overlap: "keep"
	// (default: they keep decrypting) or "raise" (min_decryption_version is raised to the new
	// version, so ciphertexts of older versions no longer decrypt; rewrap them first).
	OptionMinDecryption = "min_decryption"
)

// Values of OptionMinDecryption.
const (
	MinDecryptionKeep  = "keep"
	MinDecryptionRaise = "raise"
)

// Notes kept in the rotation state; none of them is secret.
const (
	noteBase       = "base_version"
	noteRotatingAt = "rotating_at"
	noteNew        = "new_version"
	// The retire step's test value, made with the old version before raising
	// min_decryption_version: random throwaway data protecting nothing.
	noteOldProbe     = "old_version_test_token"
	noteProbeInput   = "test_input"
	noteProbeContext = "test_context"
)

// Rotator rotates transit keys. Key material never leaves Vault; the rotation state holds key
// version numbers only.
type Rotator struct {
	client *vault.Client
}

var _ rotators.Rotator = (*Rotator)(nil)

// New returns a transit rotator using client, whose retries should be off: the agent owns
// retries, and a retried rotate request would add a second key version.
func New(client *vault.Client) *Rotator { return &Rotator{client: client} }

// Kind returns "transit".
func (r *Rotator) Kind() string { return Kind }

// keyInfo is what <mount>/keys/<name> reports about a key.
type keyInfo struct {
	typ                string
	latest             int
	minDecryption      int
	minEncryption      int
	minAvailable       int
	derived            bool
	supportsEncryption bool
	supportsDecryption bool
	supportsSigning    bool
}

// key names one transit key.
type key struct{ mount, name string }

func (k key) String() string { return k.mount + "/keys/" + k.name }

func (r *Rotator) check(ref events.CredentialRef) (key, error) {
	if ref.EffectiveAction() != events.ActionRotate {
		return key{}, rotators.Permanent(fmt.Errorf("transit supports the rotate action only, not %q", ref.EffectiveAction()))
	}
	k := key{mount: strings.Trim(ref.Mount, "/"), name: strings.Trim(ref.Path, "/")}
	if k.mount == "" || k.name == "" || strings.Contains(k.name, "/") {
		return key{}, rotators.Permanent(fmt.Errorf("%s: name the transit mount in mount and the key in path", ref.ID()))
	}
	switch ref.Options[OptionMinDecryption] {
	case "", MinDecryptionKeep, MinDecryptionRaise:
		return k, nil
	default:
		return key{}, rotators.Permanent(fmt.Errorf("%s: option %s=%q: want keep or raise", ref.ID(), OptionMinDecryption, ref.Options[OptionMinDecryption]))
	}
}

func raise(ref events.CredentialRef) bool {
	return ref.Options[OptionMinDecryption] == MinDecryptionRaise
}

// readKey reads the key's versions and capabilities.
func (r *Rotator) readKey(ctx context.Context, k key) (*keyInfo, error) {
	s, err := r.client.Logical().ReadWithContext(ctx, k.mount+"/keys/"+k.name)
	if err != nil {
		return nil, vaultcall.Classify("read "+k.String(), err)
	}
	if s == nil || s.Data == nil {
		return nil, rotators.Permanent(fmt.Errorf("transit key %s does not exist", k))
	}
	d := s.Data
	info := &keyInfo{
		latest:        intOf(d["latest_version"]),
		minDecryption: intOf(d["min_decryption_version"]),
		minEncryption: intOf(d["min_encryption_version"]),
		minAvailable:  intOf(d["min_available_version"]),
	}
	info.typ, _ = d["type"].(string)
	info.derived, _ = d["derived"].(bool)
	info.supportsEncryption, _ = d["supports_encryption"].(bool)
	info.supportsDecryption, _ = d["supports_decryption"].(bool)
	info.supportsSigning, _ = d["supports_signing"].(bool)
	if info.latest < 1 {
		return nil, rotators.Permanent(fmt.Errorf("transit key %s reports no latest_version", k))
	}
	return info, nil
}

// Plan reads the key and reports the version a rotation would add.
func (r *Rotator) Plan(ctx context.Context, req rotators.Request) (rotators.Plan, error) {
	ref := req.Credential
	k, err := r.check(ref)
	if err != nil {
		return rotators.Plan{}, err
	}
	info, err := r.readKey(ctx, k)
	if err != nil {
		return rotators.Plan{}, err
	}
	p := newProbe(r, k, info)
	changes := []string{
		fmt.Sprintf("rotate %s from version %d to version %d (POST %s/keys/%s/rotate)", k, info.latest, info.latest+1, k.mount, k.name),
		fmt.Sprintf("check version %d works: %s", info.latest+1, p.describe()),
	}
	if raise(ref) {
		changes = append(changes, fmt.Sprintf("after the overlap window: raise min_decryption_version from %d to %d, so data protected with versions below %d no longer decrypts (rewrap it first), and check an old-version %s is refused",
			info.minDecryption, info.latest+1, info.latest+1, p.token()))
	} else {
		changes = append(changes, fmt.Sprintf("after the overlap window: nothing; versions from %d on keep decrypting", info.minDecryption))
	}
	return rotators.Plan{Action: events.ActionRotate, Current: fingerprint(info), Changes: changes}, nil
}

// Prepare records the key version the rotation starts from.
func (r *Rotator) Prepare(ctx context.Context, req rotators.Request, st *rotators.State) error {
	k, err := r.check(req.Credential)
	if err != nil {
		return err
	}
	info, err := r.readKey(ctx, k)
	if err != nil {
		return err
	}
	st.SetNote(noteBase, strconv.Itoa(info.latest))
	st.Before = fingerprint(info)
	return nil
}

func fingerprint(info *keyInfo) events.Fingerprint {
	return rotators.Fingerprint(
		"latest_version", strconv.Itoa(info.latest),
		"min_decryption_version", strconv.Itoa(info.minDecryption),
		"type", info.typ,
	)
}

// Apply rotates the key unless its latest version already moved past the recorded one (a lost
// response, a crash after the rotation, or an automatic rotation): that version is adopted
// rather than rotating a second time.
func (r *Rotator) Apply(ctx context.Context, req rotators.Request, st *rotators.State) error {
	ref := req.Credential
	if st.Note(noteNew) != "" {
		return nil
	}
	k, err := r.check(ref)
	if err != nil {
		return err
	}
	base, err := strconv.Atoi(st.Note(noteBase))
	if err != nil {
		return rotators.Permanent(fmt.Errorf("state of %s has no base version", ref.ID()))
	}
	info, err := r.readKey(ctx, k)
	if err != nil {
		return err
	}
	if info.latest > base {
		adopt(st, info, st.Note(noteRotatingAt) == "")
		return nil
	}
	st.SetNote(noteRotatingAt, req.Now().UTC().Format(time.RFC3339Nano))
	if err := req.Save(ctx, st); err != nil {
		return rotators.Retryable(fmt.Errorf("record the intent to rotate %s: %w", k, err))
	}
	if _, err := r.client.Logical().WriteWithContext(ctx, k.mount+"/keys/"+k.name+"/rotate", nil); err != nil {
		return vaultcall.Classify("rotate "+k.String(), err)
	}
	if info, err = r.readKey(ctx, k); err != nil {
		return err
	}
	if info.latest <= base {
		return rotators.Retryable(fmt.Errorf("rotate %s: latest_version is still %d", k, info.latest))
	}
	adopt(st, info, false)
	return nil
}

// adopt records the key's latest version as the rotation's new version. byOther says the
// rotation found a version it had not asked for (an automatic or concurrent rotation).
func adopt(st *rotators.State, info *keyInfo, byOther bool) {
	st.SetNote(noteNew, strconv.Itoa(info.latest))
	st.After = rotators.Fingerprint("latest_version", strconv.Itoa(info.latest), "type", info.typ)
	if byOther {
		st.After["adopted"] = "version created outside this rotation"
	}
}

// Verify proves the new version works: a random test value is encrypted with it (the
// ciphertext must carry the new version) and decrypted back; keys that cannot encrypt are
// checked with a signature or an HMAC instead.
func (r *Rotator) Verify(ctx context.Context, req rotators.Request, st *rotators.State) error {
	ref := req.Credential
	k, err := r.check(ref)
	if err != nil {
		return err
	}
	newV, err := strconv.Atoi(st.Note(noteNew))
	if err != nil {
		return rotators.Permanent(fmt.Errorf("state of %s has no new version", ref.ID()))
	}
	info, err := r.readKey(ctx, k)
	if err != nil {
		return err
	}
	p := newProbe(r, k, info)
	tok, refused, err := p.make(ctx, newV)
	if err != nil {
		return err
	}
	if refused != "" {
		return rotators.Retryable(fmt.Errorf("%w: %s: version %d was refused to make a test %s: %s", errVerify, ref.ID(), newV, p.token(), refused))
	}
	accepted, reason, err := p.check(ctx, tok)
	if err != nil {
		return err
	}
	if !accepted {
		return rotators.Retryable(fmt.Errorf("%w: %s: a %s made with version %d was refused: %s", errVerify, ref.ID(), p.token(), newV, reason))
	}
	return nil
}

// Promote has nothing to do: Vault uses the latest version for new data as soon as it exists.
func (r *Rotator) Promote(context.Context, rotators.Request, *rotators.State) error { return nil }

// errVerify marks a key version that does not work as it should.
var errVerify = errors.New("verification failed")

func intOf(v any) int {
	switch n := v.(type) {
	case json.Number:
		i, _ := n.Int64()
		return int(i)
	case float64:
		return int(n)
	case int:
		return n
	case int64:
		return int(n)
	}
	return 0
}
