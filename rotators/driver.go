package rotators

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/failpoint"
)

// Driver limits.
const (
	// MaxStepFailures is how often one step may fail before the rotation starts over from
	// prepare with a fresh value.
	MaxStepFailures = 3
	// MaxRounds is how many fresh starts a rotation gets before it gives up into
	// needs_reconcile for an operator.
	MaxRounds = 2
)

// KeepPrefix starts the State.Data notes that survive a fresh round.
const KeepPrefix = "keep_"

// ErrNeedsReconcile marks a rotation that gave up after repeated failures; an operator must
// reconcile the credential.
var ErrNeedsReconcile = errors.New("needs reconcile")

// Outcome of a drive.
type Outcome struct {
	// Completed is true when every step up to promote is done.
	Completed bool
	// RetirePending is true when retire waits for the overlap window to end (at State.RetireAt).
	RetirePending bool
	// Retired is true when the retire step ran.
	Retired bool
	// Resumed is true when the drive continued earlier progress.
	Resumed bool
}

// Drive runs rot's steps from where st left off, saving st before and after each step, until
// promote is done and, once st.RetireAt has passed, retire. A retryable failure is returned
// after it is counted; after MaxStepFailures failures of one step the rotation starts over
// from prepare (a fresh value), and after MaxRounds such starts Drive returns a permanent error
// wrapping ErrNeedsReconcile.
func Drive(ctx context.Context, rot Rotator, req Request, st *State, overlap time.Duration) (Outcome, error) {
	out := Outcome{Resumed: st.Done != "" || st.Started != ""}
	if st.Done != "" && !slices.Contains(Steps, st.Done) {
		return out, Permanent(fmt.Errorf("unknown step %q in the rotation state", st.Done))
	}
	for _, step := range remaining(st.Done) {
		if step == StepRetire {
			if st.RetireAt.IsZero() {
				st.RetireAt = req.Now().Add(overlap).UTC()
			}
			if req.Now().Before(st.RetireAt) {
				if err := req.Save(ctx, st); err != nil {
					return Outcome{Resumed: out.Resumed}, Retryable(err)
				}
				out.Completed, out.RetirePending = true, true
				return out, nil
			}
		}
		st.Started = step
		if err := req.Save(ctx, st); err != nil {
			return out, Retryable(err)
		}
		if err := run(ctx, rot, step, req, st); err != nil {
			return out, fail(ctx, req, st, step, err)
		}
		st.Done, st.Started, st.Failures = step, "", 0
		if step == StepVerify {
			st.Verified = true
		}
		if step == StepPromote {
			// The overlap window starts when consumers get the new credential.
			st.RetireAt = req.Now().Add(overlap).UTC()
		}
		if step == StepRetire {
			st.RetiredAt = req.Now().UTC()
		}
		if err := req.Save(ctx, st); err != nil {
			return out, Retryable(err)
		}
		failpoint.Hit(failpoint.AfterStep + string(step))
	}
	out.Completed, out.Retired = true, true
	return out, nil
}

// fail counts a failed step and decides whether to retry it, start over, or give up.
func fail(ctx context.Context, req Request, st *State, step Step, err error) error {
	err = fmt.Errorf("%s: %w", step, err)
	if !IsRetryable(err) {
		return err
	}
	if IsUnavailable(err) {
		// Vault could not serve the step at all: the step did not fail, so it is not counted
		// and no fresh value is drawn; the caller waits for Vault and tries again.
		return err
	}
	st.Failures++
	if step == StepRetire && st.Failures >= MaxStepFailures*MaxRounds {
		return Permanent(fmt.Errorf("%w: the old credential could not be retired after %d attempts: %w", ErrNeedsReconcile, st.Failures, err))
	}
	if st.Failures >= MaxStepFailures && step != StepRetire {
		if st.Rounds+1 >= MaxRounds {
			return Permanent(fmt.Errorf("%w after %d attempts with fresh values: %w", ErrNeedsReconcile, MaxRounds, err))
		}
		// Start over with a fresh value rather than retrying one that keeps failing. Notes
		// whose key starts with KeepPrefix survive (a rotator's record of the original old
		// credential, which retire must still remove), and so does Before.
		st.Rounds++
		st.Done, st.Started, st.Failures, st.After = "", "", 0, nil
		st.Verified, st.RetireAt = false, time.Time{}
		for k := range st.Data {
			if !strings.HasPrefix(k, KeepPrefix) {
				delete(st.Data, k)
			}
		}
		if len(st.Data) == 0 {
			st.Data = nil
		}
	}
	if saveErr := req.Save(ctx, st); saveErr != nil {
		return Retryable(errors.Join(err, saveErr))
	}
	return err
}

func remaining(done Step) []Step {
	if done == "" {
		return Steps
	}
	for i, s := range Steps {
		if s == done {
			return Steps[i+1:]
		}
	}
	return nil
}

func run(ctx context.Context, rot Rotator, step Step, req Request, st *State) error {
	switch step {
	case StepPrepare:
		return rot.Prepare(ctx, req, st)
	case StepApply:
		return rot.Apply(ctx, req, st)
	case StepVerify:
		return rot.Verify(ctx, req, st)
	case StepPromote:
		return rot.Promote(ctx, req, st)
	case StepRetire:
		return rot.Retire(ctx, req, st)
	}
	return Permanent(fmt.Errorf("unknown step %q", step))
}

// Fingerprint is a helper for rotators building fingerprints.
func Fingerprint(kv ...string) events.Fingerprint {
	fp := events.Fingerprint{}
	for i := 0; i+1 < len(kv); i += 2 {
		fp[kv[i]] = kv[i+1]
	}
	return fp
}
