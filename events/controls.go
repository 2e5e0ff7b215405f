package events

// Controls an evidence record can evidence. The identifiers name the framework and the control.
const (
	// ControlNISTAccessPermissions is NIST CSF 2.0 PR.AA-05: access permissions, entitlements
	// and authorizations are defined, managed, enforced and reviewed (least privilege).
	ControlNISTAccessPermissions = "NIST-CSF-2.0:PR.AA-05"
	// ControlNHIOffboarding is OWASP Non-Human Identities Top 10 NHI1, improper offboarding.
	ControlNHIOffboarding = "OWASP-NHI:NHI1"
	// ControlNHISecretLeakage is OWASP NHI2, secret leakage.
	ControlNHISecretLeakage = "OWASP-NHI:NHI2" //nolint:gosec // a control identifier, not a credential
	// ControlNHIOverprivileged is OWASP NHI5, overprivileged non-human identities.
	ControlNHIOverprivileged = "OWASP-NHI:NHI5"
	// ControlNHILongLived is OWASP NHI7, long-lived secrets.
	ControlNHILongLived = "OWASP-NHI:NHI7"
)

// ControlsFor lists, in a fixed order, the controls a record evidences: PR.AA-05 always (the
// access a change touched was brought back to its approved state, or found not to need it);
// NHI1 when a credential was revoked; NHI2 and NHI7 when a credential was rotated; NHI5 when
// entitlements were compared with the approved set.
func ControlsFor(e Evidence) []string {
	var revoked, rotated bool
	for _, c := range e.Credentials {
		switch c.Outcome {
		case OutcomeRevoked:
			revoked = true
		case OutcomeRotated:
			rotated = true
		}
	}
	out := []string{ControlNISTAccessPermissions}
	if revoked {
		out = append(out, ControlNHIOffboarding)
	}
	if rotated {
		out = append(out, ControlNHISecretLeakage)
	}
	if len(e.Entitlements) > 0 {
		out = append(out, ControlNHIOverprivileged)
	}
	if rotated {
		out = append(out, ControlNHILongLived)
	}
	return out
}
