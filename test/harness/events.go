package harness

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
)

// ChangeEvent returns a valid change-completed event for changeID naming creds.
func ChangeEvent(t testing.TB, changeID string, creds ...events.CredentialRef) []byte {
	t.Helper()
	now := time.Now().UTC()
	ev := events.ChangeEvent{
		SpecVersion:     events.SpecVersion,
		ID:              "evt-" + changeID + "-" + now.Format("150405.000000000"),
		Source:          "itsm://test",
		Type:            events.TypeChangeCompleted,
		Subject:         changeID,
		Time:            now,
		DataContentType: "application/json",
		Data: events.Change{
			ID:          changeID,
			Type:        events.ChangeNormal,
			State:       "implemented",
			CompletedAt: now,
			Requester:   events.Person{ID: "u-1001", Name: "Test Requester"},
			Approvers:   []events.Person{{ID: "u-2002"}},
			Targets:     events.Targets{Services: []string{"payments"}},
			Credentials: creds,
		},
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatalf("marshal event: %v", err)
	}
	return raw
}
