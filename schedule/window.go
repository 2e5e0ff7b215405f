// Package schedule holds the time logic of rotation-agent's scheduled work: when a binding's
// rotation is due (a cron schedule or a maximum age), whether a time is inside a binding's
// maintenance windows and outside its blackout periods, when the next allowed time is, and what
// a post-change review needs at a given time. Every function takes the time as an argument;
// nothing here reads a clock, so the tests move time by hand.
package schedule

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
)

// maxSearch bounds the steps NextAllowed takes through windows and blackouts.
const maxSearch = 10000

// Recurring is a maintenance window that opens on a cron schedule and stays open for Duration.
type Recurring struct {
	// Spec is the cron expression of the opening times (five fields or a @descriptor; a
	// CRON_TZ=Area/City prefix sets the time zone, UTC otherwise).
	Spec string
	// Duration is how long each window stays open.
	Duration time.Duration
	sched    cron.Schedule
}

// ParseRecurring parses a window opening at spec and open for d.
func ParseRecurring(spec string, d time.Duration) (Recurring, error) {
	if d <= 0 {
		return Recurring{}, fmt.Errorf("duration %s: must be positive", d)
	}
	s, err := ParseCron(spec)
	if err != nil {
		return Recurring{}, err
	}
	return Recurring{Spec: spec, Duration: d, sched: s}, nil
}

// ParseCron parses a standard cron expression (robfig/cron) in UTC unless it names a zone.
func ParseCron(spec string) (cron.Schedule, error) {
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("%q is not a cron schedule: %w", spec, err)
	}
	if spec, ok := s.(*cron.SpecSchedule); ok && spec.Location == time.Local {
		spec.Location = time.UTC // the agent's host zone must not change when windows open
	}
	return s, nil
}

// contains reports whether a window is open at t: some opening s has s <= t < s+Duration,
// that is, the first opening after t-Duration is not after t.
func (r Recurring) contains(t time.Time) bool {
	return !r.sched.Next(t.Add(-r.Duration)).After(t)
}

// Period is a fixed period from From (inclusive) to To (exclusive).
type Period struct {
	From time.Time
	To   time.Time
}

func (p Period) contains(t time.Time) bool { return !t.Before(p.From) && t.Before(p.To) }

// Window says when a binding's credential may be rotated: inside one of its maintenance
// windows (at any time when it has none) and outside every blackout period.
type Window struct {
	Open      []Recurring
	Blackouts []Period
}

// IsZero reports whether the window allows every time.
func (w *Window) IsZero() bool { return w == nil || (len(w.Open) == 0 && len(w.Blackouts) == 0) }

// Allowed reports whether a rotation may run at t.
func (w *Window) Allowed(t time.Time) bool {
	if w.IsZero() {
		return true
	}
	for _, b := range w.Blackouts {
		if b.contains(t) {
			return false
		}
	}
	return w.inOpen(t)
}

func (w *Window) inOpen(t time.Time) bool {
	if len(w.Open) == 0 {
		return true
	}
	for _, r := range w.Open {
		if r.contains(t) {
			return true
		}
	}
	return false
}

// NextAllowed returns the first time at or after t when a rotation may run, and false when
// there is none (a blackout that never ends, or windows that never open again).
func (w *Window) NextAllowed(t time.Time) (time.Time, bool) {
	c := t
	for range maxSearch {
		if w.IsZero() {
			return c, true
		}
		moved := false
		for _, b := range w.Blackouts {
			if b.contains(c) {
				c, moved = b.To, true
			}
		}
		if moved {
			continue
		}
		if w.inOpen(c) {
			return c, true
		}
		var next time.Time
		for _, r := range w.Open {
			if n := r.sched.Next(c); !n.IsZero() && (next.IsZero() || n.Before(next)) {
				next = n
			}
		}
		if next.IsZero() {
			return time.Time{}, false
		}
		c = next
	}
	return time.Time{}, false
}
