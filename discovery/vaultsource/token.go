package vaultsource

import (
	"strings"

	"github.com/rotation-agent/rotation-agent/discovery"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators/token"
)

// tokenSource returns the token source: tokens created under one of paths.
func tokenSource(paths []string) source {
	return source{key: SourceToken, run: func(w *walker) ([]discovery.Binding, error) { return discoverTokens(w, paths) }}
}

// discoverTokens lists token accessors (auth/token/accessors, which needs sudo) and looks each
// up. A token created under one of paths whose metadata carries selector tags becomes a token
// binding: Path is its accessor, the action is revoke unless a rotation_action tag says
// otherwise, deliver_to and rotation_* metadata become options. Tokens themselves are never
// read: the accessor lookup does not return them.
func discoverTokens(w *walker, paths []string) ([]discovery.Binding, error) {
	if err := w.visit(); err != nil {
		return nil, err
	}
	accessors, err := w.list("auth/token/accessors")
	if err != nil {
		return nil, err
	}
	var out []discovery.Binding
	for _, acc := range accessors {
		if err := w.visit(); err != nil {
			return out, err
		}
		s, err := w.lookup("auth/token/lookup-accessor", map[string]any{"accessor": acc}, "invalid accessor")
		if err != nil {
			return out, err
		}
		if s == nil || s.Data == nil || !hasAnyPrefix(str(s.Data["path"]), paths) {
			continue
		}
		t, err := parseTags(stringMap(s.Data["meta"]))
		if err != nil {
			w.warn("token %s skipped: %w", acc, err)
			continue
		}
		if !t.tagged() {
			continue
		}
		ref := events.CredentialRef{Kind: token.Kind, Mount: "token", Path: acc, Action: events.ActionRevoke}
		if t.action != "" {
			ref.Action = t.action
		}
		if t.deliverTo != "" {
			ref.Options = map[string]string{token.OptionDeliverTo: t.deliverTo}
		}
		out = append(out, t.binding(ref, SourceToken+":token/accessors/"+acc))
	}
	return out, nil
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
