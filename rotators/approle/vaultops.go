package approle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/rotation-agent/rotation-agent/internal/vaultcall"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// secretIDInfo is what Vault tells about a secret id by its accessor; it holds no secret.
type secretIDInfo struct {
	metadata   map[string]string
	numUses    int64
	expiration string
}

// roleID reads the role's role id; a missing role is a permanent error.
func (r *Rotator) roleID(ctx context.Context, c config) (string, error) {
	s, err := r.client.Logical().ReadWithContext(ctx, c.rolePath("role-id"))
	if err != nil {
		return "", vaultcall.Classify(fmt.Sprintf("read role id of AppRole role %q at auth/%s", c.role, c.mount), err)
	}
	id := ""
	if s != nil {
		id = str(s.Data["role_id"])
	}
	if id == "" {
		return "", rotators.Permanent(fmt.Errorf("AppRole role %q not found at auth/%s", c.role, c.mount))
	}
	return id, nil
}

// lookup reads a secret id by its accessor; it returns nil when the secret id does not exist.
func (r *Rotator) lookup(ctx context.Context, c config, accessor string) (*secretIDInfo, error) {
	s, err := r.client.Logical().WriteWithContext(ctx, c.rolePath("secret-id-accessor/lookup"),
		map[string]any{"secret_id_accessor": accessor})
	if vaultcall.Status(err) == http.StatusNotFound || (err == nil && (s == nil || s.Data == nil)) {
		return nil, nil
	}
	if err != nil {
		return nil, vaultcall.Classify(fmt.Sprintf("look up secret id accessor %s of role %q", accessor, c.role), err)
	}
	info := &secretIDInfo{metadata: map[string]string{}, numUses: num(s.Data["secret_id_num_uses"]), expiration: str(s.Data["expiration_time"])}
	if m, ok := s.Data["metadata"].(map[string]any); ok {
		for k, v := range m {
			info.metadata[k] = str(v)
		}
	}
	return info, nil
}

// accessors lists the accessors of the role's secret ids.
func (r *Rotator) accessors(ctx context.Context, c config) ([]string, error) {
	s, err := r.client.Logical().ListWithContext(ctx, c.rolePath("secret-id"))
	if err != nil {
		return nil, vaultcall.Classify(fmt.Sprintf("list secret id accessors of role %q", c.role), err)
	}
	if s == nil {
		return nil, nil
	}
	keys, _ := s.Data["keys"].([]any)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if a := str(k); a != "" {
			out = append(out, a)
		}
	}
	return out, nil
}

// ours finds the role's secret ids generated for changeID, in round when round >= 0.
func (r *Rotator) ours(ctx context.Context, c config, changeID string, round int) ([]string, error) {
	all, err := r.accessors(ctx, c)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range all {
		info, err := r.lookup(ctx, c, a)
		if err != nil {
			return nil, err
		}
		if info != nil && info.metadata[MetaChangeID] == changeID && (round < 0 || info.metadata[MetaRound] == strconv.Itoa(round)) {
			out = append(out, a)
		}
	}
	return out, nil
}

// generated is a new secret id: value is the secret id, or the wrapping token for it.
type generated struct {
	value, accessor, wrapAccessor string
}

// generate creates a secret id carrying meta; with a wrap TTL Vault returns it wrapped.
func (r *Rotator) generate(ctx context.Context, c config, meta map[string]string) (generated, error) {
	raw, err := json.Marshal(meta)
	if err != nil {
		return generated{}, rotators.Permanent(err)
	}
	client := r.client
	if c.wrapTTL != "" {
		if client, err = vaultcall.ClientAs(r.client, r.client.Token()); err != nil {
			return generated{}, rotators.Permanent(err)
		}
		ttl := c.wrapTTL
		client.SetWrappingLookupFunc(func(string, string) string { return ttl })
	}
	s, err := client.Logical().WriteWithContext(ctx, c.rolePath("secret-id"), map[string]any{"metadata": string(raw)})
	if err != nil {
		return generated{}, vaultcall.Classify(fmt.Sprintf("generate a secret id for role %q", c.role), err)
	}
	var g generated
	switch {
	case s != nil && s.WrapInfo != nil:
		g = generated{value: s.WrapInfo.Token, accessor: s.WrapInfo.WrappedAccessor, wrapAccessor: s.WrapInfo.Accessor}
	case s != nil:
		g = generated{value: str(s.Data["secret_id"]), accessor: str(s.Data["secret_id_accessor"])}
	}
	if g.value == "" || g.accessor == "" {
		return generated{}, rotators.Retryable(fmt.Errorf("generate a secret id for role %q: Vault returned no secret id or accessor", c.role))
	}
	return g, nil
}

// destroy destroys a secret id by accessor; a secret id already gone is fine.
func (r *Rotator) destroy(ctx context.Context, c config, accessor string) error {
	info, err := r.lookup(ctx, c, accessor)
	if err != nil || info == nil {
		return err
	}
	_, err = r.client.Logical().WriteWithContext(ctx, c.rolePath("secret-id-accessor/destroy"),
		map[string]any{"secret_id_accessor": accessor})
	if err != nil {
		return vaultcall.Classify(fmt.Sprintf("destroy secret id accessor %s of role %q", accessor, c.role), err)
	}
	return nil
}

// login logs in with role id and secret id and returns the token and its accessor.
func (r *Rotator) login(ctx context.Context, c config, roleID, secretID string) (token, accessor string, err error) {
	client, err := vaultcall.ClientAs(r.client, "")
	if err != nil {
		return "", "", rotators.Permanent(err)
	}
	s, err := client.Logical().WriteWithContext(ctx, "auth/"+c.mount+"/login", map[string]any{"role_id": roleID, "secret_id": secretID})
	if err != nil {
		return "", "", err
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return "", "", errors.New("login returned no token")
	}
	return s.Auth.ClientToken, s.Auth.Accessor, nil
}

// revokeLogin revokes a token the rotator's own login produced: with the token itself, or by
// accessor when its policies do not allow revoke-self.
func (r *Rotator) revokeLogin(ctx context.Context, token, accessor string) error {
	client, err := vaultcall.ClientAs(r.client, token)
	if err != nil {
		return err
	}
	if _, err = client.Logical().WriteWithContext(ctx, "auth/token/revoke-self", nil); err == nil {
		return nil
	}
	_, err = r.client.Logical().WriteWithContext(ctx, "auth/token/revoke-accessor", map[string]any{"accessor": accessor})
	return err
}
