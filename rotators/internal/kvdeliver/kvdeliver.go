// Package kvdeliver reads and writes the KV v2 secret (deliver_to) a rotator delivers a new
// credential to. Writes use check-and-set, so a version written by someone else since the
// rotation read the secret is never overwritten.
package kvdeliver

import (
	"context"
	"errors"
	"fmt"
	"strings"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/internal/vaultcall"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// State is one version of a deliver_to secret. Data may hold secrets, so a State stays in
// memory and is never logged or saved.
type State struct {
	Version int
	Data    map[string]any
}

// Read reads the current version of a KV v2 secret. A secret that does not exist yet is
// version 0 with no data.
func Read(ctx context.Context, client *vault.Client, mount, path string) (State, error) {
	kv := client.KVv2(mount)
	meta, err := kv.GetMetadata(ctx, path)
	if errors.Is(err, vault.ErrSecretNotFound) {
		return State{}, nil
	}
	if err != nil {
		return State{}, vaultcall.Classify("read metadata of "+mount+"/"+path, err)
	}
	if meta.CurrentVersion == 0 {
		return State{}, nil
	}
	return ReadVersion(ctx, client, mount, path, meta.CurrentVersion)
}

// ReadVersion reads one version of a KV v2 secret. A deleted or destroyed version has no data.
func ReadVersion(ctx context.Context, client *vault.Client, mount, path string, version int) (State, error) {
	s, err := client.KVv2(mount).GetVersion(ctx, path, version)
	if errors.Is(err, vault.ErrSecretNotFound) {
		return State{Version: version}, nil
	}
	if err != nil {
		return State{}, vaultcall.Classify(fmt.Sprintf("read version %d of %s/%s", version, mount, path), err)
	}
	return State{Version: version, Data: s.Data}, nil
}

// Write writes next as a new version with check-and-set on base and returns the new version.
// A check-and-set mismatch (another writer) and other 4xx answers are permanent errors: nothing
// was written. Any other error means the version may or may not have been written, so the
// caller reads the secret back before trying again.
func Write(ctx context.Context, client *vault.Client, mount, path string, base int, next map[string]any) (int, error) {
	s, err := client.KVv2(mount).Put(ctx, path, next, vault.WithCheckAndSet(base))
	if err != nil {
		var re *vault.ResponseError
		if errors.As(err, &re) && vaultcall.Refused(err) && strings.Contains(strings.Join(re.Errors, " "), "check-and-set") {
			return 0, rotators.Permanent(fmt.Errorf("%s/%s changed outside the agent (version %d is no longer current); not overwritten", mount, path, base))
		}
		return 0, vaultcall.Classify(fmt.Sprintf("write version %d of %s/%s", base+1, mount, path), err)
	}
	return s.VersionMetadata.Version, nil
}

// WithFields returns a copy of data with the fields in drop removed and the fields in set
// applied; data itself is not changed.
func WithFields(data map[string]any, set map[string]any, drop ...string) map[string]any {
	out := make(map[string]any, len(data)+len(set))
	for k, v := range data {
		out[k] = v
	}
	for _, k := range drop {
		delete(out, k)
	}
	for k, v := range set {
		out[k] = v
	}
	return out
}
