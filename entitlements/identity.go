// Package entitlements compares the access Vault grants to the identities tied to a change
// with the access the change or the inventory approved, and can write the approved policies
// back. It never reads a secret.
package entitlements

import (
	"fmt"
	"strings"
)

// Identity kinds, as they appear in evidence.
const (
	KindAppRole   = "approle-role"
	KindTokenRole = "token-role"
	KindEntity    = "entity"
	KindGroup     = "group"
	KindToken     = "token"
)

// Identity is a parsed identity reference.
type Identity struct {
	// Kind is one of the Kind constants.
	Kind string
	// Mount is the auth mount of an AppRole role.
	Mount string
	// Name is the role, entity or group name, or the token accessor.
	Name string
}

// IdentityForms describes the identity references an approval may use.
const IdentityForms = "approle:<mount>/<role> (or approle:<role> on mount approle), token-role:<role>, entity:<name>, group:<name>, token:<accessor>"

// ParseIdentity reads an identity reference of an approval.
func ParseIdentity(ref string) (Identity, error) {
	prefix, rest, ok := strings.Cut(ref, ":")
	rest = strings.Trim(rest, "/")
	if !ok || rest == "" || strings.ContainsAny(rest, " \t\n?#") {
		return Identity{}, fmt.Errorf("identity %q is not one of %s", ref, IdentityForms)
	}
	switch prefix {
	case "approle":
		mount, role := "approle", rest
		if i := strings.LastIndex(rest, "/"); i >= 0 {
			mount, role = rest[:i], rest[i+1:]
		}
		return Identity{Kind: KindAppRole, Mount: mount, Name: role}, nil
	case "token-role":
		return simple(KindTokenRole, ref, rest)
	case "entity":
		return simple(KindEntity, ref, rest)
	case "group":
		return simple(KindGroup, ref, rest)
	case "token":
		return simple(KindToken, ref, rest)
	}
	return Identity{}, fmt.Errorf("identity %q is not one of %s", ref, IdentityForms)
}

func simple(kind, ref, name string) (Identity, error) {
	if strings.Contains(name, "/") {
		return Identity{}, fmt.Errorf("identity %q: a %s name has no '/'", ref, kind)
	}
	return Identity{Kind: kind, Name: name}, nil
}
