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

// Steps recorded in the checkpoint.
const (
	// StepWriting is recorded before the new version is written; Before holds the base version.
	StepWriting = "writing"
	// StepWritten is recorded once the new version exists; After holds its number.
	StepWritten = "written"
)

// clockSkew is how much earlier than the recorded intent a new version may have been created
// and still be taken for the agent's own write (Vault's clock against the agent's).
const clockSkew = 5 * time.Second

// Rotator writes newly generated values into the named fields of a KV v2 secret as a new
// version, with check-and-set on the version it read, so a concurrent writer is never
// overwritten. Earlier versions stay readable for consumers in their overlap.
type Rotator struct {
	client *vault.Client
}

var _ rotators.Rotator = (*Rotator)(nil)

// New returns a KV v2 rotator using client, whose retries should be off: the agent owns retries.
func New(client *vault.Client) *Rotator { return &Rotator{client: client} }

// Kind returns "kv-v2".
func (r *Rotator) Kind() string { return Kind }

// Rotate writes a new version of the secret. A checkpoint from an interrupted attempt is
// resumed: if the new version was already written it is reported, not written again.
func (r *Rotator) Rotate(ctx context.Context, req rotators.Request) (rotators.Result, error) {
	ref := req.Credential
	if ref.EffectiveAction() != events.ActionRotate {
		return rotators.Result{}, rotators.Permanent(fmt.Errorf("kv-v2 supports the rotate action only, not %q", ref.EffectiveAction()))
	}
	kv := r.client.KVv2(ref.Mount)
	cp := req.Checkpoint

	switch cp.Step {
	case StepWritten:
		return rotators.Result{Before: cp.Before, After: cp.After, Resumed: true}, nil
	case StepWriting:
		done, res, err := r.resume(ctx, kv, req)
		if err != nil || done {
			return res, err
		}
	case "":
	default:
		return rotators.Result{}, rotators.Permanent(fmt.Errorf("unknown checkpoint step %q", cp.Step))
	}

	meta, err := kv.GetMetadata(ctx, ref.Path)
	if err != nil {
		return rotators.Result{}, classify("read metadata of", ref, err)
	}
	base := meta.CurrentVersion
	current, err := kv.GetVersion(ctx, ref.Path, base)
	if err != nil {
		return rotators.Result{}, classify("read current version of", ref, err)
	}
	fields, err := fieldsToRotate(ref.Fields, current.Data)
	if err != nil {
		return rotators.Result{}, rotators.Permanent(fmt.Errorf("%s: %w", ref.ID(), err))
	}
	next := make(map[string]any, len(current.Data))
	for k, v := range current.Data {
		next[k] = v
	}
	for _, f := range fields {
		v, err := req.Generate(f)
		if err != nil {
			return rotators.Result{}, rotators.Permanent(fmt.Errorf("generate value for field %q: %w", f, err))
		}
		next[f] = v
	}

	before := events.Fingerprint{"version": strconv.Itoa(base), "fields": strings.Join(fields, ",")}
	if err := req.Record(ctx, rotators.Checkpoint{Step: StepWriting, Before: before, At: time.Now().UTC()}); err != nil {
		return rotators.Result{}, err
	}
	written, err := kv.Put(ctx, ref.Path, next, vault.WithCheckAndSet(base))
	if err != nil {
		return rotators.Result{}, writeError(ref, base, err)
	}
	failpoint.Hit(failpoint.AfterVaultWrite)
	after := events.Fingerprint{"version": strconv.Itoa(written.VersionMetadata.Version),
		"created_time": written.VersionMetadata.CreatedTime.UTC().Format(time.RFC3339Nano)}
	if err := req.Record(ctx, rotators.Checkpoint{Step: StepWritten, Before: before, After: after, At: time.Now().UTC()}); err != nil {
		return rotators.Result{}, err
	}
	return rotators.Result{Before: before, After: after}, nil
}

// resume settles a rotation interrupted after its intent was recorded. It reports done with
// the result when the new version exists, or not done when the write never happened.
func (r *Rotator) resume(ctx context.Context, kv *vault.KVv2, req rotators.Request) (bool, rotators.Result, error) {
	ref, cp := req.Credential, req.Checkpoint
	base, err := strconv.Atoi(cp.Before["version"])
	if err != nil {
		return false, rotators.Result{}, rotators.Permanent(fmt.Errorf("checkpoint of %s has no base version", ref.ID()))
	}
	meta, err := kv.GetMetadata(ctx, ref.Path)
	if err != nil {
		return false, rotators.Result{}, classify("read metadata of", ref, err)
	}
	if meta.CurrentVersion == base {
		return false, rotators.Result{}, nil // the write never happened: do it now
	}
	ours, ok := meta.Versions[strconv.Itoa(base+1)]
	if !ok || ours.CreatedTime.Before(cp.At.Add(-clockSkew)) {
		return false, rotators.Result{}, rotators.Permanent(fmt.Errorf(
			"%s changed outside the agent: version %d is current, the agent meant to write %d", ref.ID(), meta.CurrentVersion, base+1))
	}
	after := events.Fingerprint{"version": strconv.Itoa(base + 1), "created_time": ours.CreatedTime.UTC().Format(time.RFC3339Nano)}
	if err := req.Record(ctx, rotators.Checkpoint{Step: StepWritten, Before: cp.Before, After: after, At: time.Now().UTC()}); err != nil {
		return false, rotators.Result{}, err
	}
	return true, rotators.Result{Before: cp.Before, After: after, Resumed: true}, nil
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
// written: a check-and-set mismatch is another writer's version, which the agent must neither
// overwrite nor claim, so it is permanent. Anything else may or may not have been written (a
// lost response); the next attempt resumes from the StepWriting checkpoint and reads Vault's
// state back instead of writing blind.
func writeError(ref events.CredentialRef, base int, err error) error {
	var re *vault.ResponseError
	if errors.As(err, &re) && re.StatusCode >= 400 && re.StatusCode < 500 && re.StatusCode != 429 {
		if strings.Contains(strings.Join(re.Errors, " "), "check-and-set") {
			return rotators.Permanent(fmt.Errorf("%s changed outside the agent during rotation (version %d is no longer current); not overwritten", ref.ID(), base))
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
