package leases

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rotation-agent/rotation-agent/internal/vaultcall"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// list walks sys/leases/lookup under prefix and returns every lease id.
func (r *Rotator) list(ctx context.Context, prefix string) ([]string, error) {
	var ids []string
	dirs := []string{prefix + "/"}
	for len(dirs) > 0 {
		dir := dirs[0]
		dirs = dirs[1:]
		s, err := r.client.Logical().ListWithContext(ctx, "sys/leases/lookup/"+dir)
		if err != nil {
			return nil, vaultcall.Classify("list the leases under "+dir, err)
		}
		if s == nil {
			continue
		}
		keys, _ := s.Data["keys"].([]any)
		for _, k := range keys {
			key, _ := k.(string)
			switch {
			case key == "":
			case strings.HasSuffix(key, "/"):
				dirs = append(dirs, dir+key)
			default:
				ids = append(ids, dir+key)
			}
		}
	}
	return ids, nil
}

// issued returns when a lease was issued, or the zero time when it no longer exists.
func (r *Rotator) issued(ctx context.Context, id string) (time.Time, error) {
	s, err := r.client.Logical().WriteWithContext(ctx, "sys/leases/lookup", map[string]any{"lease_id": id})
	if vaultcall.Status(err) == http.StatusBadRequest || (err == nil && (s == nil || s.Data == nil)) {
		return time.Time{}, nil // "invalid lease"
	}
	if err != nil {
		return time.Time{}, vaultcall.Classify("look up a lease under "+prefixOf(id), err)
	}
	raw, _ := s.Data["issue_time"].(string)
	t, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		return time.Time{}, rotators.Permanent(fmt.Errorf("lease under %s has issue_time %q: %w", prefixOf(id), raw, err))
	}
	return t, nil
}

// notSelf refuses a prefix that covers the login of the agent's own token: revoking it would
// revoke the agent's token halfway through the change.
func (r *Rotator) notSelf(ctx context.Context, c config) error {
	s, err := r.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return vaultcall.Classify("look up the agent's own token", err)
	}
	if s == nil {
		return nil
	}
	path, _ := s.Data["path"].(string)
	if path != "" && strings.HasPrefix(path+"/", c.prefix+"/") {
		return rotators.Permanent(fmt.Errorf("lease prefix %s covers the agent's own login (%s): revoking it would revoke the agent's token; "+
			"give the agent a login outside the prefix or name a narrower prefix", c.prefix, path))
	}
	return nil
}

// prefixOf returns a lease id without its last segment, for messages.
func prefixOf(id string) string {
	if i := strings.LastIndex(id, "/"); i > 0 {
		return id[:i]
	}
	return id
}
