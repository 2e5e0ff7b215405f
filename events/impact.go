package events

import "time"

// ImpactLevel rates how much a planned change touches identities.
type ImpactLevel string

// The impact levels of a planned change.
const (
	// ImpactNone means the change touches no credential.
	ImpactNone ImpactLevel = "none"
	// ImpactLow means credentials will be rotated in the ordinary way.
	ImpactLow ImpactLevel = "low"
	// ImpactHigh means a revocation, a root credential, a credential the agent cannot act on,
	// or many credentials at once: the change board should look before implementation.
	ImpactHigh ImpactLevel = "high"
)

// HighImpactCredentials is the number of credentials from which a change counts as high impact.
const HighImpactCredentials = 5

// CredentialImpact is what the agent would do to one credential of a planned change.
type CredentialImpact struct {
	Credential string `json:"credential"`
	Kind       string `json:"kind"`
	Action     Action `json:"action"`
	MatchedBy  string `json:"matched_by"`
	// Source says where the credential's reference came from, as in CredentialEvidence.
	Source  string      `json:"source,omitempty"`
	Current Fingerprint `json:"current,omitempty"`
	WouldDo []string    `json:"would_do,omitempty"`
	Error   string      `json:"error,omitempty"`
}

// Impact is the identity impact report of a planned change, published before implementation.
type Impact struct {
	SchemaVersion int                `json:"schema_version"`
	ChangeID      string             `json:"change_id"`
	EventID       string             `json:"event_id"`
	ChangeType    ChangeType         `json:"change_type"`
	Level         ImpactLevel        `json:"impact"`
	Reasons       []string           `json:"reasons"`
	Credentials   []CredentialImpact `json:"credentials"`
	Agent         AgentInfo          `json:"agent"`
	AssessedAt    time.Time          `json:"assessed_at"`
}

// AssessImpact rates a planned change from what would be done to its credentials.
func AssessImpact(creds []CredentialImpact) (ImpactLevel, []string) {
	if len(creds) == 0 {
		return ImpactNone, []string{"the change touches no credential"}
	}
	var reasons []string
	for _, c := range creds {
		switch {
		case c.Error != "":
			reasons = append(reasons, c.Credential+" cannot be acted on: "+c.Error)
		case c.Action == ActionRevoke:
			reasons = append(reasons, c.Credential+" will be revoked")
		case c.Kind == "database-root":
			reasons = append(reasons, c.Credential+" is a root credential")
		}
	}
	if len(creds) >= HighImpactCredentials {
		reasons = append(reasons, "the change touches many credentials at once")
	}
	if len(reasons) > 0 {
		return ImpactHigh, reasons
	}
	return ImpactLow, []string{"credentials will be rotated with their overlap windows"}
}
