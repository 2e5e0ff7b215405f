package vaultsource

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rotation-agent/rotation-agent/discovery"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators/approle"
)

// source validates the entry and returns it as a runnable source.
func (s AppRoleSource) source() source {
	mount := cleanMount(strings.TrimPrefix(strings.TrimSpace(s.Mount), "auth/"))
	src := source{key: SourceAppRole + ":" + mount}
	if !validName(mount, true) {
		src.invalid = fmt.Errorf("approle entry: mount %q is not an auth mount path", s.Mount)
	}
	src.run = func(w *walker) ([]discovery.Binding, error) { return discoverAppRole(w, mount) }
	return src
}

// secretIDGroup is the tagged secret ids of one role that describe the same binding.
type secretIDGroup struct {
	tags      tags
	accessors []string
	// meta is the newest secret id's metadata, carried to the replacement.
	meta    map[string]string
	created time.Time
}

// discoverAppRole lists the roles of an AppRole mount and looks up the accessors of their
// secret ids. A role whose live secret ids carry selector tags becomes one
// approle-secret-id binding per distinct set of tags, with options:
//
//   - deliver_to, from the secret id's deliver_to metadata key;
//   - accessor, the tagged secret id to retire, when exactly one secret id carries those tags
//     (with several, the rotator retires the one recorded in deliver_to);
//   - metadata, the secret id's own metadata as JSON, so the replacement carries the same tags
//     and is discovered in turn;
//   - rotation_* metadata keys as options.
//
// Secret ids themselves are never read: Vault's accessor lookup does not return them.
func discoverAppRole(w *walker, mount string) ([]discovery.Binding, error) {
	if err := w.visit(); err != nil {
		return nil, err
	}
	roles, err := w.list("auth/" + mount + "/role")
	if err != nil {
		return nil, err
	}
	var out []discovery.Binding
	for _, role := range roles {
		if strings.HasSuffix(role, "/") {
			continue
		}
		bs, err := discoverRole(w, mount, role)
		if err != nil {
			return out, err
		}
		out = append(out, bs...)
	}
	return out, nil
}

func discoverRole(w *walker, mount, role string) ([]discovery.Binding, error) {
	if err := w.visit(); err != nil {
		return nil, err
	}
	base := "auth/" + mount + "/role/" + role
	accessors, err := w.list(base + "/secret-id")
	if err != nil {
		return nil, err
	}
	groups := map[string]*secretIDGroup{}
	for _, acc := range accessors {
		if err := w.visit(); err != nil {
			return nil, err
		}
		s, err := w.lookup(base+"/secret-id-accessor/lookup", map[string]any{"secret_id_accessor": acc}, "failed to find accessor")
		if err != nil {
			return nil, err
		}
		if s == nil || s.Data == nil {
			continue
		}
		if exp, err := time.Parse(time.RFC3339Nano, str(s.Data["expiration_time"])); err == nil && !exp.IsZero() && !exp.After(w.now) {
			continue
		}
		meta := stringMap(s.Data["metadata"])
		t, err := parseTags(meta)
		if err != nil {
			w.warn("%s secret id %s skipped: %w", base, acc, err)
			continue
		}
		if !t.tagged() {
			continue
		}
		created, _ := time.Parse(time.RFC3339Nano, str(s.Data["creation_time"]))
		g := groups[t.signature()]
		if g == nil {
			g = &secretIDGroup{tags: t}
			groups[t.signature()] = g
		}
		g.accessors = append(g.accessors, acc)
		if g.meta == nil || created.After(g.created) {
			g.meta, g.created = meta, created
		}
	}
	list := make([]*secretIDGroup, 0, len(groups))
	for _, g := range groups {
		sort.Strings(g.accessors)
		list = append(list, g)
	}
	sort.Slice(list, func(a, b int) bool { return list[a].accessors[0] < list[b].accessors[0] })
	out := make([]discovery.Binding, 0, len(list))
	for _, g := range list {
		opts := map[string]string{}
		if g.tags.deliverTo != "" {
			opts[approle.OptionDeliverTo] = g.tags.deliverTo
		}
		if len(g.accessors) == 1 {
			opts[approle.OptionAccessor] = g.accessors[0]
		}
		if carried := carriedMetadata(g.meta); carried != "" {
			opts[approle.OptionMetadata] = carried
		}
		ref := events.CredentialRef{Kind: approle.Kind, Mount: mount, Path: role, Options: opts}
		out = append(out, g.tags.binding(ref, SourceAppRole+":"+mount+"/role/"+role))
	}
	return out, nil
}

// carriedMetadata renders the metadata the replacement secret id should carry: the old one's,
// without the keys the rotator sets itself.
func carriedMetadata(meta map[string]string) string {
	keep := map[string]string{}
	for k, v := range meta {
		if !reservedMeta[strings.ToLower(k)] {
			keep[k] = v
		}
	}
	if len(keep) == 0 {
		return ""
	}
	raw, _ := json.Marshal(keep)
	return string(raw)
}
