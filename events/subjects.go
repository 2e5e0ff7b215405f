package events

import (
	"strings"
)

// DefaultSubjectPrefix is the first token of every subject the agent uses unless configured.
const DefaultSubjectPrefix = "rotation"

// Subjects derives the NATS subjects of the agent from one configurable prefix.
type Subjects struct {
	Prefix string
}

// ChangesWildcard matches every inbound change subject; the change stream captures it.
func (s Subjects) ChangesWildcard() string { return s.Prefix + ".changes.>" }

// ChangeCompleted is the subject ITSM bridges publish change-completed events on.
func (s Subjects) ChangeCompleted() string { return s.Prefix + ".changes.completed" }

// ChangePlanned is the subject ITSM bridges publish change-planned events on.
func (s Subjects) ChangePlanned() string { return s.Prefix + ".changes.planned" }

// Impact is the subject the identity impact report of a planned change is published on.
func (s Subjects) Impact(changeID string) string { return s.Prefix + ".impact." + Token(changeID) }

// ImpactWildcard matches every impact subject.
func (s Subjects) ImpactWildcard() string { return s.Prefix + ".impact.>" }

// EvidenceWildcard matches every evidence subject.
func (s Subjects) EvidenceWildcard() string { return s.Prefix + ".evidence.>" }

// Evidence is the subject evidence for one change is published on.
func (s Subjects) Evidence(changeID string) string {
	return s.Prefix + ".evidence." + Token(changeID)
}

// DeadLetter is the subject a change event that ran out of deliveries is copied to.
func (s Subjects) DeadLetter() string { return s.Prefix + ".deadletter" }

// Rotate is the request/reply subject of manual rotation requests.
func (s Subjects) Rotate() string { return s.Prefix + ".rotate" }

// Progress is the subject the agent reports the progress of a change on, one message per
// credential (core NATS, not stored).
func (s Subjects) Progress(changeID string) string { return s.Prefix + ".progress." + Token(changeID) }

// Review is the subject the post-change review records of a change are published on.
func (s Subjects) Review(changeID string) string { return s.Prefix + ".reviews." + Token(changeID) }

// ReviewsWildcard matches every review record subject; the evidence stream captures it.
func (s Subjects) ReviewsWildcard() string { return s.Prefix + ".reviews.>" }

// ReviewAttest is the request/reply subject reviewers attest an emergency change on.
func (s Subjects) ReviewAttest() string { return s.Prefix + ".review.attest" }

// ReviewList is the request/reply subject that lists the open post-change reviews.
func (s Subjects) ReviewList() string { return s.Prefix + ".review.list" }

// Rejections is the subject rejection records are published on.
func (s Subjects) Rejections() string { return s.Prefix + ".rejections" }

// Token turns an arbitrary identifier into a single NATS subject token: characters other than
// letters, digits, '-' and '_' become '_', so a change id can never add tokens or wildcards.
func Token(id string) string {
	if id == "" {
		return "_"
	}
	var b strings.Builder
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// EvidenceGet is the request/reply subject that returns the evidence records of a change. It
// lies outside the evidence stream's subjects, so requests are not stored.
func (s Subjects) EvidenceGet() string { return s.Prefix + ".api.evidence.get" }

// ClosureCheck is the request/reply subject that answers whether a change may be closed.
func (s Subjects) ClosureCheck() string { return s.Prefix + ".api.closure.check" }
