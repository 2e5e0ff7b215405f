package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/clock"
	"github.com/rotation-agent/rotation-agent/schedule"
)

func TestDeferralDecision(t *testing.T) {
	r, err := schedule.ParseRecurring("0 2 * * SAT", 4*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	w := &schedule.Window{Open: []schedule.Recurring{r}}
	clk := clock.NewFake(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	p := &pipeline{clock: clk}
	opens := time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		change    events.Change
		window    *schedule.Window
		wantWait  bool
		wantUntil time.Time
	}{
		{"normal change outside its window", events.Change{Type: events.ChangeNormal}, w, true, opens},
		{"emergency change", events.Change{Type: events.ChangeEmergency}, w, false, time.Time{}},
		{"review clean-up", events.Change{Type: events.ChangeNormal, Trigger: events.TriggerReview}, w, false, time.Time{}},
		{"scheduled work", events.Change{Type: events.ChangeStandard, Trigger: events.TriggerSchedule}, w, true, opens},
		{"no window", events.Change{Type: events.ChangeNormal}, nil, false, time.Time{}},
	}
	for _, tt := range tests {
		until, wait := p.deferral(tt.change, tt.window)
		if wait != tt.wantWait || !until.Equal(tt.wantUntil) {
			t.Errorf("%s: deferral = %s %v, want %s %v", tt.name, until, wait, tt.wantUntil, tt.wantWait)
		}
	}
	clk.Set(opens.Add(time.Hour))
	if _, wait := p.deferral(events.Change{Type: events.ChangeNormal}, w); wait {
		t.Error("inside the window a change must run at once")
	}
}

func TestWorkIDs(t *testing.T) {
	if got := idPart("payments db/primary"); got != "payments_db_primary" {
		t.Errorf("idPart = %q", got)
	}
	long := idPart(strings.Repeat("x", 200))
	if len(long) > 64 || long == idPart(strings.Repeat("x", 199)) {
		t.Errorf("long names must be shortened and stay distinct: %q", long)
	}
	if got := deferredChangeID("CHG1", "kv-v2:secret/a"); !strings.HasPrefix(got, "deferred:CHG1:") || len(got) != len("deferred:CHG1:")+16 {
		t.Errorf("deferredChangeID = %q", got)
	}
}

func TestReviewCounts(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	all := []events.Review{
		{Status: events.ReviewOpen, Deadline: now.Add(time.Hour)},
		{Status: events.ReviewOpen, Deadline: now.Add(2 * time.Hour)},
		{Status: events.ReviewOpen, Deadline: now.Add(-time.Minute)}, // the sweep has not escalated it yet
		{Status: events.ReviewOverdue, Deadline: now.Add(-time.Hour)},
		{Status: events.ReviewApproved, Deadline: now.Add(-time.Hour)},
		{Status: events.ReviewRejected, Deadline: now.Add(time.Hour)},
	}
	if open, overdue := reviewCounts(all, now); open != 2 || overdue != 2 {
		t.Errorf("reviewCounts = %d open, %d overdue; want 2 and 2", open, overdue)
	}
}
