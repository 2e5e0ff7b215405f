package agent

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/rotators"
)

func TestWarningsMaxDeliver(t *testing.T) {
	tests := []struct {
		maxDeliver int
		want       []string // substrings of the one warning; nil means no warning
	}{
		{0, nil}, // an error of Validate, not a warning
		{1, []string{"reported failed on delivery 1", "before the agent tries a fresh value (from delivery 4)", "needs_reconcile (on delivery 6)", "at least 6"}},
		{2, []string{"reported failed on delivery 2", "before the agent tries a fresh value"}},
		{3, []string{"reported failed on delivery 3", "before the agent tries a fresh value"}},
		{4, []string{"reported failed on delivery 4", "after trying a fresh value", "needs_reconcile (on delivery 6)"}},
		{5, []string{"reported failed on delivery 5", "after trying a fresh value"}},
		{6, nil},
		{10, nil},
	}
	for _, tc := range tests {
		cfg := validConfig()
		cfg.NATS.MaxDeliver = tc.maxDeliver
		ws := cfg.Warnings()
		if tc.want == nil {
			if len(ws) != 0 {
				t.Errorf("MaxDeliver %d: warnings %v, want none", tc.maxDeliver, ws)
			}
			continue
		}
		if len(ws) != 1 || ws[0].Setting != "ROTATION_AGENT_NATS_MAX_DELIVER" {
			t.Errorf("MaxDeliver %d: warnings %v, want one about ROTATION_AGENT_NATS_MAX_DELIVER", tc.maxDeliver, ws)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(ws[0].String(), w) {
				t.Errorf("MaxDeliver %d: warning %q lacks %q", tc.maxDeliver, ws[0], w)
			}
		}
		if ws[0].Text != strings.ToLower(ws[0].Text[:1])+ws[0].Text[1:] {
			t.Errorf("warning text %q does not start in lower case (it is a log message)", ws[0].Text)
		}
	}
}

// alwaysFailingApply is a rotator whose apply step fails retryably every time; it counts how
// often prepare drew a value.
type alwaysFailingApply struct{ prepares int }

func (r *alwaysFailingApply) Kind() string { return "always-failing" }
func (r *alwaysFailingApply) Plan(context.Context, rotators.Request) (rotators.Plan, error) {
	return rotators.Plan{}, nil
}
func (r *alwaysFailingApply) Prepare(context.Context, rotators.Request, *rotators.State) error {
	r.prepares++
	return nil
}
func (r *alwaysFailingApply) Apply(context.Context, rotators.Request, *rotators.State) error {
	return rotators.Retryable(errors.New("target refused the new value"))
}
func (r *alwaysFailingApply) Verify(context.Context, rotators.Request, *rotators.State) error {
	return nil
}
func (r *alwaysFailingApply) Promote(context.Context, rotators.Request, *rotators.State) error {
	return nil
}
func (r *alwaysFailingApply) Retire(context.Context, rotators.Request, *rotators.State) error {
	return nil
}

// The delivery numbers the warning quotes are those of the driver: with one drive per
// delivery, the fresh value is first tried on freshRoundDelivery and the driver gives up on
// needsReconcileDelivery.
func TestWarningDeliveriesMatchTheDriver(t *testing.T) {
	rot := &alwaysFailingApply{}
	req := rotators.Request{
		Save: func(context.Context, *rotators.State) error { return nil },
		Now:  time.Now,
	}
	var st rotators.State
	firstFresh, gaveUp := 0, 0
	for delivery := 1; delivery <= 20 && gaveUp == 0; delivery++ {
		_, err := rotators.Drive(context.Background(), rot, req, &st, 0)
		if rot.prepares == 2 && firstFresh == 0 {
			firstFresh = delivery
		}
		if errors.Is(err, rotators.ErrNeedsReconcile) {
			gaveUp = delivery
		}
	}
	if firstFresh != freshRoundDelivery {
		t.Errorf("the driver first tried a fresh value on delivery %d, the warning says %d", firstFresh, freshRoundDelivery)
	}
	if gaveUp != needsReconcileDelivery {
		t.Errorf("the driver gave up into needs_reconcile on delivery %d, the warning says %d", gaveUp, needsReconcileDelivery)
	}
}
