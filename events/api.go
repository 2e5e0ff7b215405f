package events

import "time"

// EvidenceRequest asks the agent's evidence service for the records of one change, or whether
// the change may be closed.
type EvidenceRequest struct {
	ChangeID string `json:"change_id"`
}

// EvidenceReply carries every evidence record of a change, in the order the stream holds them,
// each exactly as published so its signature can be checked.
type EvidenceReply struct {
	ChangeID string   `json:"change_id"`
	Records  []Record `json:"records"`
}

// ClosureAnswer tells an ITSM bridge whether a change may be closed, and why not.
type ClosureAnswer struct {
	ChangeID string `json:"change_id"`
	// MayClose is true only when every credential of the change is reconciled, every old
	// credential is retired, and no entitlement drift is open.
	MayClose bool `json:"may_close"`
	// Status is the overall status of the change record, when there is one.
	Status Status `json:"status,omitempty"`
	// Reasons explains the answer, one sentence each; empty when MayClose is true.
	Reasons []string `json:"reasons"`
	// Records is the number of evidence records the answer is based on.
	Records   int       `json:"records"`
	CheckedAt time.Time `json:"checked_at"`
}
