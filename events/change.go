// Package events holds the wire contracts of rotation-agent: the change events it consumes, the
// evidence and rejection records it publishes, the subjects they travel on, and the codec that
// decodes and validates inbound messages. Nothing in this package talks to NATS or Vault.
package events

import "time"

// SpecVersion is the CloudEvents specification version every message on the bus carries.
const SpecVersion = "1.0"

// CloudEvents type attributes of the messages rotation-agent consumes and publishes.
const (
	// TypeChangeCompleted marks a change whose implementation finished; its credentials must be
	// brought back to the approved state.
	TypeChangeCompleted = "io.rotation-agent.change.completed.v1"
	// TypeChangePlanned marks a change that is planned or approved but not implemented yet; the
	// agent answers with an identity impact report and changes nothing.
	TypeChangePlanned = "io.rotation-agent.change.planned.v1"
	// TypeImpact marks an identity impact report published for a planned change.
	TypeImpact = "io.rotation-agent.impact.v1"
	// TypeEvidence marks a reconciliation evidence record published by the agent.
	TypeEvidence = "io.rotation-agent.evidence.v1"
	// TypeRejection marks a record explaining why an inbound message was refused.
	TypeRejection = "io.rotation-agent.rejection.v1"
)

// Envelope is a CloudEvents 1.0 structured-mode JSON envelope. Data holds the payload, whose
// shape depends on Type.
type Envelope[T any] struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Subject         string    `json:"subject,omitempty"`
	Time            time.Time `json:"time"`
	DataContentType string    `json:"datacontenttype,omitempty"`
	Data            T         `json:"data"`
}

// ChangeType is the ITSM classification of a change.
type ChangeType string

// The change types an ITSM tool reports.
const (
	ChangeStandard  ChangeType = "standard"
	ChangeNormal    ChangeType = "normal"
	ChangeEmergency ChangeType = "emergency"
)

// Change is the change record carried in the data of a change-completed event.
type Change struct {
	ID      string     `json:"change_id"`
	Type    ChangeType `json:"change_type"`
	State   string     `json:"state"`
	Summary string     `json:"summary,omitempty"`
	// Category refines the change for the action policy: decommission revokes the credentials
	// of what it touched; exposure rotates them and revokes the old ones at once.
	Category             string                 `json:"category,omitempty"`
	ImplementedAt        *time.Time             `json:"implemented_at,omitempty"`
	CompletedAt          time.Time              `json:"completed_at,omitzero"`
	PlannedStart         *time.Time             `json:"planned_start,omitempty"`
	Requester            Person                 `json:"requester"`
	Approvers            []Person               `json:"approvers,omitempty"`
	Targets              Targets                `json:"targets"`
	Credentials          []CredentialRef        `json:"credentials,omitempty"`
	ApprovedEntitlements []ApprovedEntitlements `json:"approved_entitlements,omitempty"`
	// Granted lists access an emergency change issued (tokens, AppRole secret ids); the
	// post-change review's clean-up revokes or rotates them when the review is rejected or
	// overdue.
	Granted []CredentialRef `json:"granted,omitempty"`
	// Trigger is set by the agent on work it creates itself (schedule, manual, review); an
	// event from an ITSM bridge leaves it out, which means event.
	Trigger Trigger `json:"trigger,omitempty"`
	// RelatedChangeID names the change this work follows up: the emergency change a review
	// clean-up belongs to, or the change whose deferred credential now runs.
	RelatedChangeID string `json:"related_change_id,omitempty"`
}

// EffectiveTrigger is the change's trigger, or event when none was given.
func (c Change) EffectiveTrigger() Trigger {
	if c.Trigger == "" {
		return TriggerEvent
	}
	return c.Trigger
}

// EvidenceTrigger is the trigger its evidence records: emergency for an emergency change an
// ITSM bridge sent, otherwise the effective trigger.
func (c Change) EvidenceTrigger() Trigger {
	if t := c.EffectiveTrigger(); t != TriggerEvent || c.Type != ChangeEmergency {
		return t
	}
	return TriggerEmergency
}

// Person identifies a requester or an approver in the ITSM tool.
type Person struct {
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
}

// Targets lists what a change touched. Discovery maps these to credentials.
type Targets struct {
	Services           []string `json:"services,omitempty"`
	Hosts              []string `json:"hosts,omitempty"`
	ConfigurationItems []string `json:"configuration_items,omitempty"`
	Environments       []string `json:"environments,omitempty"`
	Owners             []string `json:"owners,omitempty"`
	Identities         []string `json:"identities,omitempty"`
}

// Action is what the agent does to a credential.
type Action string

// The actions a credential reference may ask for.
const (
	ActionRotate Action = "rotate"
	ActionRevoke Action = "revoke"
	ActionVerify Action = "verify"
)

// CredentialRef names one credential explicitly. Kind selects the rotator; Mount and Path locate
// the credential in Vault; Fields limits a KV rotation to the named keys of a multi-field secret.
type CredentialRef struct {
	Kind    string            `json:"kind"`
	Mount   string            `json:"mount"`
	Path    string            `json:"path"`
	Fields  []string          `json:"fields,omitempty"`
	Action  Action            `json:"action,omitempty"`
	Options map[string]string `json:"options,omitempty"`
}

// ID is a stable, human-readable identifier of the credential: kind, mount and path.
func (c CredentialRef) ID() string {
	return c.Kind + ":" + c.Mount + "/" + c.Path
}

// Key identifies the credential for de-duplication and in the journal: its ID, and for kinds
// whose path is a role (pki, approle-secret-id) the certificate serial and the delivery target
// that tell two credentials of one role apart.
func (c CredentialRef) Key() string {
	key := c.ID()
	if s, d := c.Options["serial"], c.Options["deliver_to"]; s != "" || d != "" {
		key += "|" + s + "|" + d
	}
	return key
}

// EffectiveAction is the requested action, or rotate when none was given.
func (c CredentialRef) EffectiveAction() Action {
	if c.Action == "" {
		return ActionRotate
	}
	return c.Action
}

// ApprovedEntitlements is the approved access of one identity after the change.
type ApprovedEntitlements struct {
	Identity string   `json:"identity"`
	Policies []string `json:"policies"`
	// Capabilities maps sensitive paths to the capabilities the identity is approved to have
	// on each (for example {"secret/data/payments/*": ["read"]}).
	Capabilities map[string][]string `json:"capabilities,omitempty"`
}

// ChangeEvent is a decoded change-completed event.
type ChangeEvent = Envelope[Change]
