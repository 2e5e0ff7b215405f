package transit

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/vaultcall"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// Retire raises, with min_decryption=raise, the key's min_decryption_version to the new version
// and proves the old version is refused: a random test value is protected with the old version
// before raising (and recorded, so a resumed retire can check it again: Vault no longer uses a
// version below min_decryption_version at all), checked to be accepted, and checked to be
// refused as too old afterwards. Without the option it changes nothing and records that old
// versions stay decryptable.
func (r *Rotator) Retire(ctx context.Context, req rotators.Request, st *rotators.State) error {
	ref := req.Credential
	k, err := r.check(ref)
	if err != nil {
		return err
	}
	base, berr := strconv.Atoi(st.Note(noteBase))
	newV, nerr := strconv.Atoi(st.Note(noteNew))
	if berr != nil || nerr != nil {
		return rotators.Permanent(fmt.Errorf("state of %s has no base or new version", ref.ID()))
	}
	if st.After == nil {
		st.After = events.Fingerprint{}
	}
	info, err := r.readKey(ctx, k)
	if err != nil {
		return err
	}
	if !raise(ref) {
		st.After["min_decryption_version"] = strconv.Itoa(info.minDecryption)
		st.After["old_versions"] = fmt.Sprintf("still decryptable (min_decryption_version %d)", info.minDecryption)
		return nil
	}

	p := restoreProbe(r, k, info, st)
	oldTok := st.Note(noteOldProbe)
	if info.minDecryption < newV {
		if oldTok == "" {
			tok, refused, err := p.make(ctx, base)
			if err != nil {
				return err
			}
			// Vault refuses when the old version is already unusable for new data (trimmed,
			// below min_encryption_version or min_decryption_version); the raise is then
			// checked by configuration only.
			if refused == "" {
				oldTok = tok
				p.record(st, tok)
				if err := req.Save(ctx, st); err != nil {
					return rotators.Retryable(fmt.Errorf("record the test %s of %s: %w", p.token(), ref.ID(), err))
				}
			}
		}
		if oldTok != "" {
			ok, reason, err := p.check(ctx, oldTok)
			if err != nil {
				return err
			}
			if !ok {
				return rotators.Retryable(fmt.Errorf("%w: %s: a %s made with old version %d is refused before raising min_decryption_version: %s", errVerify, ref.ID(), p.token(), base, reason))
			}
		}
		if _, err := r.client.Logical().WriteWithContext(ctx, k.mount+"/keys/"+k.name+"/config", map[string]any{"min_decryption_version": newV}); err != nil {
			return vaultcall.Classify(fmt.Sprintf("raise min_decryption_version of %s to %d", k, newV), err)
		}
		if info, err = r.readKey(ctx, k); err != nil {
			return err
		}
		if info.minDecryption < newV {
			return rotators.Retryable(fmt.Errorf("%w: %s: min_decryption_version is %d after raising it to %d", errVerify, ref.ID(), info.minDecryption, newV))
		}
	}
	st.After["min_decryption_version"] = strconv.Itoa(info.minDecryption)
	if oldTok == "" {
		st.After["old_versions"] = fmt.Sprintf("not decryptable: versions below %d refused by configuration (no test value of version %d could be made)", info.minDecryption, base)
		return nil
	}
	ok, reason, err := p.check(ctx, oldTok)
	if err != nil {
		return err
	}
	if ok {
		return rotators.Retryable(fmt.Errorf("%w: %s: a %s made with old version %d is still accepted after raising min_decryption_version to %d", errVerify, ref.ID(), p.token(), base, newV))
	}
	if !strings.Contains(reason, "too old") {
		return rotators.Retryable(fmt.Errorf("%w: %s: a %s made with old version %d was refused, but not as too old: %s", errVerify, ref.ID(), p.token(), base, reason))
	}
	st.After["old_versions"] = fmt.Sprintf("not decryptable: a version %d %s is refused as too old", base, p.token())
	return nil
}
