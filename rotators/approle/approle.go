// Package approle rotates AppRole secret ids. It generates a new secret id for a role, delivers
// it (or a response-wrapping token for it) to the KV version 2 secret its consumer reads, proves
// it logs in, and destroys the old secret id after the overlap window.
package approle

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
	"github.com/rotation-agent/rotation-agent/rotators/internal/kvdeliver"
	"github.com/rotation-agent/rotation-agent/rotators/internal/pending"
)

// Kind is the credential kind handled by this package. A credential of this kind names the
// AppRole auth mount without "auth/" as Mount (for example "approle") and the role as Path.
const Kind = "approle-secret-id"

// Options a credential reference may carry for this kind.
const (
	// OptionDeliverTo names the KV version 2 secret, as "<mount>/<path>", where the consumer
	// reads its secret id. It is required.
	OptionDeliverTo = "deliver_to"
	// OptionWrapTTL, when set (a duration such as 10m), delivers a response-wrapping token for
	// the secret id instead of the secret id, so the consumer unwraps it itself.
	OptionWrapTTL = "wrap_ttl"
	// OptionMetadata is an optional JSON object of strings stored as extra metadata on the new
	// secret id.
	OptionMetadata = "metadata"
	// OptionAccessor names the accessor of the secret id to retire, when deliver_to does not
	// record it (a first delivery by the agent).
	OptionAccessor = "accessor"
)

// Fields of the deliver_to secret.
const (
	// FieldSecretID holds the secret id.
	FieldSecretID = "secret_id"
	// FieldAccessor holds the accessor of the delivered secret id; it is not secret.
	FieldAccessor = "secret_id_accessor"
	// FieldWrapped holds the response-wrapping token for the secret id (option wrap_ttl).
	FieldWrapped = "wrapped_secret_id"
)

// Metadata keys the agent stores on every secret id it generates, so an interrupted rotation
// recognises its own secret id instead of generating a second one.
const (
	// MetaChangeID holds the change the secret id was generated for.
	MetaChangeID = "change_id"
	// MetaRound holds the rotation round (a fresh start after repeated failures is a new round).
	MetaRound = "rotation_round"
)

// Notes kept in the rotation state; none holds a secret.
const (
	noteBase         = "deliver_base_version"
	noteIntent       = "generating_at"
	noteNewAccessor  = "new_accessor"
	noteNewVersion   = "new_version"
	noteWrapAccessor = "wrapping_accessor"
)

// Fingerprint keys.
const (
	fpRole       = "role"
	fpAccessor   = "secret_id_accessor"
	fpVersion    = "deliver_to_version"
	fpExpiration = "expiration_time"
)

// Rotator rotates the secret id of one AppRole role per credential. The new secret id carries
// the change id in its metadata; the value lives only in Vault (the deliver_to secret) and,
// between its generation and its delivery, in the rotator's memory.
type Rotator struct {
	client *vault.Client
	// pending holds secret ids generated but not yet delivered, by accessor: a retry in
	// this process delivers the secret id it already generated instead of a second one.
	pending *pending.Store
}

var _ rotators.Rotator = (*Rotator)(nil)

// New returns an AppRole secret id rotator using client, whose retries should be off: the agent
// owns retries.
func New(client *vault.Client) *Rotator {
	return &Rotator{client: client, pending: pending.New()}
}

// Kind returns "approle-secret-id".
func (r *Rotator) Kind() string { return Kind }

// Plan reads the role, the deliver_to secret and the old secret id, and reports what a rotation
// would do.
func (r *Rotator) Plan(ctx context.Context, req rotators.Request) (rotators.Plan, error) {
	c, err := parse(req.Credential)
	if err != nil {
		return rotators.Plan{}, err
	}
	if _, err := r.roleID(ctx, c); err != nil {
		return rotators.Plan{}, err
	}
	cur, err := kvdeliver.Read(ctx, r.client, c.kvMount, c.kvPath)
	if err != nil {
		return rotators.Plan{}, err
	}
	old := c.accessor
	if old == "" {
		old = str(cur.Data[FieldAccessor])
	}
	fp := rotators.Fingerprint(fpRole, c.role, fpVersion, strconv.Itoa(cur.Version))
	retire := "nothing to destroy: no old secret id is known (set option accessor to name one)"
	if old != "" {
		fp[fpAccessor] = old
		info, err := r.lookup(ctx, c, old)
		if err != nil {
			return rotators.Plan{}, err
		}
		if info == nil {
			retire = fmt.Sprintf("the old secret id (accessor %s) is already gone: nothing to destroy", old)
		} else {
			fp[fpExpiration] = info.expiration
			retire = fmt.Sprintf("destroy the old secret id (accessor %s) and check a login with it fails", old)
		}
	}
	deliver := fmt.Sprintf("write it to %s field %s", c.deliverTo(), FieldSecretID)
	verify := fmt.Sprintf("log in at auth/%s/login with the new secret id, then revoke that login's token", c.mount)
	if c.wrapTTL != "" {
		deliver = fmt.Sprintf("write a response-wrapping token for it (TTL %s) to %s field %s", c.wrapTTL, c.deliverTo(), FieldWrapped)
		verify = "look the wrapping token up (creation path) and the new secret id's accessor"
	}
	return rotators.Plan{
		Action:  events.ActionRotate,
		Current: fp,
		Changes: []string{
			fmt.Sprintf("generate a new secret id for role %q at auth/%s with metadata %s=%s", c.role, c.mount, MetaChangeID, req.ChangeID),
			fmt.Sprintf("%s as version %d, with its accessor in field %s (check-and-set on version %d)", deliver, cur.Version+1, FieldAccessor, cur.Version),
			"verify: " + verify,
			"after the overlap window: " + retire,
		},
	}, nil
}

// config is a parsed credential reference.
type config struct {
	mount, role     string
	kvMount, kvPath string
	wrapTTL         string
	metadata        map[string]string
	accessor        string
}

func (c config) rolePath(sub string) string { return "auth/" + c.mount + "/role/" + c.role + "/" + sub }

func (c config) deliverTo() string { return c.kvMount + "/" + c.kvPath }

// parse validates a credential reference of this kind.
func parse(ref events.CredentialRef) (config, error) {
	if a := ref.EffectiveAction(); a != events.ActionRotate {
		return config{}, rotators.Permanent(fmt.Errorf("%s supports the rotate action only, not %q", Kind, a))
	}
	c := config{
		mount:    strings.Trim(strings.TrimPrefix(ref.Mount, "auth/"), "/"),
		role:     ref.Path,
		accessor: ref.Options[OptionAccessor],
	}
	if c.mount == "" || c.role == "" || strings.Contains(c.role, "/") {
		return config{}, rotators.Permanent(fmt.Errorf("%s: want the AppRole mount as mount (e.g. approle) and the role name as path", ref.ID()))
	}
	var err error
	if c.kvMount, c.kvPath, err = splitDeliverTo(ref.Options[OptionDeliverTo]); err != nil {
		return config{}, rotators.Permanent(fmt.Errorf("%s: %w", ref.ID(), err))
	}
	if v, ok := ref.Options[OptionWrapTTL]; ok {
		if c.wrapTTL, err = parseTTL(v); err != nil {
			return config{}, rotators.Permanent(fmt.Errorf("%s: option %s=%q: %w", ref.ID(), OptionWrapTTL, v, err))
		}
	}
	if c.metadata, err = parseMetadata(ref.Options[OptionMetadata]); err != nil {
		return config{}, rotators.Permanent(fmt.Errorf("%s: option %s: %w", ref.ID(), OptionMetadata, err))
	}
	return c, nil
}
