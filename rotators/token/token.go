// Package token revokes Vault tokens by accessor and, with a token role, rotates a delivered
// token: it creates the replacement from the role, delivers it to a KV version 2 secret, proves
// it works, and revokes the old token after the overlap window.
package token

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
	"github.com/rotation-agent/rotation-agent/rotators/internal/kvdeliver"
	"github.com/rotation-agent/rotation-agent/rotators/internal/pending"
)

// Kind is the credential kind handled by this package. A credential of this kind has Mount
// "token" and the token's accessor as Path (accessors are not secret).
const Kind = "token"

// Options a credential reference may carry for this kind.
const (
	// OptionRole names the token role the replacement token is created from (action rotate).
	OptionRole = "role"
	// OptionDeliverTo names the KV version 2 secret, as "<mount>/<path>", the replacement
	// token is delivered to (action rotate).
	OptionDeliverTo = "deliver_to"
	// OptionOrphanChildren, set to "true", keeps the token's children alive: the token is
	// revoked with auth/token/revoke-orphan, which takes the token itself, so the option needs
	// deliver_to naming the KV version 2 secret that holds it.
	OptionOrphanChildren = "orphan_children"
)

// Fields of the deliver_to secret.
const (
	// FieldToken holds the token.
	FieldToken = "token"
	// FieldAccessor holds the accessor of the delivered token; it is not secret.
	FieldAccessor = "token_accessor"
)

// Metadata keys the agent stores on every token it creates, so an interrupted rotation
// recognises its own token.
const (
	// MetaChangeID holds the change the token was created for.
	MetaChangeID = "change_id"
	// MetaRound holds the rotation round (a fresh start after repeated failures is a new round).
	MetaRound = "rotation_round"
)

// ErrOrphanChildren explains why option orphan_children=true is refused without deliver_to.
var ErrOrphanChildren = errors.New("option orphan_children=true needs option deliver_to: Vault revokes by accessor " +
	"(auth/token/revoke-accessor) only together with the token's children; keeping them needs " +
	"auth/token/revoke-orphan, which takes the token itself (and sudo), never an accessor, so the agent must read " +
	"the token from the KV version 2 secret deliver_to names")

// Notes kept in the rotation state; none holds a secret.
const (
	noteBase         = "deliver_base_version"
	noteIntent       = "creating_at"
	noteNewAccessor  = "new_accessor"
	noteNewVersion   = "new_version"
	noteUnrecovered  = "unrecovered_token_at"
	noteSearchDenied = "token_search"
)

// Fingerprint keys.
const (
	fpAccessor = "accessor"
	fpState    = "state"
	// fpVersion is the deliver_to version that holds the old token: the one a rotation
	// started from, or the one a revoke with orphan_children=true reads the token from.
	fpVersion    = "deliver_to_version"
	fpSuperseded = "superseded_accessors"
	fpChildren   = "children"
	fpRevokedBy  = "revoked_with"
)

// Rotator revokes or rotates one token per credential. Token values live only in Vault (the
// deliver_to secret) and, between a replacement's creation and its delivery, in memory.
type Rotator struct {
	client *vault.Client
	// pending holds tokens created but not yet delivered, by accessor: a retry in this
	// process delivers the token it already created instead of a second one.
	pending *pending.Store
}

var _ rotators.Rotator = (*Rotator)(nil)

// New returns a token rotator using client, whose retries should be off: the agent owns retries.
func New(client *vault.Client) *Rotator { return &Rotator{client: client, pending: pending.New()} }

// Kind returns "token".
func (r *Rotator) Kind() string { return Kind }

// DefaultAction returns revoke: what this kind does for a reference that names no action. The
// agent's evidence should report it rather than events.CredentialRef.EffectiveAction (rotate).
func (r *Rotator) DefaultAction() events.Action { return events.ActionRevoke }

// config is a parsed credential reference.
type config struct {
	accessor        string
	rotate          bool
	role            string
	kvMount, kvPath string
	// orphan keeps the children of the revoked token: it is revoked with revoke-orphan.
	orphan bool
}

func (c config) deliverTo() string { return c.kvMount + "/" + c.kvPath }

// parse validates a credential reference of this kind. Revoke is the default action; rotate
// needs options role and deliver_to. An empty action with a role is refused as ambiguous: a
// revoke without the replacement the role suggests would cut the consumer off.
func parse(ref events.CredentialRef) (config, error) {
	c := config{accessor: ref.Path, role: ref.Options[OptionRole]}
	if m := strings.Trim(strings.TrimPrefix(ref.Mount, "auth/"), "/"); m != "token" {
		return config{}, rotators.Permanent(fmt.Errorf("%s: mount must be \"token\", not %q", ref.ID(), ref.Mount))
	}
	if c.accessor == "" || strings.ContainsAny(c.accessor, "/ ") {
		return config{}, rotators.Permanent(fmt.Errorf("%s: path must be the token's accessor", ref.ID()))
	}
	if v, ok := ref.Options[OptionOrphanChildren]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return config{}, rotators.Permanent(fmt.Errorf("%s: option %s=%q: want true or false", ref.ID(), OptionOrphanChildren, v))
		}
		c.orphan = b
	}
	switch ref.Action {
	case "", events.ActionRevoke:
		if c.role != "" && ref.Action == "" {
			return config{}, rotators.Permanent(fmt.Errorf("%s: option %s is set but no action: say action rotate (create a replacement, then revoke) or revoke", ref.ID(), OptionRole))
		}
		if c.role != "" {
			return config{}, rotators.Permanent(fmt.Errorf("%s: option %s applies to action rotate only", ref.ID(), OptionRole))
		}
		if c.orphan {
			if _, ok := ref.Options[OptionDeliverTo]; !ok {
				return config{}, rotators.Permanent(fmt.Errorf("%s: %w", ref.ID(), ErrOrphanChildren))
			}
			var err error
			if c.kvMount, c.kvPath, err = splitDeliverTo(ref.Options[OptionDeliverTo]); err != nil {
				return config{}, rotators.Permanent(fmt.Errorf("%s: %w", ref.ID(), err))
			}
		}
	case events.ActionRotate:
		if c.role == "" || strings.Contains(c.role, "/") {
			return config{}, rotators.Permanent(fmt.Errorf("%s: action rotate needs option %s (the token role to create the replacement from)", ref.ID(), OptionRole))
		}
		var err error
		if c.kvMount, c.kvPath, err = splitDeliverTo(ref.Options[OptionDeliverTo]); err != nil {
			return config{}, rotators.Permanent(fmt.Errorf("%s: %w", ref.ID(), err))
		}
		c.rotate = true
	default:
		return config{}, rotators.Permanent(fmt.Errorf("%s supports the revoke and rotate actions, not %q", Kind, ref.Action))
	}
	return c, nil
}

// splitDeliverTo splits "<kv-v2 mount>/<path>" at its first slash.
func splitDeliverTo(v string) (mount, path string, err error) {
	v = strings.Trim(v, "/")
	mount, path, ok := strings.Cut(v, "/")
	if !ok || mount == "" || path == "" {
		return "", "", fmt.Errorf("option %s=%q: want <kv-v2 mount>/<path>, e.g. secret/apps/ci-token", OptionDeliverTo, v)
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", "", fmt.Errorf("option %s=%q: empty or relative path segment", OptionDeliverTo, v)
		}
	}
	return mount, path, nil
}

// Plan looks the token up by accessor (and the role and deliver_to for a rotation) and reports
// what would be done.
func (r *Rotator) Plan(ctx context.Context, req rotators.Request) (rotators.Plan, error) {
	c, err := parse(req.Credential)
	if err != nil {
		return rotators.Plan{}, err
	}
	if err := r.notSelf(ctx, c.accessor); err != nil {
		return rotators.Plan{}, err
	}
	info, err := r.lookupAccessor(ctx, c.accessor)
	if err != nil {
		return rotators.Plan{}, err
	}
	fp := fingerprint(c.accessor, info)
	revoke := fmt.Sprintf("revoke the token with accessor %s (%s) and all its child tokens (auth/token/revoke-accessor), "+
		"then check auth/token/lookup-accessor no longer finds it", c.accessor, describe(info))
	if c.orphan {
		revoke = fmt.Sprintf("revoke the token with accessor %s (%s), read from %s, with auth/token/revoke-orphan: its child tokens "+
			"stay valid, as orphans; then check auth/token/lookup-accessor no longer finds it", c.accessor, describe(info), c.deliverTo())
	}
	if info == nil {
		revoke = fmt.Sprintf("nothing to revoke: no token has accessor %s (already revoked or expired)", c.accessor)
	}
	if !c.rotate {
		if c.orphan && info != nil {
			v, _, err := r.heldIn(ctx, c, c.accessor, 0)
			if err != nil {
				return rotators.Plan{}, err
			}
			fp[fpVersion] = strconv.Itoa(v)
		}
		return rotators.Plan{Action: events.ActionRevoke, Current: fp, Changes: []string{revoke}}, nil
	}
	if err := r.checkRole(ctx, c.role); err != nil {
		return rotators.Plan{}, err
	}
	cur, err := kvdeliver.Read(ctx, r.client, c.kvMount, c.kvPath)
	if err != nil {
		return rotators.Plan{}, err
	}
	if c.orphan && info != nil {
		if _, _, err := r.heldIn(ctx, c, c.accessor, cur.Version); err != nil {
			return rotators.Plan{}, err
		}
	}
	fp[fpVersion] = strconv.Itoa(cur.Version)
	return rotators.Plan{
		Action:  events.ActionRotate,
		Current: fp,
		Changes: []string{
			fmt.Sprintf("create a replacement token from token role %q (auth/token/create/%s) with metadata %s=%s", c.role, c.role, MetaChangeID, req.ChangeID),
			fmt.Sprintf("write it to %s fields %s and %s as version %d (check-and-set on version %d)", c.deliverTo(), FieldToken, FieldAccessor, cur.Version+1, cur.Version),
			"verify: auth/token/lookup-self with the replacement token",
			"after the overlap window: " + revoke,
		},
	}, nil
}

// describe says in a few non-secret words which token an accessor names.
func describe(info map[string]any) string {
	if info == nil {
		return "not found"
	}
	parts := []string{}
	if n := str(info["display_name"]); n != "" {
		parts = append(parts, "display name "+n)
	}
	if p := policies(info); p != "" {
		parts = append(parts, "policies "+p)
	}
	if e := str(info["expire_time"]); e != "" {
		parts = append(parts, "expires "+e)
	} else {
		parts = append(parts, "no expiry")
	}
	return strings.Join(parts, ", ")
}

// fingerprint describes a token by its accessor lookup; it holds no secret.
func fingerprint(accessor string, info map[string]any) events.Fingerprint {
	fp := rotators.Fingerprint(fpAccessor, accessor)
	if info == nil {
		fp[fpState] = "not found"
		return fp
	}
	fp[fpState] = "live"
	for _, k := range []string{"display_name", "expire_time", "path", "type"} {
		if v := str(info[k]); v != "" {
			fp[k] = v
		}
	}
	if p := policies(info); p != "" {
		fp["policies"] = p
	}
	if o, ok := info["orphan"].(bool); ok {
		fp["orphan"] = strconv.FormatBool(o)
	}
	return fp
}

func policies(info map[string]any) string {
	raw, _ := info["policies"].([]any)
	out := make([]string, 0, len(raw))
	for _, p := range raw {
		out = append(out, str(p))
	}
	return strings.Join(out, ",")
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
