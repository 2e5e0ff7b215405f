package events

import (
	"os"
	"strings"
	"testing"
)

// docSection returns the text of docs/events.md under heading, up to the next heading of the
// same or a higher level (outside code blocks).
func docSection(t *testing.T, doc, heading string) string {
	t.Helper()
	level := strings.Index(heading, " ")
	lines := strings.Split(doc, "\n")
	for i, line := range lines {
		if line != heading {
			continue
		}
		fenced := false
		for j := i + 1; j < len(lines); j++ {
			if strings.HasPrefix(lines[j], "```") {
				fenced = !fenced
			}
			if n := len(lines[j]) - len(strings.TrimLeft(lines[j], "#")); !fenced && n > 0 && n <= level && strings.HasPrefix(lines[j][n:], " ") {
				return strings.Join(lines[i+1:j], "\n")
			}
		}
		return strings.Join(lines[i+1:], "\n")
	}
	t.Fatalf("docs/events.md has no heading %q", heading)
	return ""
}

// docRow returns the table row of section whose first cell is `name`.
func docRow(t *testing.T, section, name string) string {
	t.Helper()
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) > 2 && strings.TrimSpace(cells[1]) == "`"+name+"`" {
			return line
		}
	}
	t.Errorf("docs/events.md: no table row for %s", name)
	return ""
}

// docs/events.md names every value the schemas allow in the tables a reader looks them up in,
// and every message type the agent reads or publishes.
func TestEventsDocMatchesSchemas(t *testing.T) {
	raw, err := os.ReadFile("../docs/events.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)

	envelope := docSection(t, doc, "## Envelope")
	for _, typ := range []string{TypeChangeCompleted, TypeChangePlanned, TypeEvidence, TypeRejection, TypeImpact, TypeReview} {
		docRow(t, envelope, typ)
	}

	evidence := docSection(t, doc, "## Evidence record (outbound)")
	trigger := docRow(t, evidence, "trigger")
	for _, v := range schemaEnum(t, evidenceSchema, "$defs", "evidence", "properties", "trigger") {
		if !strings.Contains(trigger, "`"+v+"`") {
			t.Errorf("the evidence trigger row does not name %q: %s", v, trigger)
		}
	}
	for _, v := range schemaEnum(t, evidenceSchema, "$defs", "evidence", "properties", "status") {
		docRow(t, evidence, v)
	}
	for _, v := range schemaEnum(t, evidenceSchema, "$defs", "credential", "properties", "outcome") {
		docRow(t, evidence, v)
	}

	codes := docSection(t, doc, "### Reason codes")
	for _, v := range schemaEnum(t, rejectionSchema, "$defs", "rejection", "properties", "reason_code") {
		docRow(t, codes, v)
	}
	unknown := docRow(t, codes, string(ReasonUnknownType))
	for typ := range inboundSchemas {
		if !strings.Contains(unknown, "`"+typ+"`") {
			t.Errorf("the unknown_type row does not name the accepted type %s", typ)
		}
	}
}
