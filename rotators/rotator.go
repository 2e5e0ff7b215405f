// Package rotators defines how the agent changes a credential in Vault: one small Rotator
// interface per credential kind, request and result types, error classification, and the
// Registry that maps a kind to its Rotator. Implementations live in sub-packages.
package rotators

import (
	"context"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
)

// Rotator changes credentials of one kind. Rotate must be safe to call again with the checkpoint
// an earlier, interrupted call recorded: it resumes from there and never repeats a side effect
// that already took place.
type Rotator interface {
	// Kind is the credential kind this rotator handles, as named in change events.
	Kind() string
	// Rotate brings the credential to its new state and reports non-secret fingerprints.
	Rotate(ctx context.Context, req Request) (Result, error)
}

// Request asks a Rotator to act on one credential for one change.
type Request struct {
	// ChangeID is the change this work belongs to.
	ChangeID string
	// Credential is the credential to act on.
	Credential events.CredentialRef
	// Checkpoint is the progress recorded by an earlier attempt; the zero value for new work.
	Checkpoint Checkpoint
	// Record persists a checkpoint. A Rotator calls it before every side effect (intent) and
	// after it (done). If Record fails the Rotator must stop without the side effect.
	Record func(ctx context.Context, cp Checkpoint) error
	// Generate returns a new secret value for the named field.
	Generate func(field string) (string, error)
}

// Checkpoint is a rotator's durable progress on one credential. It holds no secret.
type Checkpoint struct {
	// Step is rotator-defined; the empty string means nothing was done yet.
	Step string `json:"step,omitempty"`
	// Before and After are fingerprints known so far.
	Before events.Fingerprint `json:"before,omitempty"`
	After  events.Fingerprint `json:"after,omitempty"`
	// At is when the step was recorded.
	At time.Time `json:"at"`
}

// Result is what a finished rotation reports for evidence.
type Result struct {
	Before events.Fingerprint
	After  events.Fingerprint
	// Resumed is true when the work had been (partly) done by an earlier attempt.
	Resumed bool
}
