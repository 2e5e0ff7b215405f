// Package rotators defines how the agent changes a credential in Vault: one small Rotator
// interface per credential kind, the staged driver that runs it under a journal, error
// classification, and the Registry that maps a kind to its Rotator. Implementations live in
// sub-packages.
package rotators

import (
	"context"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
)

// Step is a stage of a rotation. Steps run in the order of Steps; each one first checks
// whether its effect already exists, so running it again after a crash does nothing twice.
type Step string

// The steps of a rotation, modelled on the trusted rotation systems (create pending, set,
// test, finish, clean up).
const (
	// StepPrepare works out the new credential without changing anything users see.
	StepPrepare Step = "prepare"
	// StepApply makes the new credential exist on its target.
	StepApply Step = "apply"
	// StepVerify proves the new credential works against the real target.
	StepVerify Step = "verify"
	// StepPromote makes the new credential the one consumers get.
	StepPromote Step = "promote"
	// StepRetire revokes or removes the old credential, after the overlap window.
	StepRetire Step = "retire"
)

// Steps lists the steps in the order they run.
var Steps = []Step{StepPrepare, StepApply, StepVerify, StepPromote, StepRetire}

// Rotator acts on credentials of one kind. Every step method reads Vault (or the target)
// first and does nothing if its effect is already there. Steps keep their non-secret notes in
// State.Data and must call Request.Save before any side effect whose outcome they need to
// recognise after a crash (an issued serial, a written version).
type Rotator interface {
	// Kind is the credential kind this rotator handles, as named in change events.
	Kind() string
	// Plan reports what a rotation would do, reading Vault only.
	Plan(ctx context.Context, req Request) (Plan, error)
	Prepare(ctx context.Context, req Request, st *State) error
	Apply(ctx context.Context, req Request, st *State) error
	Verify(ctx context.Context, req Request, st *State) error
	Promote(ctx context.Context, req Request, st *State) error
	Retire(ctx context.Context, req Request, st *State) error
}

// ActionDefaulter is implemented by rotators whose kind is revoked, not rotated, when a
// credential reference names no action (tokens, leases).
type ActionDefaulter interface {
	DefaultAction() events.Action
}

// WithDefaultAction returns ref with its action filled in: the rotator's default when it has
// one and ref names none.
func WithDefaultAction(rot Rotator, ref events.CredentialRef) events.CredentialRef {
	if d, ok := rot.(ActionDefaulter); ok && ref.Action == "" {
		ref.Action = d.DefaultAction()
	}
	return ref
}

// Request asks a Rotator to act on one credential for one change.
type Request struct {
	// ChangeID is the change this work belongs to.
	ChangeID string
	// Credential is the credential to act on.
	Credential events.CredentialRef
	// Save persists st durably (the journal). If it fails the step must stop before its
	// side effect.
	Save func(ctx context.Context, st *State) error
	// Generate returns a new secret value per the credential's options (length, charset or a
	// Vault password policy).
	Generate func(ctx context.Context) (string, error)
	// Now is the clock.
	Now func() time.Time
}

// Plan is a dry-run report: what would be done, without any write.
type Plan struct {
	// Action is what would be done.
	Action events.Action
	// Current fingerprints the credential as it is.
	Current events.Fingerprint
	// Changes lists, in plain words, each change a rotation would make.
	Changes []string
}

// State is the durable, non-secret progress of one rotation; the journal stores it.
type State struct {
	// Done is the last step completed; empty before the first.
	Done Step `json:"done,omitempty"`
	// Started is a step begun and not known to be finished.
	Started Step `json:"started,omitempty"`
	// Before and After fingerprint the old and the new credential.
	Before events.Fingerprint `json:"before,omitempty"`
	After  events.Fingerprint `json:"after,omitempty"`
	// Data holds the rotator's own non-secret notes (versions, serials, accessors).
	Data map[string]string `json:"data,omitempty"`
	// Failures counts failed attempts since the last completed step; Rounds counts restarts
	// from prepare with a fresh value.
	Failures int `json:"failures,omitempty"`
	Rounds   int `json:"rounds,omitempty"`
	// RetireAt is when the old credential is due to be retired (promote time + overlap).
	RetireAt time.Time `json:"retire_at,omitempty"`
	// RetiredAt is when the old credential was retired.
	RetiredAt time.Time `json:"retired_at,omitempty"`
	// Verified records that the verify step proved the new credential works.
	Verified bool `json:"verified,omitempty"`
	// At is when the state was last saved.
	At time.Time `json:"at"`
}

// Note returns a note from st.Data.
func (st *State) Note(key string) string { return st.Data[key] }

// SetNote records a note in st.Data.
func (st *State) SetNote(key, value string) {
	if st.Data == nil {
		st.Data = map[string]string{}
	}
	st.Data[key] = value
}
