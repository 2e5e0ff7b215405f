package events

import "testing"

func TestEvidenceTrigger(t *testing.T) {
	tests := []struct {
		name string
		ch   Change
		want Trigger
	}{
		{"normal change from a bridge", Change{Type: ChangeNormal}, TriggerEvent},
		{"emergency change from a bridge", Change{Type: ChangeEmergency}, TriggerEmergency},
		{"emergency with trigger event", Change{Type: ChangeEmergency, Trigger: TriggerEvent}, TriggerEmergency},
		{"manual emergency rotation", Change{Type: ChangeEmergency, Trigger: TriggerManual}, TriggerManual},
		{"review clean-up of an emergency", Change{Type: ChangeEmergency, Trigger: TriggerReview}, TriggerReview},
		{"scheduled", Change{Type: ChangeStandard, Trigger: TriggerSchedule}, TriggerSchedule},
	}
	for _, tc := range tests {
		if got := tc.ch.EvidenceTrigger(); got != tc.want {
			t.Errorf("%s: EvidenceTrigger() = %s, want %s", tc.name, got, tc.want)
		}
		if tc.ch.Trigger == "" && tc.ch.EffectiveTrigger() != TriggerEvent {
			t.Errorf("%s: EffectiveTrigger() = %s, want event", tc.name, tc.ch.EffectiveTrigger())
		}
	}
}
