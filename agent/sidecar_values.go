package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// valueReader reads the new value of a promoted credential, field by field, for a sidecar's
// files. The values are secret: they stay in memory and are never logged.
type valueReader interface {
	read(ctx context.Context, ref events.CredentialRef, st rotators.State) (map[string]string, error)
}

// vaultValues reads new values where consumers get them from Vault:
//   - kv-v2: the version the rotation wrote (the "version" of its new fingerprint);
//   - database-static-role: <mount>/static-creds/<role> (username, password, ...);
//   - any kind with a deliver_to option (pki, token, approle-secret-id): the current version
//     of that KV v2 secret, where the rotator delivered the new credential.
type vaultValues struct {
	client *vault.Client
}

// deliverable reports whether vaultValues knows where to read a credential's new value.
func deliverable(ref events.CredentialRef) bool {
	return ref.Kind == "kv-v2" || ref.Kind == "database-static-role" || ref.Options["deliver_to"] != ""
}

func (v vaultValues) read(ctx context.Context, ref events.CredentialRef, st rotators.State) (map[string]string, error) {
	switch {
	case ref.Kind == "kv-v2":
		version, err := strconv.Atoi(st.After["version"])
		if err != nil {
			return nil, rotators.Permanent(fmt.Errorf("%s: the rotation recorded no new version", ref.ID()))
		}
		s, err := v.client.KVv2(ref.Mount).GetVersion(ctx, ref.Path, version)
		if err != nil {
			return nil, classifyVault(fmt.Sprintf("read version %d of %s/%s", version, ref.Mount, ref.Path), err)
		}
		return stringValues(s.Data), nil
	case ref.Kind == "database-static-role":
		path := ref.Mount + "/static-creds/" + ref.Path
		s, err := v.client.Logical().ReadWithContext(ctx, path)
		if err != nil {
			return nil, classifyVault("read "+path, err)
		}
		if s == nil || s.Data == nil {
			return nil, rotators.Permanent(fmt.Errorf("%s holds no credentials", path))
		}
		return stringValues(s.Data), nil
	case ref.Options["deliver_to"] != "":
		mount, path, ok := strings.Cut(strings.Trim(ref.Options["deliver_to"], "/"), "/")
		if !ok || mount == "" || path == "" {
			return nil, rotators.Permanent(fmt.Errorf("option deliver_to=%q: want <kv-v2 mount>/<path>", ref.Options["deliver_to"]))
		}
		s, err := v.client.KVv2(mount).Get(ctx, path)
		if err != nil {
			return nil, classifyVault("read "+mount+"/"+path, err)
		}
		return stringValues(s.Data), nil
	}
	return nil, rotators.Permanent(fmt.Errorf("sidecar mode cannot deliver a %s credential without a deliver_to option", ref.Kind))
}

// classifyVault marks a Vault error retryable or permanent, as the rotators do.
func classifyVault(what string, err error) error {
	wrapped := fmt.Errorf("%s: %w", what, err)
	if errors.Is(err, vault.ErrSecretNotFound) || !rotators.IsRetryable(err) {
		return rotators.Permanent(wrapped)
	}
	return rotators.Retryable(wrapped)
}

// stringValues turns a secret's data into strings: strings as they are, lists of strings one
// per line (a CA chain), anything else as JSON.
func stringValues(data map[string]any) map[string]string {
	out := make(map[string]string, len(data))
	for k, raw := range data {
		switch v := raw.(type) {
		case string:
			out[k] = v
		case []any:
			parts := make([]string, 0, len(v))
			for _, item := range v {
				if s, ok := item.(string); ok {
					parts = append(parts, s)
				}
			}
			out[k] = strings.Join(parts, "\n")
		case nil:
		default:
			if b, err := json.Marshal(v); err == nil {
				out[k] = string(b)
			}
		}
	}
	return out
}
