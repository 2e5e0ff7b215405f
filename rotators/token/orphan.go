package token

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/rotation-agent/rotation-agent/internal/vaultcall"
	"github.com/rotation-agent/rotation-agent/rotators"
	"github.com/rotation-agent/rotation-agent/rotators/internal/kvdeliver"
)

// heldIn reads the token with accessor from version of deliver_to (0: the current version),
// where fields token and token_accessor must hold it, and has Vault confirm the value is that
// token (auth/token/lookup), so a wrong value in deliver_to never revokes another token. It
// returns the version read and the token, which stays in memory.
func (r *Rotator) heldIn(ctx context.Context, c config, accessor string, version int) (int, string, error) {
	var got kvdeliver.State
	var err error
	if version == 0 {
		got, err = kvdeliver.Read(ctx, r.client, c.kvMount, c.kvPath)
	} else {
		got, err = kvdeliver.ReadVersion(ctx, r.client, c.kvMount, c.kvPath, version)
	}
	if err != nil {
		return 0, "", err
	}
	token := str(got.Data[FieldToken])
	if token == "" || str(got.Data[FieldAccessor]) != accessor {
		return 0, "", rotators.Permanent(fmt.Errorf("version %d of %s does not hold the token with accessor %s in fields %s and %s: "+
			"without the token itself its children cannot be kept (option %s=true); nothing revoked",
			got.Version, c.deliverTo(), accessor, FieldToken, FieldAccessor, OptionOrphanChildren))
	}
	s, err := r.client.Logical().WriteWithContext(ctx, "auth/token/lookup", map[string]any{"token": token})
	if vaultcall.Status(err) == http.StatusForbidden && strings.Contains(err.Error(), "bad token") {
		return 0, "", rotators.Permanent(fmt.Errorf("version %d of %s holds a token Vault does not know, not the one with accessor %s; nothing revoked",
			got.Version, c.deliverTo(), accessor))
	}
	if err != nil {
		return 0, "", scrub("look up the token held in "+c.deliverTo(), err, token)
	}
	if s == nil || str(s.Data["accessor"]) != accessor {
		return 0, "", rotators.Permanent(fmt.Errorf("version %d of %s holds another token than the one with accessor %s; nothing revoked",
			got.Version, c.deliverTo(), accessor))
	}
	return got.Version, token, nil
}

// revokeOrphan revokes the token with accessor, read from version of deliver_to, with
// auth/token/revoke-orphan: its children stay valid, as orphans. A token already gone is fine.
func (r *Rotator) revokeOrphan(ctx context.Context, c config, accessor string, version int) error {
	info, err := r.lookupAccessor(ctx, accessor)
	if err != nil || info == nil {
		return err
	}
	_, token, err := r.heldIn(ctx, c, accessor, version)
	if err != nil {
		return err
	}
	if _, err := r.client.Logical().WriteWithContext(ctx, "auth/token/revoke-orphan", map[string]any{"token": token}); err != nil {
		return scrub("revoke token accessor "+accessor+" keeping its children (auth/token/revoke-orphan)", err, token)
	}
	return nil
}

// noteVersion reads a deliver_to version recorded in the state; 0 when there is none.
func noteVersion(v string) int {
	n, _ := strconv.Atoi(v)
	return n
}

// revokedWith fingerprints how a token was revoked and what became of its children.
func revokedWith(c config) (how, children string) {
	if c.orphan {
		return "revoke-orphan", "kept"
	}
	return "revoke-accessor", "revoked"
}
