// Package kvv2 rotates static secrets kept in a Vault KV version 2 mount.
package kvv2

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/failpoint"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// Kind is the credential kind handled by this package.
const Kind = "kv-v2"

// Options a credential reference may carry for this kind.
const (
	// OptionRetire says what happens to the old version after the overlap: "keep" (default),
	// "delete" (soft delete, undeletable) or "destroy" (its data is removed for good).
	OptionRetire = "retire"
)

// Notes kept in the rotation state.
const (
	noteBase      = "base_version"
	noteFields    = "fields"
	noteWritingAt = "writing_at"
	noteNew       = "new_version"
	// noteWrites lists salted hashes of every value set an attempt of this round was about to
	// write, so a version written by a stale worker of the same rotation can be told from a
	// version written by someone else.
	noteWrites = "write_hashes"
	// noteSalt is the random salt of those hashes.
	noteSalt = "write_salt"
	// noteOriginal is the version the first round started from; it survives fresh rounds so
	// retire removes every version the rotation superseded.
	noteOriginal = rotators.KeepPrefix + "original_version"
)

// clockSkew is how much earlier than the recorded intent a new version may have been created
// and still be taken for the agent's own write (Vault's clock against the agent's).
const clockSkew = 5 * time.Second

// Rotator writes newly generated values into the named fields of a KV v2 secret as a new
// version, with check-and-set on the version it read, so a concurrent writer is never
// overwritten. The previous version stays readable through the overlap window; after it the
// old version is kept, deleted or destroyed as the credential's retire option says.
type Rotator struct {
	client *vault.Client
}

var _ rotators.Rotator = (*Rotator)(nil)

// New returns a KV v2 rotator using client, whose retries should be off: the agent owns retries.
func New(client *vault.Client) *Rotator { return &Rotator{client: client} }

// Kind returns "kv-v2".
func (r *Rotator) Kind() string { return Kind }

func (r *Rotator) check(ref events.CredentialRef) error {
	if ref.EffectiveAction() != events.ActionRotate {
		return rotators.Permanent(fmt.Errorf("kv-v2 supports the rotate action only, not %q", ref.EffectiveAction()))
	}
	switch ref.Options[OptionRetire] {
	case "", "keep", "delete", "destroy":
		return nil
	default:
		return rotators.Permanent(fmt.Errorf("option %s=%q: want keep, delete or destroy", OptionRetire, ref.Options[OptionRetire]))
	}
}

// Plan reads the secret and reports the version a rotation would write.
func (r *Rotator) Plan(ctx context.Context, req rotators.Request) (rotators.Plan, error) {
	ref := req.Credential
	if err := r.check(ref); err != nil {
		return rotators.Plan{}, err
	}
	base, fields, err := r.current(ctx, ref)
	if err != nil {
		return rotators.Plan{}, err
	}
	retire := ref.Options[OptionRetire]
	if retire == "" {
		retire = "keep"
	}
	return rotators.Plan{
		Action:  events.ActionRotate,
		Current: rotators.Fingerprint("version", strconv.Itoa(base)),
		Changes: []string{
			fmt.Sprintf("write version %d of %s/%s with new values for %s (check-and-set on version %d)", base+1, ref.Mount, ref.Path, strings.Join(fields, ", "), base),
			fmt.Sprintf("after the overlap window: %s version %d", retire, base),
		},
	}, nil
}

// current reads the current version number and the fields a rotation would change.
func (r *Rotator) current(ctx context.Context, ref events.CredentialRef) (int, []string, error) {
	kv := r.client.KVv2(ref.Mount)
	meta, err := kv.GetMetadata(ctx, ref.Path)
	if err != nil {
		return 0, nil, classify("read metadata of", ref, err)
	}
	cur, err := kv.GetVersion(ctx, ref.Path, meta.CurrentVersion)
	if err != nil {
		return 0, nil, classify("read current version of", ref, err)
	}
	fields, err := fieldsToRotate(ref.Fields, cur.Data)
	if err != nil {
		return 0, nil, rotators.Permanent(fmt.Errorf("%s: %w", ref.ID(), err))
	}
	return meta.CurrentVersion, fields, nil
}

// Prepare records the version the rotation starts from and the fields it changes.
func (r *Rotator) Prepare(ctx context.Context, req rotators.Request, st *rotators.State) error {
	if err := r.check(req.Credential); err != nil {
		return err
	}
	base, fields, err := r.current(ctx, req.Credential)
	if err != nil {
		return err
	}
	st.SetNote(noteBase, strconv.Itoa(base))
	st.SetNote(noteFields, strings.Join(fields, ","))
	if st.Note(noteOriginal) == "" {
		st.SetNote(noteOriginal, strconv.Itoa(base))
		st.Before = rotators.Fingerprint("version", strconv.Itoa(base), "fields", strings.Join(fields, ","))
	}
	return nil
}

// Apply writes the new version with check-and-set on the base version. If an interrupted
// attempt already wrote it, the written version is adopted instead of writing again.
func (r *Rotator) Apply(ctx context.Context, req rotators.Request, st *rotators.State) error {
	ref := req.Credential
	if st.Note(noteNew) != "" {
		return nil
	}
	base, err := strconv.Atoi(st.Note(noteBase))
	if err != nil {
		return rotators.Permanent(fmt.Errorf("state of %s has no base version", ref.ID()))
	}
	kv := r.client.KVv2(ref.Mount)
	meta, err := kv.GetMetadata(ctx, ref.Path)
	if err != nil {
		return classify("read metadata of", ref, err)
	}
	if meta.CurrentVersion != base {
		return r.adopt(ctx, req, st, meta, base)
	}
	cur, err := kv.GetVersion(ctx, ref.Path, base)
	if err != nil {
		return classify("read current version of", ref, err)
	}
	next := make(map[string]any, len(cur.Data))
	for k, v := range cur.Data {
		next[k] = v
	}
	for _, f := range strings.Split(st.Note(noteFields), ",") {
		v, err := req.Generate(ctx)
		if err != nil {
			return fmt.Errorf("generate value for field %q: %w", f, err)
		}
		next[f] = v
	}
	st.SetNote(noteWritingAt, req.Now().UTC().Format(time.RFC3339Nano))
	if err := recordWrite(st, next); err != nil {
		return err
	}
	if err := req.Save(ctx, st); err != nil {
		return rotators.Retryable(err)
	}
	written, err := kv.Put(ctx, ref.Path, next, vault.WithCheckAndSet(base))
	if err != nil {
		return writeError(ref, base, err)
	}
	failpoint.Hit(failpoint.AfterVaultWrite)
	st.SetNote(noteNew, strconv.Itoa(written.VersionMetadata.Version))
	st.After = rotators.Fingerprint("version", strconv.Itoa(written.VersionMetadata.Version),
		"created_time", written.VersionMetadata.CreatedTime.UTC().Format(time.RFC3339Nano))
	return nil
}

// adopt settles an apply whose base version is no longer current: the agent's own lost write
// is adopted; anyone else's is refused.
func (r *Rotator) adopt(ctx context.Context, req rotators.Request, st *rotators.State, meta *vault.KVMetadata, base int) error {
	ref := req.Credential
	writingAt, err := time.Parse(time.RFC3339Nano, st.Note(noteWritingAt))
	ours, ok := meta.Versions[strconv.Itoa(base+1)]
	if err != nil || !ok || meta.CurrentVersion != base+1 || ours.CreatedTime.Before(writingAt.Add(-clockSkew)) {
		return rotators.Permanent(fmt.Errorf(
			"%s changed outside the agent: version %d is current, the rotation started from %d", ref.ID(), meta.CurrentVersion, base))
	}
	if st.Note(noteWrites) != "" {
		// The journal knows every value set an attempt was about to write: the version must
		// hold one of them, or someone else wrote it.
		written, err := r.client.KVv2(ref.Mount).GetVersion(ctx, ref.Path, base+1)
		if err != nil {
			return classify("read version "+strconv.Itoa(base+1)+" of", ref, err)
		}
		if !wroteThis(st, written.Data) {
			return rotators.Permanent(fmt.Errorf(
				"%s changed outside the agent: version %d holds values no attempt of this rotation wrote", ref.ID(), base+1))
		}
	}
	st.SetNote(noteNew, strconv.Itoa(base+1))
	st.After = rotators.Fingerprint("version", strconv.Itoa(base+1), "created_time", ours.CreatedTime.UTC().Format(time.RFC3339Nano))
	return nil
}

// errVerify marks a new version that does not hold what the rotation wrote.
var errVerify = errors.New("verification failed")

// Verify reads the new and the base version back: every rotated field must hold a new,
// non-empty value and every other field must be unchanged.
func (r *Rotator) Verify(ctx context.Context, req rotators.Request, st *rotators.State) error {
	ref := req.Credential
	kv := r.client.KVv2(ref.Mount)
	base, _ := strconv.Atoi(st.Note(noteBase))
	newV, _ := strconv.Atoi(st.Note(noteNew))
	oldS, err := kv.GetVersion(ctx, ref.Path, base)
	if err != nil {
		return classify("read version "+strconv.Itoa(base)+" of", ref, err)
	}
	newS, err := kv.GetVersion(ctx, ref.Path, newV)
	if err != nil {
		return classify("read version "+strconv.Itoa(newV)+" of", ref, err)
	}
	rotated := map[string]bool{}
	for _, f := range strings.Split(st.Note(noteFields), ",") {
		rotated[f] = true
		nv, _ := newS.Data[f].(string)
		if nv == "" || newS.Data[f] == oldS.Data[f] {
			return rotators.Retryable(fmt.Errorf("%w: field %q of %s version %d is empty or unchanged", errVerify, f, ref.ID(), newV))
		}
	}
	for k, v := range oldS.Data {
		if !rotated[k] && fmt.Sprint(newS.Data[k]) != fmt.Sprint(v) {
			return rotators.Retryable(fmt.Errorf("%w: field %q of %s changed though it was not to be rotated", errVerify, k, ref.ID()))
		}
	}
	return nil
}

// Promote has nothing to do: the new version is the current one as soon as it is written.
func (r *Rotator) Promote(context.Context, rotators.Request, *rotators.State) error { return nil }

// Retire deletes or destroys the versions the rotation superseded (the original version, and
// any version of an abandoned round) when the credential asks for it, and checks Vault's
// metadata shows it. A version already pruned by max_versions counts as gone.
func (r *Rotator) Retire(ctx context.Context, req rotators.Request, st *rotators.State) error {
	ref := req.Credential
	if err := r.check(ref); err != nil {
		return err
	}
	mode := ref.Options[OptionRetire]
	if st.After == nil {
		st.After = events.Fingerprint{}
	}
	if mode == "" || mode == "keep" {
		st.After["old_version"] = "kept"
		return nil
	}
	past := map[string]string{"delete": "deleted", "destroy": "destroyed"}[mode]
	first, err1 := strconv.Atoi(st.Note(noteOriginal))
	if err1 != nil { // a state written before fresh rounds kept the original version
		first, err1 = strconv.Atoi(st.Note(noteBase))
	}
	current, err2 := strconv.Atoi(st.Note(noteNew))
	if err2 != nil {
		current, err2 = first+1, err1
	}
	if err1 != nil || err2 != nil || first >= current {
		return rotators.Permanent(fmt.Errorf("state of %s does not say which versions to %s", ref.ID(), mode))
	}
	kv := r.client.KVv2(ref.Mount)
	pending := func() ([]int, error) {
		meta, err := kv.GetMetadata(ctx, ref.Path)
		if err != nil {
			return nil, classify("read metadata of", ref, err)
		}
		var left []int
		for v := first; v < current; v++ {
			m, ok := meta.Versions[strconv.Itoa(v)]
			if ok && ((mode == "delete" && m.DeletionTime.IsZero()) || (mode == "destroy" && !m.Destroyed)) {
				left = append(left, v)
			}
		}
		return left, nil
	}
	left, err := pending()
	if err != nil {
		return err
	}
	if len(left) > 0 {
		if mode == "delete" {
			err = kv.DeleteVersions(ctx, ref.Path, left)
		} else {
			err = kv.Destroy(ctx, ref.Path, left)
		}
		if err != nil {
			return classify(mode+" version "+joinInts(left)+" of", ref, err)
		}
		if left, err = pending(); err != nil {
			return err
		}
		if len(left) > 0 {
			return rotators.Retryable(fmt.Errorf("%w: version %s of %s is not %s", errVerify, joinInts(left), ref.ID(), past))
		}
	}
	st.After["old_version"] = past
	return nil
}

func joinInts(vs []int) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = strconv.Itoa(v)
	}
	return strings.Join(parts, ",")
}

// fieldsToRotate picks the fields to change: the named ones, which must exist, or the only
// field of a single-field secret. A multi-field secret without named fields is refused rather
// than guessed at: rotating a user name or a host would break its consumers.
func fieldsToRotate(named []string, data map[string]any) ([]string, error) {
	if len(named) == 0 {
		if len(data) != 1 {
			keys := make([]string, 0, len(data))
			for k := range data {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			return nil, fmt.Errorf("secret has %d fields %v: name the fields to rotate", len(keys), keys)
		}
		for k := range data {
			return []string{k}, nil
		}
	}
	var missing []string
	for _, f := range named {
		if _, ok := data[f]; !ok {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("secret has no field %v", missing)
	}
	out := append([]string(nil), named...)
	sort.Strings(out)
	return out, nil
}

// writeError classifies a failed write. Vault answering 4xx (but 429) means nothing was
// written: a check-and-set mismatch is retried, and the retry reads Vault back (see Apply);
// other 4xx answers are permanent. Anything else may or may not have been written (a lost
// response); the next attempt reads Vault's state back before writing again.
func writeError(ref events.CredentialRef, base int, err error) error {
	var re *vault.ResponseError
	if errors.As(err, &re) && re.StatusCode >= 400 && re.StatusCode < 500 && re.StatusCode != 429 {
		if strings.Contains(strings.Join(re.Errors, " "), "check-and-set") {
			// Someone wrote between the read and the write; nothing was overwritten. It may be
			// a stale worker of this very rotation (frozen past its lock and woken up), so the
			// next attempt reads Vault back: Apply adopts the version if the journal's intent
			// explains it and refuses it as a change outside the agent otherwise.
			return rotators.Retryable(fmt.Errorf("%s: version %d is no longer current (check-and-set); not overwritten, reading Vault back: %w", ref.ID(), base, err))
		}
		return rotators.Permanent(fmt.Errorf("write new version of %s: %w", ref.ID(), err))
	}
	return rotators.Retryable(fmt.Errorf("write new version of %s: %w", ref.ID(), err))
}

func classify(what string, ref events.CredentialRef, err error) error {
	wrapped := fmt.Errorf("%s %s: %w", what, ref.ID(), err)
	if errors.Is(err, vault.ErrSecretNotFound) {
		return rotators.Permanent(wrapped)
	}
	if rotators.IsRetryable(err) {
		return rotators.Retryable(wrapped)
	}
	return rotators.Permanent(wrapped)
}
