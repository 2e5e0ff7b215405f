package schedule

import (
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/internal/clock"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func mustWindow(t *testing.T, spec string, d time.Duration) Recurring {
	t.Helper()
	r, err := ParseRecurring(spec, d)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestWindowAllowedAndNext(t *testing.T) {
	// Saturdays 02:00-06:00 UTC; a blackout over the Saturday of 2026-12-26.
	w := &Window{
		Open:      []Recurring{mustWindow(t, "0 2 * * SAT", 4*time.Hour)},
		Blackouts: []Period{{From: at("2026-12-24T00:00:00Z"), To: at("2026-12-27T00:00:00Z")}},
	}
	tests := []struct {
		name    string
		now     string
		allowed bool
		next    string
	}{
		{"inside the window", "2026-12-05T03:00:00Z", true, "2026-12-05T03:00:00Z"},
		{"at the opening", "2026-12-05T02:00:00Z", true, "2026-12-05T02:00:00Z"},
		{"at the closing", "2026-12-05T06:00:00Z", false, "2026-12-12T02:00:00Z"},
		{"on a weekday", "2026-12-01T10:00:00Z", false, "2026-12-05T02:00:00Z"},
		{"window inside a blackout", "2026-12-26T03:00:00Z", false, "2027-01-02T02:00:00Z"},
		{"before a blackout", "2026-12-22T10:00:00Z", false, "2027-01-02T02:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := at(tt.now)
			if got := w.Allowed(now); got != tt.allowed {
				t.Errorf("Allowed(%s) = %v, want %v", tt.now, got, tt.allowed)
			}
			next, ok := w.NextAllowed(now)
			if !ok || !next.Equal(at(tt.next)) {
				t.Errorf("NextAllowed(%s) = %s %v, want %s", tt.now, next, ok, tt.next)
			}
		})
	}
}

func TestWindowEdgeCases(t *testing.T) {
	var none *Window
	now := at("2026-12-01T10:00:00Z")
	if !none.Allowed(now) {
		t.Error("no window must allow every time")
	}
	onlyBlackout := &Window{Blackouts: []Period{{From: at("2026-12-01T00:00:00Z"), To: at("2026-12-02T00:00:00Z")}}}
	if onlyBlackout.Allowed(now) {
		t.Error("a blackout must refuse the time inside it")
	}
	if next, ok := onlyBlackout.NextAllowed(now); !ok || !next.Equal(at("2026-12-02T00:00:00Z")) {
		t.Errorf("next after a blackout = %s %v, want its end", next, ok)
	}
	zoned := &Window{Open: []Recurring{mustWindow(t, "CRON_TZ=Europe/Berlin 0 2 * * *", time.Hour)}}
	if !zoned.Allowed(at("2026-12-01T01:30:00Z")) { // 02:30 in Berlin (UTC+1)
		t.Error("a zoned window must open in its zone")
	}
	if _, err := ParseRecurring("0 2 * * *", 0); err == nil {
		t.Error("a zero duration must be refused")
	}
	if _, err := ParseRecurring("not cron", time.Hour); err == nil {
		t.Error("a bad cron expression must be refused")
	}
}

// The scheduler's view of one binding, driven by a fake clock: rotations are due at each cron
// activation, missed activations are folded into one, and a maximum age counts from the last.
func TestPlanLatestDueWithClock(t *testing.T) {
	c := clock.NewFake(at("2026-12-01T00:00:00Z"))
	daily, err := ParseCron("0 3 * * *")
	if err != nil {
		t.Fatal(err)
	}
	p := Plan{Cron: daily}
	last := c.Now()
	if _, ok := p.LatestDue(last, c.Now()); ok {
		t.Fatal("nothing is due before the first activation")
	}
	c.Advance(3 * time.Hour)
	due, ok := p.LatestDue(last, c.Now())
	if !ok || !due.Equal(at("2026-12-01T03:00:00Z")) {
		t.Fatalf("due = %s %v, want the 03:00 activation", due, ok)
	}
	last = due
	c.Advance(time.Hour)
	if _, ok := p.LatestDue(last, c.Now()); ok {
		t.Fatal("an activation already handled must not be due again")
	}
	c.Advance(72 * time.Hour) // the agent was down for three days
	due, ok = p.LatestDue(last, c.Now())
	if !ok || !due.Equal(at("2026-12-04T03:00:00Z")) {
		t.Fatalf("after an outage due = %s %v, want only the latest activation", due, ok)
	}

	age := Plan{MaxAge: 720 * time.Hour}
	start := c.Now()
	c.Advance(719 * time.Hour)
	if _, ok := age.LatestDue(start, c.Now()); ok {
		t.Fatal("a credential younger than its maximum age is not due")
	}
	c.Advance(time.Hour)
	if due, ok := age.LatestDue(start, c.Now()); !ok || !due.Equal(start.Add(720*time.Hour)) {
		t.Fatalf("max age due = %s %v", due, ok)
	}
	if (Plan{}).IsZero() != true {
		t.Error("an empty plan schedules nothing")
	}
}

func TestJitterIsStableAndBounded(t *testing.T) {
	limit := 5 * time.Minute
	a, b := Jitter("binding-a", limit), Jitter("binding-a", limit)
	if a != b {
		t.Errorf("jitter of one key differs: %s, %s", a, b)
	}
	seen := map[time.Duration]bool{}
	for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
		j := Jitter(k, limit)
		if j < 0 || j >= limit {
			t.Errorf("jitter %s out of [0, %s)", j, limit)
		}
		seen[j] = true
	}
	if len(seen) < 4 {
		t.Errorf("jitter spreads six keys over only %d offsets", len(seen))
	}
	if Jitter("a", 0) != 0 {
		t.Error("no jitter limit means no jitter")
	}
}

func TestNextReviewStepWithClock(t *testing.T) {
	c := clock.NewFake(at("2026-12-01T00:00:00Z"))
	deadline := c.Now().Add(24 * time.Hour)
	reminders := []time.Duration{4 * time.Hour, time.Hour}
	sent := 0
	step := func() ReviewStep {
		s, n := NextReviewStep(deadline, reminders, sent, c.Now())
		sent = n
		return s
	}
	if s := step(); s != StepNone {
		t.Fatalf("fresh review step = %v, want none", s)
	}
	c.Advance(20 * time.Hour)
	if s := step(); s != StepRemind || sent != 1 {
		t.Fatalf("4h before: step %v sent %d, want the first reminder", s, sent)
	}
	if s := step(); s != StepNone {
		t.Fatalf("a reminder is sent once, got %v", s)
	}
	c.Advance(3 * time.Hour)
	if s := step(); s != StepRemind || sent != 2 {
		t.Fatalf("1h before: step %v sent %d, want the second reminder", s, sent)
	}
	c.Advance(time.Hour)
	if s := step(); s != StepOverdue {
		t.Fatalf("at the deadline step = %v, want overdue", s)
	}
	// Missed reminders fold into one.
	sent = 0
	c.Set(deadline.Add(-30 * time.Minute))
	if s := step(); s != StepRemind || sent != 2 {
		t.Fatalf("late start: step %v sent %d, want one reminder counting both", s, sent)
	}
}

func TestDeadlineFor(t *testing.T) {
	by := map[string]time.Duration{"production": 4 * time.Hour, "staging": 72 * time.Hour}
	tests := []struct {
		envs []string
		want time.Duration
	}{
		{nil, 24 * time.Hour},
		{[]string{"dev"}, 24 * time.Hour},
		{[]string{"Production"}, 4 * time.Hour},
		{[]string{"staging", "production"}, 4 * time.Hour},
		{[]string{"staging"}, 72 * time.Hour},
	}
	for _, tt := range tests {
		if got := DeadlineFor(tt.envs, by, 24*time.Hour); got != tt.want {
			t.Errorf("DeadlineFor(%v) = %s, want %s", tt.envs, got, tt.want)
		}
	}
}
