// Package leases revokes every Vault lease under a prefix (the tokens of an auth method's
// logins, the users of a database role, the certificates of a PKI role), with
// sys/leases/revoke-prefix, and checks none issued before the revocation remains.
package leases

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/vaultcall"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// Kind is the credential kind handled by this package. A credential of this kind names the
// first segment of the lease prefix as Mount and the rest as Path: mount "auth" with path
// "approle/login", or mount "database" with path "creds/readonly".
const Kind = "lease-prefix"

// OptionForce names the option that, set to "true", revokes with sys/leases/revoke-force: Vault
// drops the leases even when their backend fails to revoke them, so the credentials behind them
// may stay valid on their target. Use it only to clean up leases whose backend is gone.
const OptionForce = "force"

// Notes kept in the rotation state.
const noteRevokingAt = "revoking_at"

// clockSkew is how much Vault's clock may differ from the agent's: a lease issued within it
// before the revocation counts as issued after it.
const clockSkew = 5 * time.Second

// maxLookups bounds how many remaining leases Verify looks up one by one.
const maxLookups = 1000

// errVerify marks leases that survived the revocation.
var errVerify = errors.New("verification failed")

// Rotator revokes the leases under one prefix per credential. Revocation is idempotent: a
// step run again revokes whatever is there again, and retire has nothing to do.
type Rotator struct {
	client *vault.Client
}

var _ rotators.Rotator = (*Rotator)(nil)

// New returns a lease-prefix rotator using client, whose retries should be off: the agent owns
// retries.
func New(client *vault.Client) *Rotator { return &Rotator{client: client} }

// Kind returns "lease-prefix".
func (r *Rotator) Kind() string { return Kind }

// DefaultAction returns revoke: what this kind does for a reference that names no action. The
// agent's evidence should report it rather than events.CredentialRef.EffectiveAction (rotate).
func (r *Rotator) DefaultAction() events.Action { return events.ActionRevoke }

// config is a parsed credential reference.
type config struct {
	prefix string
	force  bool
}

func (c config) endpoint() string {
	if c.force {
		return "sys/leases/revoke-force/" + c.prefix
	}
	return "sys/leases/revoke-prefix/" + c.prefix
}

// parse validates a credential reference of this kind.
func parse(ref events.CredentialRef) (config, error) {
	if ref.Action != "" && ref.Action != events.ActionRevoke {
		return config{}, rotators.Permanent(fmt.Errorf("%s supports the revoke action only, not %q", Kind, ref.Action))
	}
	mount, path := strings.Trim(ref.Mount, "/"), strings.Trim(ref.Path, "/")
	if mount == "" || strings.Contains(mount, "/") || path == "" {
		return config{}, rotators.Permanent(fmt.Errorf("%s: want the first segment of the lease prefix as mount and the rest as path, e.g. auth + approle/login", ref.ID()))
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return config{}, rotators.Permanent(fmt.Errorf("%s: empty or relative segment in the lease prefix", ref.ID()))
		}
	}
	c := config{prefix: mount + "/" + path}
	if v, ok := ref.Options[OptionForce]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return config{}, rotators.Permanent(fmt.Errorf("%s: option %s=%q: want true or false", ref.ID(), OptionForce, v))
		}
		c.force = b
	}
	return c, nil
}

// Plan counts the leases under the prefix and reports the revocation.
func (r *Rotator) Plan(ctx context.Context, req rotators.Request) (rotators.Plan, error) {
	c, err := parse(req.Credential)
	if err != nil {
		return rotators.Plan{}, err
	}
	if err := r.notSelf(ctx, c); err != nil {
		return rotators.Plan{}, err
	}
	ids, err := r.list(ctx, c.prefix)
	if err != nil {
		return rotators.Plan{}, err
	}
	how := "sys/leases/revoke-prefix: the backend revokes each credential (tokens, database users, certificates)"
	if c.force {
		how = "sys/leases/revoke-force: Vault drops the leases even where the backend fails to revoke them, so such credentials may stay valid on their target"
	}
	return rotators.Plan{
		Action:  events.ActionRevoke,
		Current: rotators.Fingerprint("prefix", c.prefix, "leases", strconv.Itoa(len(ids))),
		Changes: []string{
			fmt.Sprintf("revoke the %d leases under %s/ with %s", len(ids), c.prefix, how),
			fmt.Sprintf("verify: no lease issued before the revocation remains under %s/", c.prefix),
		},
	}, nil
}

// Prepare refuses a prefix covering the agent's own login and counts the leases under the
// prefix. A fresh round keeps the count of the first.
func (r *Rotator) Prepare(ctx context.Context, req rotators.Request, st *rotators.State) error {
	c, err := parse(req.Credential)
	if err != nil {
		return err
	}
	if err := r.notSelf(ctx, c); err != nil {
		return err
	}
	if st.Rounds > 0 && st.Before["leases"] != "" {
		return nil
	}
	ids, err := r.list(ctx, c.prefix)
	if err != nil {
		return err
	}
	st.Before = rotators.Fingerprint("prefix", c.prefix, "leases", strconv.Itoa(len(ids)))
	return nil
}

// Apply revokes every lease under the prefix. Running it again revokes whatever is there again.
func (r *Rotator) Apply(ctx context.Context, req rotators.Request, st *rotators.State) error {
	c, err := parse(req.Credential)
	if err != nil {
		return err
	}
	st.SetNote(noteRevokingAt, req.Now().UTC().Format(time.RFC3339Nano))
	if _, err := r.client.Logical().WriteWithContext(ctx, c.endpoint(), nil); err != nil {
		return vaultcall.Classify("revoke the leases under "+c.prefix, err)
	}
	return nil
}

// Verify lists the prefix again: no lease issued before the revocation may remain. Leases
// issued since (clients logging in again) are counted, not failed.
func (r *Rotator) Verify(ctx context.Context, req rotators.Request, st *rotators.State) error {
	c, err := parse(req.Credential)
	if err != nil {
		return err
	}
	revokingAt, err := time.Parse(time.RFC3339Nano, st.Note(noteRevokingAt))
	if err != nil {
		return rotators.Permanent(fmt.Errorf("state of %s has no revocation time", req.Credential.ID()))
	}
	ids, err := r.list(ctx, c.prefix)
	if err != nil {
		return err
	}
	if len(ids) > maxLookups {
		return rotators.Retryable(fmt.Errorf("%w: %d leases remain under %s/", errVerify, len(ids), c.prefix))
	}
	survived, since := 0, 0
	for _, id := range ids {
		issued, err := r.issued(ctx, id)
		switch {
		case err != nil:
			return err
		case issued.IsZero():
			// revoked or expired since the listing
		case issued.Before(revokingAt.Add(-clockSkew)):
			survived++
		default:
			since++
		}
	}
	if survived > 0 {
		return rotators.Retryable(fmt.Errorf("%w: %d of the leases issued before the revocation remain under %s/", errVerify, survived, c.prefix))
	}
	how := "revoke-prefix"
	if c.force {
		how = "revoke-force"
	}
	st.After = rotators.Fingerprint("prefix", c.prefix, "leases", strconv.Itoa(len(ids)),
		"leases_issued_since_revoke", strconv.Itoa(since), "revoked_with", how)
	return nil
}

// Promote has nothing to do for a revocation.
func (r *Rotator) Promote(context.Context, rotators.Request, *rotators.State) error { return nil }

// Retire has nothing to do: the revocation is complete once verified.
func (r *Rotator) Retire(context.Context, rotators.Request, *rotators.State) error { return nil }
