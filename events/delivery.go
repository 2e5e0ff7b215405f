package events

import "time"

// OldCredentialKept is the old_credential of a credential whose old value was deliberately not
// retired: in sidecar mode, the application never confirmed it uses the new one.
const OldCredentialKept = "kept"

// Delivery is what an agent in sidecar mode did to hand a rotated credential to its
// application: the files written, the notification and the application's confirmation. It
// holds no secret value.
type Delivery struct {
	// Application is the sidecar's application (ROTATION_AGENT_SIDECAR_APP).
	Application string `json:"application"`
	// Files are the sink files that hold the new credential.
	Files []string `json:"files"`
	// Token names this delivery; the application reports it once it uses the new credential.
	Token string `json:"token"`
	// WrittenAt is when the files were written.
	WrittenAt *time.Time `json:"written_at,omitempty"`
	// Notify is how the application was told: signal, http or command.
	Notify string `json:"notify"`
	// NotifiedAt is when the notification succeeded.
	NotifiedAt *time.Time `json:"notified_at,omitempty"`
	// Confirmation is what counts as the application's confirmation: hook (the HTTP hook or
	// the command succeeded) or health (the health URL reported the token).
	Confirmation string `json:"confirmation"`
	// ConfirmedAt is when the application confirmed; the old credential is retired only after.
	ConfirmedAt *time.Time `json:"confirmed_at,omitempty"`
	// Error says why the delivery is not confirmed (yet), when it is not.
	Error string `json:"error,omitempty"`
}
