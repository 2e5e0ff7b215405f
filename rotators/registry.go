package rotators

import (
	"fmt"
	"sort"
)

// Registry maps credential kinds to their Rotators. It is filled once at start-up and read
// afterwards; an unknown kind fails closed.
type Registry struct {
	byKind map[string]Rotator
}

// NewRegistry returns a registry holding the given rotators. Two rotators of one kind are an error.
func NewRegistry(rs ...Rotator) (*Registry, error) {
	reg := &Registry{byKind: map[string]Rotator{}}
	for _, r := range rs {
		if _, dup := reg.byKind[r.Kind()]; dup {
			return nil, fmt.Errorf("rotator kind %q registered twice", r.Kind())
		}
		reg.byKind[r.Kind()] = r
	}
	return reg, nil
}

// Lookup returns the Rotator for kind, or an error wrapping ErrUnknownKind that lists the
// known kinds.
func (r *Registry) Lookup(kind string) (Rotator, error) {
	if rot, ok := r.byKind[kind]; ok {
		return rot, nil
	}
	return nil, Permanent(fmt.Errorf("%w %q (known kinds: %v)", ErrUnknownKind, kind, r.Kinds()))
}

// Kinds lists the registered kinds in order.
func (r *Registry) Kinds() []string {
	kinds := make([]string, 0, len(r.byKind))
	for k := range r.byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	return kinds
}
