package rotators

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
)

// stepFailure scripts how a step of scriptedRotator fails.
type stepFailure struct {
	// times is how many calls fail before the step succeeds; negative fails every call.
	times int
	err   error
}

// scriptedRotator is a Rotator whose steps record their calls in a shared log and fail as
// scripted. A step that succeeds leaves a note named after it in State.Data.
type scriptedRotator struct {
	log  *[]string
	fail map[Step]*stepFailure
	// seen is the state each step was called with, copied.
	seen []State
}

func (r *scriptedRotator) Kind() string { return "scripted" }

func (r *scriptedRotator) Plan(context.Context, Request) (Plan, error) {
	*r.log = append(*r.log, "plan")
	return Plan{Action: events.ActionRotate}, nil
}

func (r *scriptedRotator) step(step Step, st *State) error {
	*r.log = append(*r.log, "call "+string(step))
	r.seen = append(r.seen, copyState(st))
	if f := r.fail[step]; f != nil && f.times != 0 {
		if f.times > 0 {
			f.times--
		}
		return f.err
	}
	st.SetNote(string(step), "ok")
	if step == StepApply {
		st.After = Fingerprint("version", "new")
	}
	return nil
}

func (r *scriptedRotator) Prepare(_ context.Context, _ Request, st *State) error {
	return r.step(StepPrepare, st)
}
func (r *scriptedRotator) Apply(_ context.Context, _ Request, st *State) error {
	return r.step(StepApply, st)
}
func (r *scriptedRotator) Verify(_ context.Context, _ Request, st *State) error {
	return r.step(StepVerify, st)
}
func (r *scriptedRotator) Promote(_ context.Context, _ Request, st *State) error {
	return r.step(StepPromote, st)
}
func (r *scriptedRotator) Retire(_ context.Context, _ Request, st *State) error {
	return r.step(StepRetire, st)
}

// calls returns the steps called, in order, from a log.
func calls(log []string) []string {
	var out []string
	for _, e := range log {
		if s, ok := strings.CutPrefix(e, "call "); ok {
			out = append(out, s)
		}
	}
	return out
}

// memJournal is an in-memory Request.Save that keeps a copy of every state saved.
type memJournal struct {
	log   *[]string
	saved []State
	// fail, when set, decides whether a save fails (the state is then not kept).
	fail func(st *State) error
}

func (j *memJournal) save(_ context.Context, st *State) error {
	*j.log = append(*j.log, fmt.Sprintf("save started=%s done=%s", st.Started, st.Done))
	if j.fail != nil {
		if err := j.fail(st); err != nil {
			return err
		}
	}
	j.saved = append(j.saved, copyState(st))
	return nil
}

func (j *memJournal) last(t *testing.T) State {
	t.Helper()
	if len(j.saved) == 0 {
		t.Fatal("no state saved")
	}
	return j.saved[len(j.saved)-1]
}

func copyState(st *State) State {
	c := *st
	c.Data = copyMap(st.Data)
	c.Before = events.Fingerprint(copyMap(st.Before))
	c.After = events.Fingerprint(copyMap(st.After))
	return c
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// fakeClock is a settable Request.Now.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) advance(d time.Duration) { c.now = c.now.Add(d) }

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// harness ties a scripted rotator, a journal and a clock together.
type harness struct {
	log     []string
	rot     *scriptedRotator
	journal *memJournal
	clock   *fakeClock
}

func newHarness() *harness {
	h := &harness{clock: &fakeClock{now: t0}}
	h.rot = &scriptedRotator{log: &h.log, fail: map[Step]*stepFailure{}}
	h.journal = &memJournal{log: &h.log}
	return h
}

func (h *harness) request() Request {
	return Request{
		ChangeID:   "CHG0001",
		Credential: events.CredentialRef{Kind: "scripted", Mount: "secret", Path: "app"},
		Save:       h.journal.save,
		Generate:   func(context.Context) (string, error) { return "value", nil },
		Now:        h.clock.Now,
	}
}

func (h *harness) drive(st *State, overlap time.Duration) (Outcome, error) {
	h.log = nil
	return Drive(context.Background(), h.rot, h.request(), st, overlap)
}

var errBoom = errors.New("boom")

func TestDriveFreshRun(t *testing.T) {
	h := newHarness()
	st := &State{}
	out, err := h.drive(st, 0)
	if err != nil {
		t.Fatalf("Drive: %v", err)
	}
	if want := (Outcome{Completed: true, Retired: true}); out != want {
		t.Errorf("outcome = %+v, want %+v", out, want)
	}
	var want []string
	done := Step("")
	for _, s := range Steps {
		want = append(want,
			fmt.Sprintf("save started=%s done=%s", s, done),
			"call "+string(s),
			fmt.Sprintf("save started= done=%s", s))
		done = s
	}
	if !reflect.DeepEqual(h.log, want) {
		t.Errorf("calls and saves:\n got %q\nwant %q", h.log, want)
	}
	if st.Done != StepRetire || st.Started != "" || st.Failures != 0 || st.Rounds != 0 || !st.Verified {
		t.Errorf("final state = %+v, want retire done, verified, no failures", st)
	}
	if !st.RetireAt.Equal(t0) || !st.RetiredAt.Equal(t0) {
		t.Errorf("RetireAt = %v, RetiredAt = %v, want both %v (no overlap)", st.RetireAt, st.RetiredAt, t0)
	}
	for _, s := range Steps {
		if st.Note(string(s)) != "ok" {
			t.Errorf("note of step %s lost: %v", s, st.Data)
		}
	}
	if got := h.journal.last(t); !reflect.DeepEqual(got, *st) {
		t.Errorf("last saved state = %+v, want the final state %+v", got, *st)
	}
	// Each step saw the state saved just before it: its own step started, the previous done.
	for i, seen := range h.rot.seen {
		if seen.Started != Steps[i] {
			t.Errorf("step %s ran with Started = %q", Steps[i], seen.Started)
		}
	}
}

func TestDriveVerifiedAfterVerify(t *testing.T) {
	h := newHarness()
	if _, err := h.drive(&State{}, 0); err != nil {
		t.Fatal(err)
	}
	for _, s := range h.journal.saved {
		wantVerified := s.Done == StepVerify || s.Done == StepPromote || s.Done == StepRetire ||
			s.Started == StepPromote || s.Started == StepRetire
		if s.Verified != wantVerified {
			t.Errorf("saved state started=%q done=%q has Verified = %v, want %v", s.Started, s.Done, s.Verified, wantVerified)
		}
	}
}

func TestDriveResume(t *testing.T) {
	tests := []struct {
		name  string
		state State
		want  []string
	}{
		{"begun prepare", State{Started: StepPrepare}, []string{"prepare", "apply", "verify", "promote", "retire"}},
		{"done prepare", State{Done: StepPrepare}, []string{"apply", "verify", "promote", "retire"}},
		{"apply begun after prepare", State{Done: StepPrepare, Started: StepApply}, []string{"apply", "verify", "promote", "retire"}},
		{"done apply", State{Done: StepApply}, []string{"verify", "promote", "retire"}},
		{"verify begun", State{Done: StepApply, Started: StepVerify, Failures: 1}, []string{"verify", "promote", "retire"}},
		{"done verify", State{Done: StepVerify, Verified: true}, []string{"promote", "retire"}},
		{"done promote, retire due", State{Done: StepPromote, Verified: true, RetireAt: t0.Add(-time.Minute)}, []string{"retire"}},
		{"done promote, retire begun", State{Done: StepPromote, Started: StepRetire, Verified: true, RetireAt: t0}, []string{"retire"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness()
			st := tc.state
			out, err := h.drive(&st, 0)
			if err != nil {
				t.Fatalf("Drive: %v", err)
			}
			if got := calls(h.log); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("steps called = %q, want %q", got, tc.want)
			}
			if want := (Outcome{Completed: true, Retired: true, Resumed: true}); out != want {
				t.Errorf("outcome = %+v, want %+v", out, want)
			}
			if st.Done != StepRetire || st.Started != "" || st.Failures != 0 || !st.Verified {
				t.Errorf("final state = %+v", st)
			}
		})
	}
}

func TestDriveAlreadyRetired(t *testing.T) {
	h := newHarness()
	st := &State{Done: StepRetire, Verified: true, RetireAt: t0.Add(-time.Hour), RetiredAt: t0.Add(-time.Hour)}
	out, err := h.drive(st, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.log) != 0 {
		t.Errorf("calls and saves %q, want none", h.log)
	}
	if want := (Outcome{Completed: true, Retired: true, Resumed: true}); out != want {
		t.Errorf("outcome = %+v, want %+v", out, want)
	}
}

func TestDriveSaveFailureStopsBeforeStep(t *testing.T) {
	saveErr := errors.New("journal unavailable")
	for i, step := range Steps {
		t.Run(string(step), func(t *testing.T) {
			h := newHarness()
			h.journal.fail = func(st *State) error {
				if st.Started == step {
					return saveErr
				}
				return nil
			}
			st := &State{}
			_, err := h.drive(st, 0)
			if !errors.Is(err, saveErr) || !IsRetryable(err) {
				t.Fatalf("Drive error = %v, want the retryable save error", err)
			}
			want := make([]string, 0, i)
			for _, s := range Steps[:i] {
				want = append(want, string(s))
			}
			if got := calls(h.log); !reflect.DeepEqual(got, want) && (len(got) != 0 || len(want) != 0) {
				t.Errorf("steps called = %q, want %q (not %s)", got, want, step)
			}
			if st.Failures != 0 || st.Rounds != 0 {
				t.Errorf("a save failure was counted as a step failure: %+v", st)
			}
			if i > 0 && h.journal.last(t).Done != Steps[i-1] {
				t.Errorf("last saved Done = %q, want %q", h.journal.last(t).Done, Steps[i-1])
			}
		})
	}
}

func TestDriveSaveFailureAfterStep(t *testing.T) {
	h := newHarness()
	saveErr := errors.New("journal unavailable")
	h.journal.fail = func(st *State) error {
		if st.Done == StepApply && st.Started == "" {
			return saveErr
		}
		return nil
	}
	st := &State{}
	_, err := h.drive(st, 0)
	if !errors.Is(err, saveErr) || !IsRetryable(err) {
		t.Fatalf("Drive error = %v, want the retryable save error", err)
	}
	if got, want := calls(h.log), []string{"prepare", "apply"}; !reflect.DeepEqual(got, want) {
		t.Errorf("steps called = %q, want %q", got, want)
	}
	// The journal still says apply began after prepare: a restart runs apply again.
	if last := h.journal.last(t); last.Done != StepPrepare || last.Started != StepApply {
		t.Errorf("last saved state done=%q started=%q, want prepare done and apply started", last.Done, last.Started)
	}
}

func TestDriveRetryableFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"marked retryable", Retryable(errBoom)},
		{"vault 500", fmt.Errorf("write: %w", &vault.ResponseError{StatusCode: 500, Errors: []string{"internal error"}})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness()
			h.rot.fail[StepApply] = &stepFailure{times: 1, err: tc.err}
			st := &State{}
			out, err := h.drive(st, 0)
			if err == nil || !IsRetryable(err) || !errors.Is(err, tc.err) {
				t.Fatalf("Drive error = %v, want the retryable step error", err)
			}
			if !strings.Contains(err.Error(), "apply") {
				t.Errorf("error %q does not name the step", err)
			}
			if errors.Is(err, ErrNeedsReconcile) {
				t.Errorf("one failure gave up: %v", err)
			}
			if out.Completed || out.Retired {
				t.Errorf("outcome = %+v after a failure", out)
			}
			if st.Failures != 1 || st.Done != StepPrepare || st.Started != StepApply || st.Rounds != 0 {
				t.Errorf("state = %+v, want 1 failure of apply after prepare", st)
			}
			if last := h.journal.last(t); last.Failures != 1 || last.Started != StepApply {
				t.Errorf("last saved state = %+v, want the failure counted", last)
			}

			out, err = h.drive(st, 0)
			if err != nil {
				t.Fatalf("second Drive: %v", err)
			}
			if got, want := calls(h.log), []string{"apply", "verify", "promote", "retire"}; !reflect.DeepEqual(got, want) {
				t.Errorf("steps called on retry = %q, want %q", got, want)
			}
			if !out.Resumed || !out.Retired || st.Failures != 0 {
				t.Errorf("retry outcome = %+v, state %+v", out, st)
			}
		})
	}
}

// A Vault that cannot serve at all (sealed, overloaded, unreachable) is not a failure of the
// step: however often it happens, nothing is counted, no fresh value is drawn and the rotation
// never gives up into needs_reconcile because of an outage.
func TestDriveUnavailableVaultIsNotCounted(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"sealed", fmt.Errorf("write: %w", &vault.ResponseError{StatusCode: 503, Errors: []string{"Vault is sealed"}})},
		{"rate limited", fmt.Errorf("write: %w", &vault.ResponseError{StatusCode: 429, Errors: []string{"request path kv/: rate limit quota exceeded"}})},
		{"unreachable", fmt.Errorf("write: %w", &url.Error{Op: "Put", URL: "https://vault:8200/v1/secret/data/x", Err: errors.New("connection refused")})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness()
			outage := 3 * MaxStepFailures * MaxRounds
			h.rot.fail[StepApply] = &stepFailure{times: outage, err: tc.err}
			st := &State{}
			for i := 0; i < outage; i++ {
				_, err := h.drive(st, 0)
				if !IsUnavailable(err) || errors.Is(err, ErrNeedsReconcile) {
					t.Fatalf("attempt %d: Drive error = %v, want the unavailable error", i+1, err)
				}
			}
			if st.Failures != 0 || st.Rounds != 0 || st.Done != StepPrepare {
				t.Fatalf("state after the outage = %+v, want nothing counted and prepare kept", st)
			}
			out, err := h.drive(st, 0)
			if err != nil || !out.Retired {
				t.Fatalf("after the outage: %+v, %v", out, err)
			}
			if got, want := calls(h.log), []string{"apply", "verify", "promote", "retire"}; !reflect.DeepEqual(got, want) {
				t.Errorf("steps called after the outage = %q, want %q (the prepared value kept)", got, want)
			}
		})
	}
}

func TestDriveFreshRoundAfterRepeatedFailures(t *testing.T) {
	for _, failing := range []Step{StepPrepare, StepApply, StepVerify, StepPromote} {
		t.Run(string(failing), func(t *testing.T) {
			h := newHarness()
			h.rot.fail[failing] = &stepFailure{times: MaxStepFailures, err: Retryable(errBoom)}
			st := &State{Before: Fingerprint("version", "1")}
			for i := 1; i <= MaxStepFailures; i++ {
				_, err := h.drive(st, 0)
				if err == nil || !IsRetryable(err) || errors.Is(err, ErrNeedsReconcile) {
					t.Fatalf("Drive %d error = %v, want a retryable step error", i, err)
				}
				if i < MaxStepFailures && (st.Failures != i || st.Rounds != 0) {
					t.Fatalf("after %d failures state = %+v", i, st)
				}
			}
			want := State{Rounds: 1, Before: st.Before, Verified: st.Verified, At: st.At}
			if !reflect.DeepEqual(*st, want) {
				t.Errorf("state after %d failures = %+v, want a fresh round %+v", MaxStepFailures, *st, want)
			}
			if last := h.journal.last(t); last.Rounds != 1 || last.Done != "" || last.Started != "" || last.Data != nil || last.Failures != 0 {
				t.Errorf("fresh round not saved: %+v", last)
			}

			out, err := h.drive(st, 0)
			if err != nil {
				t.Fatalf("Drive in the fresh round: %v", err)
			}
			if got := calls(h.log); len(got) != len(Steps) || got[0] != string(StepPrepare) {
				t.Errorf("steps called in the fresh round = %q, want all from prepare", got)
			}
			if !out.Retired || st.Rounds != 1 || st.Done != StepRetire {
				t.Errorf("outcome %+v, state %+v", out, st)
			}
		})
	}
}

func TestDriveGivesUpAfterMaxRounds(t *testing.T) {
	h := newHarness()
	h.rot.fail[StepVerify] = &stepFailure{times: -1, err: Retryable(errBoom)}
	st := &State{}
	var err error
	drives := 0
	var all []string
	for drives < 100 {
		drives++
		_, err = h.drive(st, 0)
		all = append(all, calls(h.log)...)
		if err == nil || !IsRetryable(err) {
			break
		}
	}
	if err == nil {
		t.Fatal("Drive succeeded with a step that always fails")
	}
	if !errors.Is(err, ErrNeedsReconcile) || IsRetryable(err) || !errors.Is(err, errBoom) {
		t.Fatalf("final error = %v, want a permanent ErrNeedsReconcile wrapping the step error", err)
	}
	if want := MaxStepFailures * MaxRounds; drives != want {
		t.Errorf("gave up after %d drives, want %d", drives, want)
	}
	count := map[string]int{}
	for _, c := range all {
		count[c]++
	}
	if count["prepare"] != MaxRounds || count["verify"] != MaxStepFailures*MaxRounds || count["promote"] != 0 || count["retire"] != 0 {
		t.Errorf("step calls = %v, want %d rounds of %d verify failures and no promote", count, MaxRounds, MaxStepFailures)
	}
	if st.Rounds != MaxRounds-1 {
		t.Errorf("Rounds = %d, want %d", st.Rounds, MaxRounds-1)
	}
}

func TestDrivePermanentFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"marked permanent", Permanent(errBoom)},
		{"unclassified", errBoom},
		{"vault 403", &vault.ResponseError{StatusCode: 403, Errors: []string{"permission denied"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness()
			h.rot.fail[StepApply] = &stepFailure{times: -1, err: tc.err}
			st := &State{}
			_, err := h.drive(st, 0)
			if err == nil || IsRetryable(err) || !errors.Is(err, tc.err) {
				t.Fatalf("Drive error = %v, want the permanent step error", err)
			}
			if errors.Is(err, ErrNeedsReconcile) {
				t.Errorf("a permanent error became needs-reconcile: %v", err)
			}
			if got, want := calls(h.log), []string{"prepare", "apply"}; !reflect.DeepEqual(got, want) {
				t.Errorf("steps called = %q, want %q", got, want)
			}
			if st.Failures != 0 || st.Rounds != 0 || st.Done != StepPrepare {
				t.Errorf("state = %+v, want no fresh round and no retry count", st)
			}
		})
	}
}

func TestDriveOverlap(t *testing.T) {
	const overlap = time.Hour
	h := newHarness()
	st := &State{}
	out, err := h.drive(st, overlap)
	if err != nil {
		t.Fatalf("Drive: %v", err)
	}
	if want := (Outcome{Completed: true, RetirePending: true}); out != want {
		t.Errorf("outcome = %+v, want %+v", out, want)
	}
	if got, want := calls(h.log), []string{"prepare", "apply", "verify", "promote"}; !reflect.DeepEqual(got, want) {
		t.Errorf("steps called = %q, want %q", got, want)
	}
	if !st.RetireAt.Equal(t0.Add(overlap)) || st.Done != StepPromote || !st.RetiredAt.IsZero() {
		t.Errorf("state = %+v, want promote done and retire due at %v", st, t0.Add(overlap))
	}
	if last := h.journal.last(t); !last.RetireAt.Equal(t0.Add(overlap)) || last.Started != "" {
		t.Errorf("last saved state = %+v, want RetireAt saved", last)
	}

	h.clock.advance(overlap / 2)
	out, err = h.drive(st, overlap)
	if err != nil {
		t.Fatalf("Drive before RetireAt: %v", err)
	}
	if want := (Outcome{Completed: true, RetirePending: true, Resumed: true}); out != want {
		t.Errorf("outcome before RetireAt = %+v, want %+v", out, want)
	}
	if got := calls(h.log); len(got) != 0 {
		t.Errorf("steps called before RetireAt = %q", got)
	}
	if !st.RetireAt.Equal(t0.Add(overlap)) {
		t.Errorf("RetireAt moved to %v", st.RetireAt)
	}

	h.clock.advance(overlap/2 + time.Second)
	out, err = h.drive(st, overlap)
	if err != nil {
		t.Fatalf("Drive after RetireAt: %v", err)
	}
	if want := (Outcome{Completed: true, Retired: true, Resumed: true}); out != want {
		t.Errorf("outcome after RetireAt = %+v, want %+v", out, want)
	}
	if got, want := calls(h.log), []string{"retire"}; !reflect.DeepEqual(got, want) {
		t.Errorf("steps called after RetireAt = %q, want %q", got, want)
	}
	if !st.RetiredAt.Equal(h.clock.now) || st.Done != StepRetire {
		t.Errorf("state = %+v, want retired at %v", st, h.clock.now)
	}
	if last := h.journal.last(t); !last.RetiredAt.Equal(h.clock.now) || last.Done != StepRetire {
		t.Errorf("last saved state = %+v", last)
	}
}

func TestDriveRetireFailuresGiveUpWithoutFreshRound(t *testing.T) {
	h := newHarness()
	h.rot.fail[StepRetire] = &stepFailure{times: -1, err: Retryable(errBoom)}
	st := &State{Done: StepPromote, Verified: true, RetireAt: t0, Data: map[string]string{"apply": "ok"}}
	limit := MaxStepFailures * MaxRounds
	for i := 1; i <= limit; i++ {
		_, err := h.drive(st, 0)
		if got := calls(h.log); !reflect.DeepEqual(got, []string{"retire"}) {
			t.Fatalf("drive %d called %q, want retire only", i, got)
		}
		if i < limit {
			if err == nil || !IsRetryable(err) || errors.Is(err, ErrNeedsReconcile) {
				t.Fatalf("drive %d error = %v, want a retryable retire error", i, err)
			}
			if st.Failures != i || st.Rounds != 0 || st.Done != StepPromote || st.Note("apply") != "ok" {
				t.Fatalf("drive %d state = %+v, want the failure counted and no fresh round", i, st)
			}
			continue
		}
		if !errors.Is(err, ErrNeedsReconcile) || IsRetryable(err) || !errors.Is(err, errBoom) {
			t.Fatalf("drive %d error = %v, want a permanent ErrNeedsReconcile", i, err)
		}
		if !strings.Contains(err.Error(), "retire") {
			t.Errorf("error %q does not name the retire step", err)
		}
	}
	if st.Rounds != 0 || st.Done != StepPromote || !st.RetiredAt.IsZero() {
		t.Errorf("state = %+v, want promote done, never a fresh round", st)
	}
}

func TestDrivePlanNotCalled(t *testing.T) {
	h := newHarness()
	if _, err := h.drive(&State{}, 0); err != nil {
		t.Fatal(err)
	}
	for _, e := range h.log {
		if e == "plan" {
			t.Error("Drive called Plan")
		}
	}
}

func TestDriveOverlapZeroRetiresAtOnce(t *testing.T) {
	h := newHarness()
	st := &State{Done: StepVerify, Verified: true}
	out, err := h.drive(st, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := calls(h.log), []string{"promote", "retire"}; !reflect.DeepEqual(got, want) {
		t.Errorf("steps called = %q, want %q", got, want)
	}
	if !out.Retired || out.RetirePending || !st.RetireAt.Equal(t0) || !st.RetiredAt.Equal(t0) {
		t.Errorf("outcome %+v, RetireAt %v, RetiredAt %v; want retired at once at %v", out, st.RetireAt, st.RetiredAt, t0)
	}
}

func TestDrivePendingSaveFailureIsRetryable(t *testing.T) {
	h := newHarness()
	saveErr := errors.New("journal unavailable")
	h.journal.fail = func(*State) error { return saveErr }
	st := &State{Done: StepPromote, Verified: true}
	_, err := h.drive(st, time.Hour)
	if !errors.Is(err, saveErr) || !IsRetryable(err) {
		t.Fatalf("Drive error = %v, want the retryable save error", err)
	}
}

func TestDriveUnknownDoneStep(t *testing.T) {
	h := newHarness()
	st := &State{Done: "written"}
	out, err := h.drive(st, 0)
	if err == nil || IsRetryable(err) || out.Completed || out.Retired {
		t.Fatalf("Drive = %+v, %v; want a permanent error for an unknown step", out, err)
	}
}

// Notes that start with KeepPrefix (the original old credential) survive a fresh round; the
// others, and the verification of the abandoned value, do not.
func TestDriveFreshRoundKeepsOriginalNotes(t *testing.T) {
	h := newHarness()
	h.rot.fail[StepPromote] = &stepFailure{times: MaxStepFailures, err: Retryable(errBoom)}
	st := &State{Data: map[string]string{KeepPrefix + "original": "1", "base": "2"}}
	for i := 0; i < MaxStepFailures; i++ {
		if _, err := h.drive(st, 0); err == nil {
			t.Fatal("Drive succeeded while promote fails")
		}
	}
	if st.Rounds != 1 || st.Note(KeepPrefix+"original") != "1" || st.Note("base") != "" || st.Verified {
		t.Errorf("state after a fresh round = %+v", st)
	}
}
