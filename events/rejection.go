package events

import "time"

// ReasonCode classifies why an inbound message was refused.
type ReasonCode string

// The reasons an inbound message can be refused.
const (
	ReasonTooLarge      ReasonCode = "too_large"
	ReasonMalformedJSON ReasonCode = "malformed_json"
	ReasonUnknownType   ReasonCode = "unknown_type"
	ReasonInvalid       ReasonCode = "invalid"
	ReasonUndeliverable ReasonCode = "max_deliveries"
	// ReasonUnauthorized refuses a rotate request whose requester may not rotate what it asks for.
	ReasonUnauthorized ReasonCode = "unauthorized"
)

// Rejection explains why an inbound message was refused. It never echoes the payload, which may
// hold anything; PayloadSHA256 lets an operator find the message in the stream.
type Rejection struct {
	ReasonCode     ReasonCode `json:"reason_code"`
	Reason         string     `json:"reason"`
	EventID        string     `json:"event_id,omitempty"`
	ChangeID       string     `json:"change_id,omitempty"`
	Subject        string     `json:"subject"`
	StreamSequence uint64     `json:"stream_sequence,omitempty"`
	PayloadBytes   int        `json:"payload_bytes"`
	PayloadSHA256  string     `json:"payload_sha256"`
	ReceivedAt     time.Time  `json:"received_at"`
	Agent          AgentInfo  `json:"agent"`
}

// Error lets a Rejection travel as an error inside the agent.
func (r *Rejection) Error() string { return string(r.ReasonCode) + ": " + r.Reason }
