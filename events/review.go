package events

import "time"

// TypeReview marks a post-change review record published by the agent.
const TypeReview = "io.rotation-agent.review.v1"

// ReviewStatus is where a post-change review stands.
type ReviewStatus string

// The states of a post-change review.
const (
	// ReviewOpen waits for an attestation before its deadline.
	ReviewOpen ReviewStatus = "open"
	// ReviewApproved means a reviewer approved the emergency change.
	ReviewApproved ReviewStatus = "approved"
	// ReviewRejected means a reviewer rejected it; the clean-up ran.
	ReviewRejected ReviewStatus = "rejected"
	// ReviewOverdue means nobody attested in time; the escalation and the clean-up ran.
	ReviewOverdue ReviewStatus = "overdue"
)

// ReviewEvent says what a review record reports.
type ReviewEvent string

// The events of a post-change review.
const (
	ReviewOpened   ReviewEvent = "opened"
	ReviewReminder ReviewEvent = "reminder"
	ReviewAttested ReviewEvent = "attested"
	ReviewEscalate ReviewEvent = "overdue"
)

// Decision is a reviewer's verdict.
type Decision string

// The verdicts a reviewer can give.
const (
	DecisionApprove Decision = "approve"
	DecisionReject  Decision = "reject"
)

// Attestation is one reviewer's verdict on an emergency change.
type Attestation struct {
	By       string    `json:"by"`
	Decision Decision  `json:"decision"`
	Note     string    `json:"note,omitempty"`
	At       time.Time `json:"at"`
}

// Review is the post-change review of an emergency change: opened when its evidence is
// published, closed by an attestation, escalated when its deadline passes.
type Review struct {
	ChangeID     string        `json:"change_id"`
	Status       ReviewStatus  `json:"status"`
	Event        ReviewEvent   `json:"event"`
	OpenedAt     time.Time     `json:"opened_at"`
	Deadline     time.Time     `json:"deadline"`
	Environments []string      `json:"environments,omitempty"`
	Attestations []Attestation `json:"attestations,omitempty"`
	// Granted lists the credentials the clean-up acts on.
	Granted []string `json:"granted,omitempty"`
	// CleanupChangeID is the change the clean-up runs as; its evidence names this change as
	// related_change_id.
	CleanupChangeID string `json:"cleanup_change_id,omitempty"`
	// EscalatedAt is when the deadline passed without an attestation and the escalation was
	// published; it stays set when a late attestation follows.
	EscalatedAt *time.Time `json:"escalated_at,omitempty"`
	Agent       AgentInfo  `json:"agent"`
}

// AttestRequest is a reviewer's attestation, sent as a NATS request on Subjects.ReviewAttest.
type AttestRequest struct {
	ChangeID string   `json:"change_id"`
	By       string   `json:"by"`
	Decision Decision `json:"decision"`
	Note     string   `json:"note,omitempty"`
}

// ReviewReply answers an attestation or a list request.
type ReviewReply struct {
	// Error, when set, says why the request was refused.
	Error   string   `json:"error,omitempty"`
	Reviews []Review `json:"reviews"`
}

// IsReviewStep reports whether an evidence record evidences a step of its own change's
// post-change review (opened, attested, overdue) rather than work on credentials. A clean-up
// change's record also carries a review, that of the emergency change it follows up, and is
// not a review step.
func (e Evidence) IsReviewStep() bool {
	return e.Trigger == TriggerReview && e.Review != nil && e.Review.ChangeID == e.ChangeID
}
