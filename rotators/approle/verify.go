package approle

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/rotation-agent/rotation-agent/internal/vaultcall"
	"github.com/rotation-agent/rotation-agent/rotators"
	"github.com/rotation-agent/rotation-agent/rotators/internal/kvdeliver"
)

// Verify proves the delivered secret id works: it reads it back from deliver_to, checks Vault
// still knows its accessor and logs in with it at the role's login path, revoking that login's
// token at once. A secret id with limited uses is not spent on a login: its accessor lookup is
// the proof then. A wrapped delivery is proven by looking the wrapping token up (its creation
// path must be the role's secret-id path) or, once the consumer unwrapped it, by the accessor.
func (r *Rotator) Verify(ctx context.Context, req rotators.Request, st *rotators.State) error {
	c, err := parse(req.Credential)
	if err != nil {
		return err
	}
	acc := st.Note(noteNewAccessor)
	version, err := strconv.Atoi(st.Note(noteNewVersion))
	if err != nil || acc == "" {
		return rotators.Permanent(fmt.Errorf("state of %s has no delivered secret id", req.Credential.ID()))
	}
	got, err := kvdeliver.ReadVersion(ctx, r.client, c.kvMount, c.kvPath, version)
	if err != nil {
		return err
	}
	if str(got.Data[FieldAccessor]) != acc {
		return rotators.Retryable(fmt.Errorf("%w: version %d of %s does not hold the new secret id (accessor %s)", errVerify, version, c.deliverTo(), acc))
	}
	info, err := r.lookup(ctx, c, acc)
	if err != nil {
		return err
	}
	if info == nil {
		return rotators.Retryable(fmt.Errorf("%w: the new secret id (accessor %s) no longer exists in role %q at auth/%s", errVerify, acc, c.role, c.mount))
	}
	if st.After == nil {
		st.After = rotators.Fingerprint(fpAccessor, acc)
	}
	if exp := expiry(info.expiration); exp != "" {
		st.After[fpExpiration] = exp
	}
	if c.wrapTTL != "" {
		return r.verifyWrapped(ctx, st, c, str(got.Data[FieldWrapped]))
	}
	secretID := str(got.Data[FieldSecretID])
	if secretID == "" {
		return rotators.Retryable(fmt.Errorf("%w: version %d of %s has no %s", errVerify, version, c.deliverTo(), FieldSecretID))
	}
	if info.numUses > 0 {
		st.After["verified_by"] = "accessor-lookup (limited uses: a login would spend one)"
		return nil
	}
	roleID, err := r.roleID(ctx, c)
	if err != nil {
		return err
	}
	token, tokenAccessor, err := r.login(ctx, c, roleID, secretID)
	if err != nil {
		return rotators.Retryable(fmt.Errorf("%w: AppRole login at auth/%s/login with the new secret id (accessor %s) failed: %w", errVerify, c.mount, acc, err))
	}
	st.After["verified_by"] = "login"
	if err := r.revokeLogin(ctx, token, tokenAccessor); err != nil {
		st.After["verify_token_accessor"] = tokenAccessor
		st.After["verify_token"] = "not revoked; it expires with its TTL"
	}
	return nil
}

// verifyWrapped checks a delivered wrapping token without unwrapping it (that would consume it).
func (r *Rotator) verifyWrapped(ctx context.Context, st *rotators.State, c config, token string) error {
	if token == "" {
		return rotators.Retryable(fmt.Errorf("%w: the delivered version of %s has no %s", errVerify, c.deliverTo(), FieldWrapped))
	}
	client, err := vaultcall.ClientAs(r.client, "")
	if err != nil {
		return rotators.Permanent(err)
	}
	s, err := client.Logical().WriteWithContext(ctx, "sys/wrapping/lookup", map[string]any{"token": token})
	switch {
	case vaultcall.Refused(err):
		// Unwrapped already (by the consumer): the secret id's accessor lookup above is the proof.
		st.After["verified_by"] = "accessor-lookup (wrapping token already unwrapped)"
		return nil
	case err != nil:
		return vaultcall.Classify("look up the delivered wrapping token", err)
	}
	want := c.rolePath("secret-id")
	if s == nil || strings.TrimPrefix(str(s.Data["creation_path"]), "/") != want {
		return rotators.Retryable(fmt.Errorf("%w: the delivered wrapping token was not created at %s", errVerify, want))
	}
	st.After["verified_by"] = "wrapping-lookup"
	return nil
}

// Promote has nothing to do: consumers read the new secret id as soon as it is delivered.
func (r *Rotator) Promote(context.Context, rotators.Request, *rotators.State) error { return nil }

// Retire destroys the old secret id by accessor (and any secret id a failed earlier round of
// this change delivered), then checks the accessor lookup says it is gone and a login with the
// old value, read from the previous version of deliver_to into memory only, is refused.
func (r *Rotator) Retire(ctx context.Context, req rotators.Request, st *rotators.State) error {
	c, err := parse(req.Credential)
	if err != nil {
		return err
	}
	if st.After == nil {
		st.After = rotators.Fingerprint()
	}
	newAcc := st.Note(noteNewAccessor)
	if st.Rounds > 0 {
		superseded, err := r.ours(ctx, c, req.ChangeID, -1)
		if err != nil {
			return err
		}
		superseded = without(superseded, newAcc)
		if err := r.destroyAll(ctx, c, superseded); err != nil {
			return err
		}
		if len(superseded) > 0 {
			st.After["superseded_destroyed"] = strconv.Itoa(len(superseded))
		}
	}
	old := st.Before[fpAccessor]
	if old == "" {
		st.After["old_secret_id"] = "none known"
		return nil
	}
	if old == newAcc {
		return rotators.Permanent(fmt.Errorf("the old and the new secret id of %s have the same accessor %s; not destroyed", req.Credential.ID(), old))
	}
	if err := r.destroy(ctx, c, old); err != nil {
		return err
	}
	info, err := r.lookup(ctx, c, old)
	if err != nil {
		return err
	}
	if info != nil {
		return rotators.Retryable(fmt.Errorf("%w: the old secret id (accessor %s) still exists after destroy", errVerify, old))
	}
	st.After["old_secret_id"] = "destroyed"
	denied, err := r.oldLoginDenied(ctx, c, st, old)
	if err != nil {
		return err
	}
	st.After["old_login"] = denied
	return nil
}

// oldLoginDenied logs in with the old secret id, if the deliver_to version the rotation started
// from still holds it, and expects Vault to refuse.
func (r *Rotator) oldLoginDenied(ctx context.Context, c config, st *rotators.State, old string) (string, error) {
	version, _ := strconv.Atoi(st.Before[fpVersion])
	if version == 0 {
		return "not checked (no earlier deliver_to version)", nil
	}
	prev, err := kvdeliver.ReadVersion(ctx, r.client, c.kvMount, c.kvPath, version)
	if err != nil {
		return "", err
	}
	secretID := str(prev.Data[FieldSecretID])
	if secretID == "" || str(prev.Data[FieldAccessor]) != old {
		return "not checked (version " + strconv.Itoa(version) + " of deliver_to does not hold the old secret id)", nil
	}
	roleID, err := r.roleID(ctx, c)
	if err != nil {
		return "", err
	}
	token, tokenAccessor, err := r.login(ctx, c, roleID, secretID)
	switch {
	case vaultcall.Refused(err):
		return "denied", nil
	case err != nil:
		return "", vaultcall.Classify("log in with the old secret id to check it is refused", err)
	}
	_ = r.revokeLogin(ctx, token, tokenAccessor)
	return "", rotators.Retryable(fmt.Errorf("%w: a login with the old secret id (accessor %s) still succeeds", errVerify, old))
}

// expiry returns a secret id's expiration time, or "" when it never expires.
func expiry(t string) string {
	if t == "" || strings.HasPrefix(t, "0001-01-01") {
		return ""
	}
	return t
}

func without(list []string, drop string) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		if s != drop {
			out = append(out, s)
		}
	}
	return out
}
