package token

import (
	"context"
	"errors"
	"fmt"
	"strings"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/rotators"
)

// kvState is a version of the deliver_to secret. data may hold secrets: it stays in memory.
type kvState struct {
	version int
	data    map[string]any
}

// readKV reads the current version of a KV v2 secret; a secret that does not exist yet is
// version 0 with no data.
func readKV(ctx context.Context, client *vault.Client, mount, path string) (kvState, error) {
	kv := client.KVv2(mount)
	meta, err := kv.GetMetadata(ctx, path)
	if errors.Is(err, vault.ErrSecretNotFound) {
		return kvState{}, nil
	}
	if err != nil {
		return kvState{}, classify("read metadata of "+mount+"/"+path, err)
	}
	if meta.CurrentVersion == 0 {
		return kvState{}, nil
	}
	return readKVVersion(ctx, client, mount, path, meta.CurrentVersion)
}

// readKVVersion reads one version; a deleted or destroyed version has no data.
func readKVVersion(ctx context.Context, client *vault.Client, mount, path string, version int) (kvState, error) {
	s, err := client.KVv2(mount).GetVersion(ctx, path, version)
	if errors.Is(err, vault.ErrSecretNotFound) {
		return kvState{version: version}, nil
	}
	if err != nil {
		return kvState{}, classify(fmt.Sprintf("read version %d of %s/%s", version, mount, path), err)
	}
	return kvState{version: version, data: s.Data}, nil
}

// writeKV writes next as a new version with check-and-set on base and returns the new version.
// A check-and-set mismatch (another writer) and other 4xx answers are permanent: nothing was
// written. Anything else may or may not have been written; the caller reads back first.
func writeKV(ctx context.Context, client *vault.Client, mount, path string, base int, next map[string]any) (int, error) {
	s, err := client.KVv2(mount).Put(ctx, path, next, vault.WithCheckAndSet(base))
	if err != nil {
		var re *vault.ResponseError
		if errors.As(err, &re) && refused(err) && strings.Contains(strings.Join(re.Errors, " "), "check-and-set") {
			return 0, rotators.Permanent(fmt.Errorf("%s/%s changed outside the agent (version %d is no longer current); not overwritten", mount, path, base))
		}
		return 0, classify(fmt.Sprintf("write version %d of %s/%s", base+1, mount, path), err)
	}
	return s.VersionMetadata.Version, nil
}

// withFields returns a copy of data with set applied and drop removed.
func withFields(data map[string]any, set map[string]any, drop ...string) map[string]any {
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
