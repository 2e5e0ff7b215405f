package events

import "testing"

func TestIsRetirement(t *testing.T) {
	const hash = "0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		name    string
		trigger Trigger
		eventID string
		want    bool
	}{
		{"retirement record", TriggerSchedule, RetirementEventID("evt-1", hash), true},
		{"retirement of a scheduled change", TriggerSchedule, RetirementEventID("schedule:db:20261130T000000Z", hash), true},
		{"change record of an ITSM change", TriggerEvent, "evt-1", false},
		{"change record of a scheduled rotation", TriggerSchedule, "schedule:db:20261130T000000Z", false},
		{"scheduled rotation of a binding named retire", TriggerSchedule, "schedule:retire:20261130T000000Z", false},
		{"change record of a deferred credential", TriggerSchedule, "deferred:CHG1:0123456789abcdef", false},
		{"deferred credential of a change named like a retirement", TriggerSchedule, "deferred:CHG:retire:0123456789abcdef", false},
		{"retire marker in an event-triggered record", TriggerEvent, RetirementEventID("evt-1", hash), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := (Evidence{Trigger: tc.trigger, EventID: tc.eventID}).IsRetirement(); got != tc.want {
				t.Errorf("IsRetirement(%s, %q) = %v, want %v", tc.trigger, tc.eventID, got, tc.want)
			}
		})
	}
}
