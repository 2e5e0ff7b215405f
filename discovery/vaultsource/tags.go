package vaultsource

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/rotation-agent/rotation-agent/discovery"
	"github.com/rotation-agent/rotation-agent/events"
)

// Tag keys read from KV v2 custom metadata, secret id metadata and token metadata.
const (
	// TagRotateFields lists, comma-separated, the fields of a KV secret to rotate.
	TagRotateFields = "rotate_fields"
	// TagOptionPrefix starts the keys that become credential options without the prefix
	// (rotation_overlap → overlap, rotation_retire → retire).
	TagOptionPrefix = "rotation_"
	// TagAction ("rotation_action") sets the credential's default action: rotate, revoke or
	// verify.
	TagAction = TagOptionPrefix + "action"
	// TagDeliverTo names the KV v2 secret ("<mount>/<path>") a secret id or token is
	// delivered to; it becomes option deliver_to.
	TagDeliverTo = "deliver_to"
)

// selectorTags maps a tag key (singular or plural) to the selector key it sets.
var selectorTags = map[string]string{
	"service":             discovery.KeyService,
	"services":            discovery.KeyService,
	"host":                discovery.KeyHost,
	"hosts":               discovery.KeyHost,
	"configuration_item":  discovery.KeyCI,
	"configuration_items": discovery.KeyCI,
	"environment":         discovery.KeyEnvironment,
	"environments":        discovery.KeyEnvironment,
	"owner":               discovery.KeyOwner,
	"owners":              discovery.KeyOwner,
	"identity":            discovery.KeyIdentity,
	"identities":          discovery.KeyIdentity,
}

// reservedMeta are metadata keys the rotators set on the secret ids and tokens they create;
// they are neither tags nor options.
var reservedMeta = map[string]bool{"change_id": true, "rotation_round": true}

// tags is what a set of metadata says about a credential.
type tags struct {
	selectors discovery.Selectors
	fields    []string
	options   map[string]string
	action    events.Action
	owner     string
	deliverTo string
}

// parseTags reads selector tags (values comma-separated, matched without regard to case),
// rotate_fields, rotation_action, deliver_to and rotation_* options from metadata. Keys are
// matched without regard to case; other keys are ignored.
func parseTags(meta map[string]string) (tags, error) {
	t := tags{selectors: discovery.Selectors{}}
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := meta[k]
		key := strings.ToLower(strings.TrimSpace(k))
		if reservedMeta[key] {
			continue
		}
		if sel, ok := selectorTags[key]; ok {
			vals := splitList(v)
			for _, s := range vals {
				t.selectors[sel] = appendUnique(t.selectors[sel], strings.ToLower(s))
			}
			if sel == discovery.KeyOwner && t.owner == "" && len(vals) > 0 {
				t.owner = vals[0]
			}
			continue
		}
		switch {
		case key == TagRotateFields:
			t.fields = splitList(v)
		case key == TagDeliverTo:
			t.deliverTo = strings.Trim(strings.TrimSpace(v), "/")
		case key == TagAction:
			a := events.Action(strings.ToLower(strings.TrimSpace(v)))
			switch a {
			case events.ActionRotate, events.ActionRevoke, events.ActionVerify:
				t.action = a
			default:
				return tags{}, fmt.Errorf("tag %s=%q is not an action (rotate, revoke, verify)", k, v)
			}
		case strings.HasPrefix(key, TagOptionPrefix) && len(key) > len(TagOptionPrefix):
			if t.options == nil {
				t.options = map[string]string{}
			}
			t.options[key[len(TagOptionPrefix):]] = strings.TrimSpace(v)
		}
	}
	for k, vals := range t.selectors {
		if len(vals) == 0 {
			delete(t.selectors, k)
			continue
		}
		sort.Strings(vals)
	}
	return t, nil
}

// tagged reports whether the metadata selects any target.
func (t tags) tagged() bool { return len(t.selectors) > 0 }

// binding builds a binding for ref from the tags, with Source "discovery:<src>".
func (t tags) binding(ref events.CredentialRef, src string) discovery.Binding {
	if ref.Action == "" {
		ref.Action = t.action
	}
	if len(t.options) > 0 {
		opts := make(map[string]string, len(t.options)+len(ref.Options))
		for k, v := range t.options {
			opts[k] = v
		}
		for k, v := range ref.Options {
			opts[k] = v
		}
		ref.Options = opts
	}
	sel := make(discovery.Selectors, len(t.selectors))
	for k, v := range t.selectors {
		sel[k] = append([]string(nil), v...)
	}
	return discovery.Binding{
		Name:       SourcePrefix + src,
		Source:     SourcePrefix + src,
		Selectors:  sel,
		Credential: ref,
		Owner:      t.owner,
	}
}

// signature identifies tags that describe the same binding.
func (t tags) signature() string {
	raw, _ := json.Marshal([]any{t.selectors, t.options, t.action, t.deliverTo, t.fields})
	return string(raw)
}

// splitList splits a comma-separated value, trimming spaces and dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = appendUnique(out, s)
		}
	}
	return out
}

func appendUnique(list []string, s string) []string {
	for _, v := range list {
		if v == s {
			return list
		}
	}
	return append(list, s)
}

// stringMap converts a JSON object from a Vault response to a map of strings; values that are
// not strings are rendered as JSON text.
func stringMap(v any) map[string]string {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, val := range m {
		switch x := val.(type) {
		case string:
			out[k] = x
		case nil:
		case json.Number:
			out[k] = x.String()
		case bool:
			out[k] = strconv.FormatBool(x)
		default:
			raw, _ := json.Marshal(x)
			out[k] = string(raw)
		}
	}
	return out
}

// str returns v as a string, or "" when it is not one.
func str(v any) string {
	s, _ := v.(string)
	return s
}

// num returns a number from a Vault response, or 0.
func num(v any) int64 {
	switch n := v.(type) {
	case json.Number:
		if i, err := n.Int64(); err == nil {
			return i
		}
		f, _ := n.Float64()
		return int64(f)
	case float64:
		return int64(n)
	case int64:
		return n
	case int:
		return int64(n)
	case string:
		i, _ := strconv.ParseInt(n, 10, 64)
		return i
	}
	return 0
}

// containsFold reports whether any of list contains sub, ignoring case.
func containsFold(list []string, sub string) bool {
	sub = strings.ToLower(sub)
	for _, s := range list {
		if strings.Contains(strings.ToLower(s), sub) {
			return true
		}
	}
	return false
}
