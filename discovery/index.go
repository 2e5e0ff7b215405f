package discovery

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/schedule"
)

// Index finds the bindings a change touches without scanning them all: for every selector key
// and value it keeps the bindings that accept it, so a change naming a handful of targets
// looks at a handful of posting lists.
type Index struct {
	// scratch holds per-binding bit sets for Match, all zero between calls.
	scratch  sync.Pool
	bindings []Binding
	// postings[key][value] lists the bindings whose selector key accepts value.
	postings map[string]map[string][]int32
	// need is, per binding, the bit set of selector keys it sets.
	need []uint8
	// breakGlass lists the bindings every emergency change rotates.
	breakGlass []int32
	// windows maps a credential's identity to the window of the first binding naming it.
	windows map[string]*schedule.Window
}

// NewIndex indexes bindings; their order decides which binding names a credential first.
func NewIndex(bindings []Binding) *Index {
	ix := &Index{bindings: bindings, postings: map[string]map[string][]int32{}, need: make([]uint8, len(bindings)), windows: map[string]*schedule.Window{}}
	for i, b := range bindings {
		if b.BreakGlass {
			ix.breakGlass = append(ix.breakGlass, int32(i))
		}
		if id := identity(b.Credential); ix.windows[id] == nil && !b.Window.IsZero() {
			ix.windows[id] = b.Window
		}
		for bit, key := range SelectorKeys {
			vals := b.Selectors[key]
			if len(vals) == 0 {
				continue
			}
			ix.need[i] |= 1 << bit
			m := ix.postings[key]
			if m == nil {
				m = map[string][]int32{}
				ix.postings[key] = m
			}
			for _, v := range vals {
				v = strings.ToLower(v)
				m[v] = append(m[v], int32(i))
			}
		}
	}
	return ix
}

// Len is the number of bindings indexed.
func (ix *Index) Len() int { return len(ix.bindings) }

// Bindings returns the indexed bindings in order; the caller must not modify them.
func (ix *Index) Bindings() []Binding { return ix.bindings }

// WindowOf returns the maintenance window of the first binding with a window that names the
// credential (however it writes the reference, see identity), or nil when none limits it.
func (ix *Index) WindowOf(ref events.CredentialRef) *schedule.Window {
	if ix == nil {
		return nil
	}
	return ix.windows[identity(ref)]
}

// Match returns the bindings whose every selector key accepts a target of the change, in
// binding order.
func (ix *Index) Match(t events.Targets) []Binding {
	buf, _ := ix.scratch.Get().(*[]uint8)
	if buf == nil || len(*buf) != len(ix.bindings) {
		s := make([]uint8, len(ix.bindings))
		buf = &s
	}
	have := *buf
	var touched []int32
	for bit, key := range SelectorKeys {
		var vals []string
		switch key {
		case KeyService:
			vals = t.Services
		case KeyHost:
			vals = t.Hosts
		case KeyCI:
			vals = t.ConfigurationItems
		case KeyEnvironment:
			vals = t.Environments
		case KeyOwner:
			vals = t.Owners
		case KeyIdentity:
			vals = t.Identities
		}
		m := ix.postings[key]
		if m == nil {
			continue
		}
		for _, v := range vals {
			for _, i := range m[strings.ToLower(v)] {
				if have[i] == 0 {
					touched = append(touched, i)
				}
				have[i] |= 1 << bit
			}
		}
	}
	var hits []int32
	for _, i := range touched {
		if have[i] == ix.need[i] {
			hits = append(hits, i)
		}
		have[i] = 0
	}
	ix.scratch.Put(buf)
	sort.Slice(hits, func(a, b int) bool { return hits[a] < hits[b] })
	out := make([]Binding, len(hits))
	for n, i := range hits {
		out[n] = ix.bindings[i]
	}
	return out
}

// Resolve lists every credential a change touches: those the event names (always), then
// those of matching bindings, each once, with the action the change's category and the
// binding's policy decide and the reason it matched. Two references to one credential (see
// identity) count once: the first wins (the event's, then the inventory's, as bindings are
// ordered), and when a discovered binding finds a credential the event or the inventory
// already gave, the reason says so. The binding data of a dropped reference is not lost: the
// kept one takes the first window, and the first binding name and approved entitlements, that
// it lacks (see mergeDuplicate).
func (ix *Index) Resolve(ch events.Change) []Match {
	seen := map[string]int{}
	var out []Match
	add := func(m Match, b *Binding) {
		id := identity(m.Credential)
		if i, dup := seen[id]; dup {
			if b != nil {
				out[i] = mergeDuplicate(out[i], *b)
			}
			return
		}
		seen[id] = len(out)
		out = append(out, m)
	}
	for _, ref := range ch.Credentials {
		add(Match{Credential: ref, Reason: "named in the event", Source: "event", Window: ix.WindowOf(ref)}, nil)
	}
	if ix == nil {
		return out
	}
	for _, b := range ix.Match(ch.Targets) {
		add(Match{
			Credential:   applyPolicy(b, ch.Category),
			Reason:       fmt.Sprintf("binding %s selects %s", b.Name, b.Selectors.describe()),
			Source:       b.Source,
			Binding:      b.Name,
			Window:       b.Window,
			Entitlements: b.ApprovedEntitlements,
		}, &b)
	}
	if ch.Type == events.ChangeEmergency {
		for _, i := range ix.breakGlass {
			b := ix.bindings[i]
			add(Match{
				Credential:   applyPolicy(b, ch.Category),
				Reason:       fmt.Sprintf("break-glass binding %s (emergency change)", b.Name),
				Source:       b.Source,
				Binding:      b.Name,
				Window:       b.Window,
				Entitlements: b.ApprovedEntitlements,
			}, &b)
		}
	}
	return out
}

// mergeDuplicate returns the kept match m after binding b named the same credential again:
// m takes b's window when it has none, and b's name and approved entitlements (together, so
// that the entitlements keep the name of the binding that approved them) when m has no
// binding, or has one without entitlements while b has some; its reason notes discovery (see
// alsoDiscovered).
func mergeDuplicate(m Match, b Binding) Match {
	m.Reason = alsoDiscovered(m, b)
	if m.Window.IsZero() && !b.Window.IsZero() {
		m.Window = b.Window
	}
	if m.Binding == "" || len(m.Entitlements) == 0 && len(b.ApprovedEntitlements) > 0 {
		m.Binding, m.Entitlements = b.Name, b.ApprovedEntitlements
	}
	return m
}

// alsoDiscovered returns m's reason, noting that the discovered binding b found the same
// credential when m came from the event or the inventory (once per binding).
func alsoDiscovered(m Match, b Binding) string {
	if !strings.HasPrefix(b.Source, discoveredPrefix) || strings.HasPrefix(m.Source, discoveredPrefix) {
		return m.Reason
	}
	note := "; discovery also found it (binding " + b.Name + ")"
	if strings.Contains(m.Reason, note) {
		return m.Reason
	}
	return m.Reason + note
}

// applyPolicy returns the binding's credential with the action for the change category: the
// binding's own "on" entry first, then the built-in policy (decommission revokes; exposure
// acts at once, with no overlap window), then the credential's default.
func applyPolicy(b Binding, category string) events.CredentialRef {
	ref := b.Credential
	if ref.Options != nil { // the caller's copy: nothing done with it may reach the binding
		opts := make(map[string]string, len(ref.Options))
		for k, v := range ref.Options {
			opts[k] = v
		}
		ref.Options = opts
	}
	if a, ok := b.Actions[category]; ok {
		ref.Action = a
		return ref
	}
	switch category {
	case CategoryDecommission:
		ref.Action = events.ActionRevoke
	case CategoryExposure:
		// The credential's own action (rotate, or revoke for kinds that revoke) with no
		// overlap: the exposed value must stop working now.
		if ref.Options == nil {
			ref.Options = map[string]string{}
		}
		ref.Options["overlap"] = "0s"
	}
	return ref
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
