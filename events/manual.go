package events

import "time"

// SignatureHeader carries the requester's Ed25519 signature (an nkey signature, base64url
// without padding) over the exact bytes of a rotate request's body.
const SignatureHeader = "Rotation-Signature"

// RotateRequest asks the agent to rotate the credentials a selector matches, outside any
// change. It travels on Subjects.Rotate as a NATS request; the reply is a RotateReply.
type RotateRequest struct {
	// RequestID identifies the request; the rotation runs as change "manual:<request_id>", so
	// sending the same request again never rotates twice.
	RequestID string `json:"request_id"`
	// RequesterKey is the requester's nkey public key (it starts with U); the signature must
	// verify with it and the agent's authorisation file must name it.
	RequesterKey string `json:"requester_key"`
	// Selector chooses inventory bindings like a change's targets.
	Selector Targets `json:"selector"`
	// Kind, when set, limits the rotation to credentials of that kind.
	Kind string `json:"kind,omitempty"`
	// Reason says why; it is kept in the evidence as the change summary.
	Reason string `json:"reason"`
	// DryRun asks what would be done, reading Vault only.
	DryRun bool `json:"dry_run,omitempty"`
	// Emergency runs the rotation at once, even outside the credentials' maintenance windows,
	// and opens a post-change review like an emergency change.
	Emergency bool `json:"emergency,omitempty"`
	// IssuedAt is when the requester signed the request; old requests are refused.
	IssuedAt time.Time `json:"issued_at"`
}

// RotateStatus is the agent's answer to a rotate request.
type RotateStatus string

// The answers to a rotate request.
const (
	// RotateAccepted means the rotation was queued as change ChangeID.
	RotateAccepted RotateStatus = "accepted"
	// RotatePlanned answers a dry run: Plan says what would be done; nothing was changed.
	RotatePlanned RotateStatus = "planned"
	// RotateRefused means the requester may not rotate what it asked for (Reason says why).
	RotateRefused RotateStatus = "refused"
	// RotateInvalid means the request could not be read or failed its schema.
	RotateInvalid RotateStatus = "invalid"
)

// RotateReply is the agent's reply to a rotate request.
type RotateReply struct {
	RequestID string       `json:"request_id,omitempty"`
	Status    RotateStatus `json:"status"`
	Reason    string       `json:"reason,omitempty"`
	// ChangeID is the change the rotation runs as; its evidence is published on the
	// change's evidence subject and its progress on the change's progress subject.
	ChangeID string `json:"change_id,omitempty"`
	// Credentials lists the credentials the rotation acts on.
	Credentials []string `json:"credentials,omitempty"`
	// Plan is what a dry run would do to each credential.
	Plan []CredentialImpact `json:"plan,omitempty"`
}

// Progress reports that one credential of a change is done. It is published on
// Subjects.Progress as plain NATS (not stored): a watcher that misses it still gets the
// evidence.
type Progress struct {
	ChangeID   string  `json:"change_id"`
	Credential string  `json:"credential"`
	Outcome    Outcome `json:"outcome"`
	// Done and Total count the credentials of the change.
	Done  int `json:"done"`
	Total int `json:"total"`
}
