package events

import (
	"encoding/hex"
	"strings"
)

// retireMarker separates, in the event id of a retirement record, the event id of the change
// record it follows up from the hash of its credential.
const retireMarker = ":retire:"

// retireHashLen is the length of the credential hash ending a retirement record's event id.
const retireHashLen = 32

// RetirementEventID is the event id of the retirement record of one credential: the event id
// of the change it follows up, ":retire:" and credentialHash, the credential's 32 hex digit
// hash.
func RetirementEventID(eventID, credentialHash string) string {
	return eventID + retireMarker + credentialHash
}

// IsRetirement reports whether an evidence record is a retirement record (an old credential
// retired after its overlap window) rather than a change record. Both may carry trigger
// schedule: the change records of work the agent creates itself (schedule:, deferred:) do
// too, so the event id decides.
func (e Evidence) IsRetirement() bool {
	if e.Trigger != TriggerSchedule {
		return false
	}
	i := strings.LastIndex(e.EventID, retireMarker)
	if i < 0 {
		return false
	}
	hash := e.EventID[i+len(retireMarker):]
	_, err := hex.DecodeString(hash)
	return len(hash) == retireHashLen && err == nil
}
