package events

import "time"

// ImpactLevel rates how much a planned change touches identities.
type ImpactLevel string

// The impact levels of a planned change.
const (
	// ImpactNone means the change touches no credential.
	ImpactNone ImpactLevel = "none"
	// ImpactLow means credentials will be rotated with an overlap window, so their users have
	// time to take the new credential before the old one is retired.
	ImpactLow ImpactLevel = "low"
	// ImpactHigh means an immediate cut-off (a revocation, or a rotation with no overlap
	// window), a root credential, a credential the agent cannot act on, or many credentials
	// at once: the change board should look before implementation.
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
	Source string `json:"source,omitempty"`
	// Overlap is, for a rotation, how long the old credential would stay before it is retired
	// (a Go duration: "0s" retires it as soon as the new one is in place); absent for a
	// revocation and for a credential the agent cannot act on.
	Overlap string      `json:"overlap,omitempty"`
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
	// Discovery says which discovery sources were looked in and how complete they were;
	// absent when no discovery is configured.
	Discovery *DiscoveryReport `json:"discovery,omitempty"`
}

// AssessImpact rates a planned change from what would be done to its credentials, with one
// reason per credential: high when any credential would be cut off at once (revoked, or
// rotated with no overlap window), is a root credential or cannot be acted on, or when many
// credentials are touched; low when every credential keeps an overlap window; none without
// credentials. Only the reasons for the level given are returned.
func AssessImpact(creds []CredentialImpact) (ImpactLevel, []string) {
	if len(creds) == 0 {
		return ImpactNone, []string{"the change touches no credential"}
	}
	var high, low []string
	for _, c := range creds {
		switch {
		case c.Error != "":
			high = append(high, c.Credential+" cannot be acted on: "+c.Error)
		case c.Action == ActionRevoke:
			high = append(high, c.Credential+" will be revoked: it stops working at once")
		case c.Kind == "database-root":
			high = append(high, c.Credential+" is a root credential")
		case c.Overlap == "0s":
			high = append(high, c.Credential+" will be rotated with no overlap window: the old credential is retired as soon as the new one is in place, leaving its users no time to switch")
		case c.Overlap != "":
			low = append(low, c.Credential+" will be rotated with a "+c.Overlap+" overlap window before the old credential is retired")
		default:
			low = append(low, c.Credential+" will be rotated")
		}
	}
	if len(creds) >= HighImpactCredentials {
		high = append(high, "the change touches many credentials at once")
	}
	if len(high) > 0 {
		return ImpactHigh, high
	}
	return ImpactLow, low
}
