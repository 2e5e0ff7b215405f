package token

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/rotation-agent/rotation-agent/internal/vaultcall"
	"github.com/rotation-agent/rotation-agent/rotators"
	"github.com/rotation-agent/rotation-agent/rotators/internal/kvdeliver"
)

// Verify checks a revoked token is gone (auth/token/lookup-accessor no longer finds it), or
// proves a delivered replacement works: it reads it back from deliver_to and looks it up with
// itself (auth/token/lookup-self). A replacement with limited uses is not spent on that: its
// accessor lookup is the proof then.
func (r *Rotator) Verify(ctx context.Context, req rotators.Request, st *rotators.State) error {
	c, err := parse(req.Credential)
	if err != nil {
		return err
	}
	if !c.rotate {
		info, err := r.lookupAccessor(ctx, c.accessor)
		if err != nil {
			return err
		}
		if info != nil {
			return rotators.Retryable(fmt.Errorf("%w: the token with accessor %s still exists after revoke", errVerify, c.accessor))
		}
		how, children := revokedWith(c)
		st.After = rotators.Fingerprint(fpAccessor, c.accessor, fpState, "revoked", fpRevokedBy, how, fpChildren, children)
		return nil
	}
	acc := st.Note(noteNewAccessor)
	version, err := strconv.Atoi(st.Note(noteNewVersion))
	if err != nil || acc == "" {
		return rotators.Permanent(fmt.Errorf("state of %s has no delivered token", req.Credential.ID()))
	}
	got, err := kvdeliver.ReadVersion(ctx, r.client, c.kvMount, c.kvPath, version)
	if err != nil {
		return err
	}
	token := str(got.Data[FieldToken])
	if str(got.Data[FieldAccessor]) != acc || token == "" {
		return rotators.Retryable(fmt.Errorf("%w: version %d of %s does not hold the replacement token (accessor %s)", errVerify, version, c.deliverTo(), acc))
	}
	info, err := r.lookupAccessor(ctx, acc)
	if err != nil {
		return err
	}
	if info == nil {
		return rotators.Retryable(fmt.Errorf("%w: the replacement token (accessor %s) no longer exists", errVerify, acc))
	}
	if st.After == nil {
		st.After = rotators.Fingerprint(fpAccessor, acc)
	}
	if e := str(info["expire_time"]); e != "" {
		st.After["expire_time"] = e
	}
	if num(info["num_uses"]) > 0 {
		st.After["verified_by"] = "accessor-lookup (limited uses: lookup-self would spend one)"
		return nil
	}
	self, err := r.lookupSelf(ctx, token)
	if err != nil {
		return rotators.Retryable(fmt.Errorf("%w: auth/token/lookup-self with the replacement token (accessor %s) failed: %w", errVerify, acc, err))
	}
	if self != acc {
		return rotators.Retryable(fmt.Errorf("%w: the delivered token has accessor %s, want %s", errVerify, self, acc))
	}
	st.After["verified_by"] = "lookup-self"
	return nil
}

// Promote has nothing to do: consumers read the replacement as soon as it is delivered.
func (r *Rotator) Promote(context.Context, rotators.Request, *rotators.State) error { return nil }

// Retire has nothing to do for a revocation (Apply revoked the token). After a rotation it
// revokes the old token by accessor, or with revoke-orphan under orphan_children=true (and any
// replacement a failed earlier round delivered, by accessor),
// checks auth/token/lookup-accessor no longer finds it, and that a request with the old token,
// read from the previous version of deliver_to into memory only, is denied.
func (r *Rotator) Retire(ctx context.Context, req rotators.Request, st *rotators.State) error {
	c, err := parse(req.Credential)
	if err != nil || !c.rotate {
		return err
	}
	if st.After == nil {
		st.After = rotators.Fingerprint()
	}
	if s := st.Before[fpSuperseded]; s != "" {
		if err := r.revokeAll(ctx, without(strings.Split(s, ","), st.Note(noteNewAccessor))); err != nil {
			return err
		}
	}
	old := c.accessor
	if old == st.Note(noteNewAccessor) {
		return rotators.Permanent(fmt.Errorf("the old and the replacement token of %s have the same accessor; not revoked", req.Credential.ID()))
	}
	if c.orphan {
		// The old token is read from the deliver_to version the rotation started from.
		err = r.revokeOrphan(ctx, c, old, noteVersion(st.Before[fpVersion]))
	} else {
		err = r.revokeAccessor(ctx, old)
	}
	if err != nil {
		return err
	}
	info, err := r.lookupAccessor(ctx, old)
	if err != nil {
		return err
	}
	if info != nil {
		return rotators.Retryable(fmt.Errorf("%w: the old token (accessor %s) still exists after revoke", errVerify, old))
	}
	st.After["old_token"] = "revoked"
	st.After[fpRevokedBy], st.After[fpChildren] = revokedWith(c)
	denied, err := r.oldTokenDenied(ctx, c, st, old)
	if err != nil {
		return err
	}
	st.After["old_token_request"] = denied
	return nil
}

// oldTokenDenied makes a request with the old token, if the deliver_to version the rotation
// started from holds it, and expects Vault to deny it.
func (r *Rotator) oldTokenDenied(ctx context.Context, c config, st *rotators.State, old string) (string, error) {
	version, _ := strconv.Atoi(st.Before[fpVersion])
	if version == 0 {
		return "not checked (no earlier deliver_to version)", nil
	}
	prev, err := kvdeliver.ReadVersion(ctx, r.client, c.kvMount, c.kvPath, version)
	if err != nil {
		return "", err
	}
	token := str(prev.Data[FieldToken])
	if token == "" || str(prev.Data[FieldAccessor]) != old {
		return "not checked (version " + strconv.Itoa(version) + " of deliver_to does not hold the old token)", nil
	}
	_, err = r.lookupSelf(ctx, token)
	switch {
	case vaultcall.Refused(err):
		return "denied", nil
	case err != nil:
		return "", vaultcall.Classify("request with the old token to check it is denied", err)
	}
	return "", rotators.Retryable(fmt.Errorf("%w: a request with the old token (accessor %s) still succeeds", errVerify, old))
}

func without(list []string, drop string) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		if s != drop && s != "" {
			out = append(out, s)
		}
	}
	return out
}
