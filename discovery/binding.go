// Package discovery finds the credentials a change touches: bindings declared in an inventory
// file and bindings discovered in Vault, matched against the change's targets through an
// index, each match saying why it matched.
package discovery

import (
	"sort"
	"strings"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/schedule"
)

// Selector keys: the kinds of target a change can name and a binding can select on.
const (
	KeyService     = "services"
	KeyHost        = "hosts"
	KeyCI          = "configuration_items"
	KeyEnvironment = "environments"
	KeyOwner       = "owners"
	KeyIdentity    = "identities"
)

// SelectorKeys lists every selector key in a stable order.
var SelectorKeys = []string{KeyService, KeyHost, KeyCI, KeyEnvironment, KeyOwner, KeyIdentity}

// Selectors maps a selector key to the values it accepts. A binding matches a change when,
// for every key it sets, the change names at least one of the accepted values (AND across
// keys, OR within a key). Matching ignores case.
type Selectors map[string][]string

// Binding ties a credential to the targets whose changes must reconcile it.
type Binding struct {
	// Name identifies the binding in evidence and plans.
	Name string
	// Selectors choose the changes the binding applies to.
	Selectors Selectors
	// Credential is the credential to act on; its Action is the default action.
	Credential events.CredentialRef
	// Owner is the team answerable for the credential.
	Owner string
	// Actions overrides the action per change category (for example decommission: revoke).
	Actions map[string]events.Action
	// Source says where the binding came from: "inventory:<file>:<line>" or "discovery:<what>".
	Source string
	// Schedule is a cron expression (five fields or a @descriptor) on which the credential is
	// rotated even when no change touches it; empty for none.
	Schedule string
	// ApprovedEntitlements is the access the credential's identities are approved to have.
	ApprovedEntitlements []events.ApprovedEntitlements
	// MaxAge, instead of Schedule, rotates the credential this long after the agent's last
	// scheduled rotation of it; zero for none.
	MaxAge time.Duration
	// BreakGlass marks an emergency credential: every emergency change rotates it, whatever
	// its selectors.
	BreakGlass bool
	// Window limits when the credential may be rotated (maintenance windows and blackout
	// periods); nil allows any time. Emergency changes ignore it.
	Window *schedule.Window
}

// Plan is the binding's rotation schedule (cron or maximum age); zero when it has none.
func (b Binding) Plan() schedule.Plan {
	if b.Schedule != "" {
		if s, err := schedule.ParseCron(b.Schedule); err == nil {
			return schedule.Plan{Cron: s}
		}
	}
	return schedule.Plan{MaxAge: b.MaxAge}
}

// Change categories with a built-in action policy.
const (
	// CategoryDecommission retires a system: its credentials are revoked.
	CategoryDecommission = "decommission"
	// CategoryExposure reports a leaked credential: it is rotated and the old one revoked at once.
	CategoryExposure = "exposure"
)

// Match is one credential a change touches, and why.
type Match struct {
	Credential events.CredentialRef
	// Reason explains the match: "named in the event", or the binding and the selector values.
	Reason string
	// Source is where the credential came from (event, inventory, discovery).
	Source string
	// Window is the maintenance window of the binding that owns the credential, if any.
	Window *schedule.Window
	// Binding is the name of the binding that matched (for a credential several bindings name,
	// the one whose Entitlements these are); empty for a credential named in the event that no
	// binding names.
	Binding string
	// Entitlements is the binding's approved access of the credential's identities.
	Entitlements []events.ApprovedEntitlements
}

// describe renders selectors as "services=payments hosts=db1" in key order.
func (s Selectors) describe() string {
	var parts []string
	for _, k := range SelectorKeys {
		if vals := s[k]; len(vals) > 0 {
			v := append([]string(nil), vals...)
			sort.Strings(v)
			parts = append(parts, k+"="+strings.Join(v, ","))
		}
	}
	return strings.Join(parts, " ")
}
