package events

import "time"

// EvidenceSchemaVersion is the version of the evidence record layout.
const EvidenceSchemaVersion = 1

// Status is the overall outcome of a change's reconciliation.
type Status string

// The overall statuses an evidence record can carry.
const (
	// StatusReconciled means every credential reached the requested state.
	StatusReconciled Status = "reconciled"
	// StatusPartial means some credentials were reconciled and some were not.
	StatusPartial Status = "partial"
	// StatusFailed means no credential was reconciled.
	StatusFailed Status = "failed"
	// StatusNoCredentials means the change matched no credential: nothing to do, and it was looked at.
	StatusNoCredentials Status = "no_credentials"
	// StatusDeferred means nothing failed and some credentials wait for their maintenance
	// window; each says until when, and their own evidence follows when they run.
	StatusDeferred Status = "deferred"
	// StatusDrift means every credential was reconciled (or there was none) but an identity of
	// the change holds entitlements other than the approved ones.
	StatusDrift Status = "drift"
	// StatusRejected means the agent refused to act on the change (for example a review
	// rejected it); nothing was changed.
	StatusRejected Status = "rejected"
)

// Outcome is the result for one credential.
type Outcome string

// The outcomes of one credential.
const (
	// OutcomeRotated means a new credential was written and the old one superseded.
	OutcomeRotated Outcome = "rotated"
	// OutcomeRevoked means the credential was revoked as asked and no longer works.
	OutcomeRevoked Outcome = "revoked"
	// OutcomeFailed means the action could not be completed; Error says why.
	OutcomeFailed Outcome = "failed"
	// OutcomeNeedsReconcile means the agent gave up after repeated failures, fresh values
	// included; an operator must reconcile the credential. Error says what failed last.
	OutcomeNeedsReconcile Outcome = "needs_reconcile"
	// OutcomeDeferred means the credential's binding does not allow a rotation now (outside
	// its maintenance windows or inside a blackout); it runs at DeferredUntil.
	OutcomeDeferred Outcome = "deferred"
)

// Trigger says what started a reconciliation.
type Trigger string

// The triggers of a reconciliation.
const (
	// TriggerEvent marks work started by a change event on the bus.
	TriggerEvent Trigger = "event"
	// TriggerSchedule marks work the agent scheduled itself, such as retiring an old
	// credential when its overlap window ends.
	TriggerSchedule Trigger = "schedule"
	// TriggerManual marks a rotation a platform team asked for with a rotate request.
	TriggerManual Trigger = "manual"
	// TriggerReview marks the clean-up of an emergency change whose post-change review was
	// rejected or went overdue.
	TriggerReview Trigger = "review"
	// TriggerEmergency marks work done for an emergency change, at once and outside any
	// maintenance window; its post-change review follows.
	TriggerEmergency Trigger = "emergency"
)

// AgentInfo identifies the agent that produced a record.
type AgentInfo struct {
	ID      string `json:"id"`
	Version string `json:"version"`
}

// Fingerprint is a non-secret description of a credential's state: version numbers, serials,
// accessors, rotation times. It never holds a secret value.
type Fingerprint map[string]string

// CredentialEvidence is what happened to one credential.
type CredentialEvidence struct {
	Credential string      `json:"credential"`
	Kind       string      `json:"kind"`
	Mount      string      `json:"mount"`
	Path       string      `json:"path"`
	Fields     []string    `json:"fields,omitempty"`
	Action     Action      `json:"action"`
	Outcome    Outcome     `json:"outcome"`
	Before     Fingerprint `json:"before,omitempty"`
	After      Fingerprint `json:"after,omitempty"`
	// Verified is true when the new credential was proven to work against its target.
	Verified bool `json:"verified"`
	// OldCredential says what became of the old credential: "retired" (revoked, deleted or
	// kept per policy once the overlap ended), "retire_pending" until RetireAt, or "kept" when a
	// sidecar's application never confirmed the new credential (see Delivery).
	OldCredential string     `json:"old_credential,omitempty"`
	RetireAt      *time.Time `json:"retire_at,omitempty"`
	RetiredAt     *time.Time `json:"retired_at,omitempty"`
	Resumed       bool       `json:"resumed,omitempty"`
	// MatchedBy says why the credential was part of the change: named in the event, or the
	// inventory binding or discovery source whose selectors matched the change's targets.
	MatchedBy string `json:"matched_by,omitempty"`
	// Source says where the credential's reference came from: "event" (named in the change
	// event), "inventory:<file>:<line>" (the inventory binding at that line) or
	// "discovery:<source>" (a binding discovered in Vault, e.g. discovery:kv-v2:secret/apps/db).
	Source string `json:"source,omitempty"`
	// DeferredUntil is when a deferred credential is due to run (the next allowed time).
	DeferredUntil *time.Time `json:"deferred_until,omitempty"`
	// Delivery is set by an agent in sidecar mode: how the new credential reached the application.
	Delivery   *Delivery `json:"delivery,omitempty"`
	Error      string    `json:"error,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	DurationMS int64     `json:"duration_ms"`
}

// Evidence is the reconciliation record the agent publishes for a change.
type Evidence struct {
	SchemaVersion int                  `json:"schema_version"`
	ChangeID      string               `json:"change_id"`
	EventID       string               `json:"event_id"`
	ChangeType    ChangeType           `json:"change_type"`
	Trigger       Trigger              `json:"trigger"`
	Agent         AgentInfo            `json:"agent"`
	Status        Status               `json:"status"`
	StartedAt     time.Time            `json:"started_at"`
	FinishedAt    time.Time            `json:"finished_at"`
	Credentials   []CredentialEvidence `json:"credentials"`
	// RelatedChangeID names the change this work follows up (see Change.RelatedChangeID).
	RelatedChangeID string `json:"related_change_id,omitempty"`
	// Entitlements compares the access of each identity tied to the change with the approved
	// access; absent when the change and its bindings approve none.
	Entitlements []EntitlementEvidence `json:"entitlements,omitempty"`
	// Discovery says how complete the bindings discovered in Vault were when the change's
	// credentials were looked up; absent when no discovery is configured or the record is not
	// about a change's targets.
	Discovery *DiscoveryReport `json:"discovery,omitempty"`
	// Controls lists the controls this record evidences (see ControlsFor).
	Controls []string `json:"controls,omitempty"`
	// Review is set on the records of a post-change review (trigger review, status
	// no_credentials): the review of the emergency change as it stood after the step the record
	// evidences (opened, an attestation, the overdue escalation). A clean-up change's record
	// carries the review that started it.
	Review *Review `json:"review,omitempty"`
	// Chain links the record to the previous record of the same agent.
	Chain *ChainLink `json:"chain,omitempty"`
	// Signature signs the record; see SigningBytes for what exactly is signed.
	Signature *Signature `json:"signature,omitempty"`
}

// WithEntitlements refines a status derived from credentials with the entitlement results: a
// change whose credentials are all reconciled (or that had none) is in drift while any
// identity's entitlements differ from the approved ones or could not be checked.
func WithEntitlements(s Status, ents []EntitlementEvidence) Status {
	if s != StatusReconciled && s != StatusNoCredentials {
		return s
	}
	for _, e := range ents {
		if e.Open() {
			return StatusDrift
		}
	}
	return s
}

// OverallStatus derives the status of a change from the outcomes of its credentials.
func OverallStatus(creds []CredentialEvidence) Status {
	if len(creds) == 0 {
		return StatusNoCredentials
	}
	ok, deferred := 0, 0
	for _, c := range creds {
		switch c.Outcome {
		case OutcomeRotated, OutcomeRevoked:
			ok++
		case OutcomeDeferred:
			deferred++
		}
	}
	if deferred > 0 && ok+deferred == len(creds) {
		return StatusDeferred
	}
	switch ok {
	case len(creds):
		return StatusReconciled
	case 0:
		return StatusFailed
	default:
		return StatusPartial
	}
}
