package token

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

// maxSearch bounds how many token accessors a resumed rotation looks up to find a token it
// created before an interruption.
const maxSearch = 5000

// errSearchUnavailable marks a token search the agent cannot make (no list permission on
// auth/token/accessors, or too many tokens).
var errSearchUnavailable = errors.New("token search unavailable")

// lookupAccessor looks a token up by accessor; it returns nil when no token has it.
func (r *Rotator) lookupAccessor(ctx context.Context, accessor string) (map[string]any, error) {
	s, err := r.client.Logical().WriteWithContext(ctx, "auth/token/lookup-accessor", map[string]any{"accessor": accessor})
	if vaultcall.Status(err) == http.StatusBadRequest {
		return nil, nil // "invalid accessor": no such token
	}
	if err != nil {
		return nil, vaultcall.Classify("look up token accessor "+accessor, err)
	}
	if s == nil || s.Data == nil {
		return nil, nil
	}
	return s.Data, nil
}

// revokeAccessor revokes the token with accessor and its children; a token already gone is fine.
func (r *Rotator) revokeAccessor(ctx context.Context, accessor string) error {
	info, err := r.lookupAccessor(ctx, accessor)
	if err != nil || info == nil {
		return err
	}
	if _, err := r.client.Logical().WriteWithContext(ctx, "auth/token/revoke-accessor", map[string]any{"accessor": accessor}); err != nil {
		return vaultcall.Classify("revoke token accessor "+accessor, err)
	}
	return nil
}

// notSelf refuses to act on the agent's own token.
func (r *Rotator) notSelf(ctx context.Context, accessor string) error {
	s, err := r.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return vaultcall.Classify("look up the agent's own token", err)
	}
	if s != nil && str(s.Data["accessor"]) == accessor {
		return rotators.Permanent(fmt.Errorf("accessor %s is the agent's own token; not revoked", accessor))
	}
	return nil
}

// checkRole reads a token role and refuses one whose tokens would not outlive the agent's own
// token (orphan=false: they would be its children) or have no accessor (batch tokens).
func (r *Rotator) checkRole(ctx context.Context, role string) error {
	s, err := r.client.Logical().ReadWithContext(ctx, "auth/token/roles/"+role)
	if err != nil {
		return vaultcall.Classify("read token role "+role, err)
	}
	if s == nil || s.Data == nil {
		return rotators.Permanent(fmt.Errorf("token role %q not found", role))
	}
	if orphan, _ := s.Data["orphan"].(bool); !orphan {
		return rotators.Permanent(fmt.Errorf("token role %q does not set orphan=true: a token the agent creates from it "+
			"would be a child of the agent's own token and be revoked with it", role))
	}
	switch t := str(s.Data["token_type"]); t {
	case "batch", "default-batch":
		return rotators.Permanent(fmt.Errorf("token role %q issues %s tokens, which have no accessor to verify or revoke them by", role, t))
	}
	return nil
}

// create creates a token from role carrying meta and returns its value and accessor.
func (r *Rotator) create(ctx context.Context, role string, meta map[string]string) (token, accessor string, err error) {
	s, err := r.client.Logical().WriteWithContext(ctx, "auth/token/create/"+role, map[string]any{"meta": meta})
	if err != nil {
		return "", "", vaultcall.Classify("create a token from role "+role, err)
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" || s.Auth.Accessor == "" {
		return "", "", rotators.Retryable(fmt.Errorf("create a token from role %s: Vault returned no token or accessor", role))
	}
	return s.Auth.ClientToken, s.Auth.Accessor, nil
}

// ours finds live tokens created for changeID in round (any round when round < 0), by listing
// every token accessor. It returns errSearchUnavailable when the agent may not list them.
func (r *Rotator) ours(ctx context.Context, changeID string, round int) ([]string, error) {
	s, err := r.client.Logical().ListWithContext(ctx, "auth/token/accessors")
	if vaultcall.Refused(err) {
		return nil, fmt.Errorf("%w: %w", errSearchUnavailable, err)
	}
	if err != nil {
		return nil, vaultcall.Classify("list token accessors", err)
	}
	if s == nil {
		return nil, nil
	}
	keys, _ := s.Data["keys"].([]any)
	if len(keys) > maxSearch {
		return nil, fmt.Errorf("%w: %d tokens exceed the search limit of %d", errSearchUnavailable, len(keys), maxSearch)
	}
	var out []string
	for _, k := range keys {
		a := str(k)
		info, err := r.lookupAccessor(ctx, a)
		if err != nil {
			return nil, err
		}
		meta, _ := info["meta"].(map[string]any)
		if meta != nil && str(meta[MetaChangeID]) == changeID && (round < 0 || str(meta[MetaRound]) == strconv.Itoa(round)) {
			out = append(out, a)
		}
	}
	return out, nil
}

// lookupSelf looks a token up with the token itself and returns its accessor.
func (r *Rotator) lookupSelf(ctx context.Context, token string) (string, error) {
	client, err := vaultcall.ClientAs(r.client, token)
	if err != nil {
		return "", rotators.Permanent(err)
	}
	s, err := client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return "", err
	}
	if s == nil {
		return "", errors.New("lookup-self returned nothing")
	}
	return str(s.Data["accessor"]), nil
}

// num returns a number from a Vault response, or 0.
func num(v any) int64 {
	switch n := v.(type) {
	case json.Number:
		i, _ := n.Int64()
		return i
	case float64:
		return int64(n)
	}
	return 0
}
