package events

import "time"

// EntitlementStatus is the result of comparing one identity's access with the approved access.
type EntitlementStatus string

// The results of an entitlement comparison.
const (
	// EntitlementMatch means the identity holds exactly the approved policies, and every
	// declared capability that could be computed is the approved one.
	EntitlementMatch EntitlementStatus = "match"
	// EntitlementDrift means the identity holds policies or capabilities other than the
	// approved ones; the extra and missing entries say which.
	EntitlementDrift EntitlementStatus = "drift"
	// EntitlementRemediated means drift was found and the approved policies were written back;
	// the record keeps what was found before.
	EntitlementRemediated EntitlementStatus = "remediated"
	// EntitlementError means the identity could not be checked; Error says why.
	EntitlementError EntitlementStatus = "error"
)

// EntitlementEvidence is the comparison of one identity's access with its approved access.
type EntitlementEvidence struct {
	// Identity names the identity as the approval does, e.g. approle:approle/payments.
	Identity string `json:"identity"`
	// Kind is the kind of identity: approle-role, token-role, entity, group or token.
	Kind string `json:"kind,omitempty"`
	// Source says where the approval came from: the change event or an inventory binding.
	Source string            `json:"source"`
	Status EntitlementStatus `json:"status"`
	// ApprovedPolicies and ActualPolicies are sorted; ActualPolicies is what Vault held when
	// the comparison ran (before any remediation).
	ApprovedPolicies []string `json:"approved_policies"`
	ActualPolicies   []string `json:"actual_policies,omitempty"`
	// ExtraPolicies are held but not approved; MissingPolicies approved but not held.
	ExtraPolicies   []string `json:"extra_policies,omitempty"`
	MissingPolicies []string `json:"missing_policies,omitempty"`
	// Capabilities compares the effective capabilities on declared sensitive paths.
	Capabilities []CapabilityEvidence `json:"capabilities,omitempty"`
	// Remediation records what the agent wrote to bring the identity back to the approval.
	Remediation *Remediation `json:"remediation,omitempty"`
	Error       string       `json:"error,omitempty"`
	CheckedAt   time.Time    `json:"checked_at"`
}

// Open reports whether the comparison leaves drift open: drift that was not remediated, or an
// identity that could not be checked.
func (e EntitlementEvidence) Open() bool {
	return e.Status == EntitlementDrift || e.Status == EntitlementError
}

// CapabilityStatus is the result of comparing the capabilities on one path.
type CapabilityStatus string

// The results of a capability comparison.
const (
	// CapabilityMatch means the effective capabilities are the approved ones.
	CapabilityMatch CapabilityStatus = "match"
	// CapabilityDrift means they differ; Extra and Missing say how.
	CapabilityDrift CapabilityStatus = "drift"
	// CapabilityNotComputed means the agent cannot compute them without more privilege than
	// it holds; Note says why. It is not counted as drift, and it is not a match either.
	CapabilityNotComputed CapabilityStatus = "not_computed"
)

// CapabilityEvidence compares the effective capabilities of an identity on one path.
type CapabilityEvidence struct {
	Path     string           `json:"path"`
	Status   CapabilityStatus `json:"status"`
	Approved []string         `json:"approved"`
	Actual   []string         `json:"actual,omitempty"`
	Extra    []string         `json:"extra,omitempty"`
	Missing  []string         `json:"missing,omitempty"`
	// MeasuredBy says how Vault evaluated the capabilities (MeasuredByAccessor or MeasuredByProbeLogin); empty when
	// they were not computed.
	MeasuredBy string `json:"measured_by,omitempty"`
	Note       string `json:"note,omitempty"`
}

// How effective capabilities were measured.
const (
	// MeasuredByAccessor means sys/capabilities-accessor with the token identity's accessor.
	MeasuredByAccessor = "capabilities-accessor"
	// MeasuredByProbeLogin means a single-use login as the role (an AppRole secret id or a
	// token-role token), asked with sys/capabilities-self and revoked at once.
	MeasuredByProbeLogin = "probe-login"
)

// Remediation is what the agent wrote to bring an identity back to its approved access.
type Remediation struct {
	// SetPolicies is the policy list written (the approved policies).
	SetPolicies []string  `json:"set_policies"`
	At          time.Time `json:"at"`
	// Verified is true when reading the identity back showed the approved policies.
	Verified bool `json:"verified"`
}
