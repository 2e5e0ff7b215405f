package approle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/rotation-agent/rotation-agent/internal/failpoint"
	"github.com/rotation-agent/rotation-agent/rotators"
	"github.com/rotation-agent/rotation-agent/rotators/internal/kvdeliver"
)

// errVerify marks a new secret id that does not work.
var errVerify = errors.New("verification failed")

// Prepare checks the role exists and records the deliver_to version the rotation writes on and
// the accessor of the old secret id. A fresh round after repeated failures keeps the old
// credential recorded by the first round: the secret id a failed round delivered is this
// change's own and is destroyed at retire.
func (r *Rotator) Prepare(ctx context.Context, req rotators.Request, st *rotators.State) error {
	c, err := parse(req.Credential)
	if err != nil {
		return err
	}
	if _, err := r.roleID(ctx, c); err != nil {
		return err
	}
	cur, err := kvdeliver.Read(ctx, r.client, c.kvMount, c.kvPath)
	if err != nil {
		return err
	}
	st.SetNote(noteBase, strconv.Itoa(cur.Version))
	if st.Rounds > 0 && st.Before[fpVersion] != "" {
		return nil
	}
	old := c.accessor
	if old == "" {
		old = str(cur.Data[FieldAccessor])
	}
	st.Before = rotators.Fingerprint(fpRole, c.role, fpVersion, strconv.Itoa(cur.Version))
	if old == "" {
		return nil
	}
	info, err := r.lookup(ctx, c, old)
	if err != nil {
		return err
	}
	if info == nil && c.accessor != "" {
		return rotators.Permanent(fmt.Errorf("option %s=%s names no secret id of AppRole role %q at auth/%s", OptionAccessor, old, c.role, c.mount))
	}
	st.Before[fpAccessor] = old
	if info == nil {
		st.Before["old_state"] = "not found"
	} else if exp := expiry(info.expiration); exp != "" {
		st.Before[fpExpiration] = exp
	}
	return nil
}

// Apply generates the new secret id and delivers it to deliver_to with check-and-set. It saves
// an intent note before generating; an attempt resumed after an interruption looks for a
// secret id carrying this change id and round, and adopts it (already delivered), delivers it
// (value still in memory) or destroys it (value lost with the process) before generating again,
// so the role never keeps two new secret ids for one rotation.
func (r *Rotator) Apply(ctx context.Context, req rotators.Request, st *rotators.State) error {
	c, err := parse(req.Credential)
	if err != nil {
		return err
	}
	if st.Note(noteNewVersion) != "" {
		return nil
	}
	base, err := strconv.Atoi(st.Note(noteBase))
	if err != nil {
		return rotators.Permanent(fmt.Errorf("state of %s has no deliver_to base version", req.Credential.ID()))
	}
	var candidates []string
	if a := st.Note(noteNewAccessor); a != "" {
		candidates = []string{a}
	} else if st.Note(noteIntent) != "" {
		if candidates, err = r.ours(ctx, c, req.ChangeID, st.Rounds); err != nil {
			return err
		}
	}
	if len(candidates) > 0 {
		done, err := r.settle(ctx, st, c, base, candidates)
		if err != nil || done {
			return err
		}
	}
	meta := map[string]string{MetaChangeID: req.ChangeID, MetaRound: strconv.Itoa(st.Rounds)}
	for k, v := range c.metadata {
		meta[k] = v
	}
	if cur, err := kvdeliver.Read(ctx, r.client, c.kvMount, c.kvPath); err != nil {
		return err
	} else if cur.Version != base {
		return r.conflict(ctx, c, base, cur.Version, nil)
	}
	st.SetNote(noteIntent, req.Now().UTC().Format(time.RFC3339Nano))
	if err := req.Save(ctx, st); err != nil {
		return rotators.Retryable(fmt.Errorf("save intent before generating a secret id: %w", err))
	}
	g, err := r.generate(ctx, c, meta)
	if err != nil {
		return err
	}
	failpoint.Hit(failpoint.AfterVaultWrite)
	r.pending.Put(g.accessor, g.value, req.Now())
	st.SetNote(noteNewAccessor, g.accessor)
	if g.wrapAccessor != "" {
		st.SetNote(noteWrapAccessor, g.wrapAccessor)
	}
	if err := req.Save(ctx, st); err != nil {
		return rotators.Retryable(fmt.Errorf("save the new secret id accessor %s: %w", g.accessor, err))
	}
	cur, err := kvdeliver.Read(ctx, r.client, c.kvMount, c.kvPath)
	if err != nil {
		return err
	}
	if cur.Version != base {
		return r.conflict(ctx, c, base, cur.Version, []string{g.accessor})
	}
	return r.deliver(ctx, st, c, cur, g.accessor, g.value)
}

// settle resumes an apply that already generated secret ids (candidates). It reports whether
// the apply is done; when it is not, every candidate has been destroyed and a fresh secret id
// must be generated.
func (r *Rotator) settle(ctx context.Context, st *rotators.State, c config, base int, candidates []string) (bool, error) {
	cur, err := kvdeliver.Read(ctx, r.client, c.kvMount, c.kvPath)
	if err != nil {
		return false, err
	}
	if cur.Version != base {
		acc := str(cur.Data[FieldAccessor])
		if cur.Version < base || !slices.Contains(candidates, acc) {
			return false, r.conflict(ctx, c, base, cur.Version, candidates)
		}
		// The delivery happened; its response was lost.
		if err := r.destroyAll(ctx, c, without(candidates, acc)); err != nil {
			return false, err
		}
		r.pending.Drop(acc)
		r.delivered(st, c, acc, cur.Version)
		return true, nil
	}
	for _, acc := range candidates {
		if value, ok := r.pending.Get(acc); ok {
			if err := r.destroyAll(ctx, c, without(candidates, acc)); err != nil {
				return false, err
			}
			st.SetNote(noteNewAccessor, acc)
			return true, r.deliver(ctx, st, c, cur, acc, value)
		}
	}
	// No value survived: nobody can have these secret ids, so they only widen the attack surface.
	if err := r.destroyAll(ctx, c, candidates); err != nil {
		return false, err
	}
	delete(st.Data, noteNewAccessor)
	delete(st.Data, noteWrapAccessor)
	return false, nil
}

// deliver writes the new secret id (or its wrapping token) over version cur of deliver_to.
func (r *Rotator) deliver(ctx context.Context, st *rotators.State, c config, cur kvdeliver.State, acc, value string) error {
	set := map[string]any{FieldAccessor: acc, FieldSecretID: value}
	drop := FieldWrapped
	if c.wrapTTL != "" {
		set = map[string]any{FieldAccessor: acc, FieldWrapped: value}
		drop = FieldSecretID
	}
	v, err := kvdeliver.Write(ctx, r.client, c.kvMount, c.kvPath, cur.Version, kvdeliver.WithFields(cur.Data, set, drop))
	if err != nil {
		if rotators.IsRetryable(err) {
			return err // perhaps written: the next attempt reads deliver_to back first
		}
		// Nothing was written: the secret id reached no consumer, so it must not stay valid.
		r.pending.Drop(acc)
		if derr := r.destroy(ctx, c, acc); derr != nil {
			return rotators.Permanent(fmt.Errorf("%w; destroying the undelivered secret id (accessor %s) also failed: %w", err, acc, derr))
		}
		return err
	}
	failpoint.Hit(failpoint.AfterVaultWrite)
	r.pending.Drop(acc)
	r.delivered(st, c, acc, v)
	return nil
}

// delivered records the delivered version and fingerprints the new secret id.
func (r *Rotator) delivered(st *rotators.State, c config, acc string, version int) {
	st.SetNote(noteNewAccessor, acc)
	st.SetNote(noteNewVersion, strconv.Itoa(version))
	st.After = rotators.Fingerprint(fpRole, c.role, fpAccessor, acc, fpVersion, strconv.Itoa(version), "delivery", "secret_id")
	if c.wrapTTL != "" {
		st.After["delivery"] = "wrapped"
		if w := st.Note(noteWrapAccessor); w != "" {
			st.After["wrapping_accessor"] = w
		}
	}
}

// conflict reports deliver_to changed by someone else, after destroying the undelivered
// secret ids.
func (r *Rotator) conflict(ctx context.Context, c config, base, current int, undelivered []string) error {
	for _, a := range undelivered {
		r.pending.Drop(a)
	}
	err := fmt.Errorf("%s changed outside the agent: version %d is current, the rotation started from %d; not overwritten", c.deliverTo(), current, base)
	if derr := r.destroyAll(ctx, c, undelivered); derr != nil {
		err = fmt.Errorf("%w; destroying the undelivered secret ids also failed: %w", err, derr)
	}
	return rotators.Permanent(err)
}

func (r *Rotator) destroyAll(ctx context.Context, c config, accessors []string) error {
	for _, a := range accessors {
		r.pending.Drop(a)
		if err := r.destroy(ctx, c, a); err != nil {
			return err
		}
	}
	return nil
}
