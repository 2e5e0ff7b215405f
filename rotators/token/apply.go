package token

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rotation-agent/rotation-agent/internal/failpoint"
	"github.com/rotation-agent/rotation-agent/rotators"
	"github.com/rotation-agent/rotation-agent/rotators/internal/kvdeliver"
)

// errVerify marks a token that is not in the state the step expects.
var errVerify = errors.New("verification failed")

// Prepare refuses the agent's own token and fingerprints the token to revoke; with
// orphan_children=true it checks deliver_to holds that very token. For a rotation it also checks the token role and records the deliver_to version the rotation writes on. A fresh
// round after repeated failures keeps the old token recorded by the first round and adds the
// replacement a failed round delivered to the tokens revoked at retire.
func (r *Rotator) Prepare(ctx context.Context, req rotators.Request, st *rotators.State) error {
	c, err := parse(req.Credential)
	if err != nil {
		return err
	}
	if err := r.notSelf(ctx, c.accessor); err != nil {
		return err
	}
	info, err := r.lookupAccessor(ctx, c.accessor)
	if err != nil {
		return err
	}
	if !c.rotate {
		st.Before = fingerprint(c.accessor, info)
		if c.orphan && info != nil {
			v, _, err := r.heldIn(ctx, c, c.accessor, 0)
			if err != nil {
				return err
			}
			// Apply reads the token to revoke from this version.
			st.Before[fpVersion] = strconv.Itoa(v)
		}
		return nil
	}
	if err := r.checkRole(ctx, c.role); err != nil {
		return err
	}
	cur, err := kvdeliver.Read(ctx, r.client, c.kvMount, c.kvPath)
	if err != nil {
		return err
	}
	st.SetNote(noteBase, strconv.Itoa(cur.Version))
	if st.Rounds > 0 && st.Before[fpVersion] != "" {
		return r.supersede(ctx, req, st, str(cur.Data[FieldAccessor]))
	}
	if c.orphan && info != nil {
		// Retire reads the old token from this version to keep its children.
		if _, _, err := r.heldIn(ctx, c, c.accessor, cur.Version); err != nil {
			return err
		}
	}
	st.Before = fingerprint(c.accessor, info)
	st.Before[fpVersion] = strconv.Itoa(cur.Version)
	return nil
}

// supersede records a replacement delivered by a failed earlier round of this change, so retire
// revokes it too.
func (r *Rotator) supersede(ctx context.Context, req rotators.Request, st *rotators.State, accessor string) error {
	if accessor == "" || accessor == st.Before[fpAccessor] {
		return nil
	}
	info, err := r.lookupAccessor(ctx, accessor)
	if err != nil || info == nil {
		return err
	}
	meta, _ := info["meta"].(map[string]any)
	if str(meta[MetaChangeID]) != req.ChangeID {
		return nil
	}
	list := strings.Split(st.Before[fpSuperseded], ",")
	if !slices.Contains(list, accessor) {
		st.Before[fpSuperseded] = strings.Trim(st.Before[fpSuperseded]+","+accessor, ",")
	}
	return nil
}

// Apply revokes the token by accessor (action revoke; revoking a token that is gone does
// nothing) or, with orphan_children=true, with revoke-orphan after reading it from the
// deliver_to version prepare found it in; or it creates the replacement and delivers it (action rotate). Before creating it
// saves an intent note; a resumed attempt adopts the replacement already delivered, delivers
// the one still in memory, or revokes the ones whose value was lost before creating another.
func (r *Rotator) Apply(ctx context.Context, req rotators.Request, st *rotators.State) error {
	c, err := parse(req.Credential)
	if err != nil {
		return err
	}
	if !c.rotate {
		if c.orphan {
			// Journal entries of earlier releases also hold the version as note
			// held_in_version, always with the same value: it is not read.
			return r.revokeOrphan(ctx, c, c.accessor, noteVersion(st.Before[fpVersion]))
		}
		return r.revokeAccessor(ctx, c.accessor)
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
		candidates, err = r.ours(ctx, req.ChangeID, st.Rounds)
		if errors.Is(err, errSearchUnavailable) {
			// The earlier attempt's token, if it was created, cannot be found: it stays valid
			// until its TTL. Evidence says so.
			st.SetNote(noteUnrecovered, st.Note(noteIntent))
			st.SetNote(noteSearchDenied, "unavailable")
			candidates, err = nil, nil
		}
		if err != nil {
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
	if cur, err := kvdeliver.Read(ctx, r.client, c.kvMount, c.kvPath); err != nil {
		return err
	} else if cur.Version != base {
		return r.conflict(ctx, c, base, cur.Version, nil)
	}
	st.SetNote(noteIntent, req.Now().UTC().Format(time.RFC3339Nano))
	if err := req.Save(ctx, st); err != nil {
		return rotators.Retryable(fmt.Errorf("save intent before creating a token: %w", err))
	}
	token, acc, err := r.create(ctx, c.role, meta)
	if err != nil {
		return err
	}
	failpoint.Hit(failpoint.AfterVaultWrite)
	r.pending.Put(acc, token, req.Now())
	st.SetNote(noteNewAccessor, acc)
	if err := req.Save(ctx, st); err != nil {
		return rotators.Retryable(fmt.Errorf("save the new token accessor %s: %w", acc, err))
	}
	cur, err := kvdeliver.Read(ctx, r.client, c.kvMount, c.kvPath)
	if err != nil {
		return err
	}
	if cur.Version != base {
		return r.conflict(ctx, c, base, cur.Version, []string{acc})
	}
	return r.deliver(ctx, st, c, cur, acc, token)
}

// settle resumes an apply that already created tokens (candidates). It reports whether the
// apply is done; when it is not, every candidate has been revoked.
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
		if err := r.revokeAll(ctx, without(candidates, acc)); err != nil {
			return false, err
		}
		r.pending.Drop(acc)
		r.delivered(st, c, acc, cur.Version)
		return true, nil
	}
	for _, acc := range candidates {
		if value, ok := r.pending.Get(acc); ok {
			if err := r.revokeAll(ctx, without(candidates, acc)); err != nil {
				return false, err
			}
			st.SetNote(noteNewAccessor, acc)
			return true, r.deliver(ctx, st, c, cur, acc, value)
		}
	}
	if err := r.revokeAll(ctx, candidates); err != nil {
		return false, err
	}
	delete(st.Data, noteNewAccessor)
	return false, nil
}

// deliver writes the replacement token over version cur of deliver_to.
func (r *Rotator) deliver(ctx context.Context, st *rotators.State, c config, cur kvdeliver.State, acc, token string) error {
	v, err := kvdeliver.Write(ctx, r.client, c.kvMount, c.kvPath, cur.Version, kvdeliver.WithFields(cur.Data, map[string]any{FieldToken: token, FieldAccessor: acc}))
	if err != nil {
		if rotators.IsRetryable(err) {
			return err // perhaps written: the next attempt reads deliver_to back first
		}
		r.pending.Drop(acc)
		if rerr := r.revokeAccessor(ctx, acc); rerr != nil {
			return rotators.Permanent(fmt.Errorf("%w; revoking the undelivered token (accessor %s) also failed: %w", err, acc, rerr))
		}
		return err
	}
	failpoint.Hit(failpoint.AfterVaultWrite)
	r.pending.Drop(acc)
	r.delivered(st, c, acc, v)
	return nil
}

// delivered records the delivered version and fingerprints the replacement.
func (r *Rotator) delivered(st *rotators.State, c config, acc string, version int) {
	st.SetNote(noteNewAccessor, acc)
	st.SetNote(noteNewVersion, strconv.Itoa(version))
	st.After = rotators.Fingerprint(fpAccessor, acc, fpVersion, strconv.Itoa(version), "role", c.role)
	if at := st.Note(noteUnrecovered); at != "" {
		st.After["possible_orphan_created_after"] = at
	}
}

// conflict reports deliver_to changed by someone else, after revoking the undelivered tokens.
func (r *Rotator) conflict(ctx context.Context, c config, base, current int, undelivered []string) error {
	err := fmt.Errorf("%s changed outside the agent: version %d is current, the rotation started from %d; not overwritten", c.deliverTo(), current, base)
	if rerr := r.revokeAll(ctx, undelivered); rerr != nil {
		err = fmt.Errorf("%w; revoking the undelivered tokens also failed: %w", err, rerr)
	}
	return rotators.Permanent(err)
}

func (r *Rotator) revokeAll(ctx context.Context, accessors []string) error {
	for _, a := range accessors {
		r.pending.Drop(a)
		if err := r.revokeAccessor(ctx, a); err != nil {
			return err
		}
	}
	return nil
}
