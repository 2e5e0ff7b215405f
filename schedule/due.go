package schedule

import (
	"hash/fnv"
	"time"

	"github.com/robfig/cron/v3"
)

// maxCatchUp bounds how many missed activations LatestDue steps over.
const maxCatchUp = 100000

// Plan is the rotation schedule of one binding: a cron schedule or a maximum age.
type Plan struct {
	// Cron, when set, names the times a rotation is due.
	Cron cron.Schedule
	// MaxAge, when Cron is nil, makes a rotation due this long after the previous one.
	MaxAge time.Duration
}

// IsZero reports whether the plan schedules nothing.
func (p Plan) IsZero() bool { return p.Cron == nil && p.MaxAge <= 0 }

// Next returns when the rotation after one due at last is due.
func (p Plan) Next(last time.Time) time.Time {
	if p.Cron != nil {
		return p.Cron.Next(last)
	}
	return last.Add(p.MaxAge)
}

// LatestDue returns the latest due time after last and not after now, and false when none
// has come yet. Activations missed while no agent ran are folded into that one: a credential
// is rotated once when the agent comes back, not once per missed activation.
func (p Plan) LatestDue(last, now time.Time) (time.Time, bool) {
	if p.IsZero() {
		return time.Time{}, false
	}
	due := p.Next(last)
	if due.IsZero() || due.After(now) {
		return time.Time{}, false
	}
	for range maxCatchUp {
		n := p.Next(due)
		if n.IsZero() || n.After(now) {
			break
		}
		due = n
	}
	return due, true
}

// Jitter spreads work keyed by key over [0, limit): the same key always gets the same
// offset, so every replica agrees on it, and different keys rarely start together.
func Jitter(key string, limit time.Duration) time.Duration {
	if limit <= 0 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return time.Duration(float64(h.Sum32()) / (1 << 32) * float64(limit))
}
