package schedule

import (
	"strings"
	"time"
)

// ReviewStep is what a post-change review needs at a given time.
type ReviewStep int

// The steps of an open review.
const (
	// StepNone means nothing is due.
	StepNone ReviewStep = iota
	// StepRemind means a reminder is due.
	StepRemind
	// StepOverdue means the deadline has passed: escalate and run the overdue action.
	StepOverdue
)

// NextReviewStep says what an open review with the given deadline needs at now. reminders
// are offsets before the deadline, farthest first (for example 4h, 1h); sent is how many of
// them were already published. For StepRemind the returned count is the new number of
// reminders sent: reminders missed while no agent ran are folded into the latest one.
func NextReviewStep(deadline time.Time, reminders []time.Duration, sent int, now time.Time) (ReviewStep, int) {
	if !now.Before(deadline) {
		return StepOverdue, sent
	}
	latest := -1
	for i := sent; i < len(reminders); i++ {
		if !now.Before(deadline.Add(-reminders[i])) {
			latest = i
		}
	}
	if latest < 0 {
		return StepNone, sent
	}
	return StepRemind, latest + 1
}

// DeadlineFor is the review period of a change touching environments: the shortest period
// configured for one of them, or def when none is configured. Names are compared ignoring case.
func DeadlineFor(environments []string, byEnvironment map[string]time.Duration, def time.Duration) time.Duration {
	best := time.Duration(0)
	for _, env := range environments {
		for name, d := range byEnvironment {
			if strings.EqualFold(name, env) && (best == 0 || d < best) {
				best = d
			}
		}
	}
	if best == 0 {
		return def
	}
	return best
}
