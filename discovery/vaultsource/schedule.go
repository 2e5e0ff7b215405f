package vaultsource

import (
	"errors"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// schedule says when the next refresh is due after a given time.
type schedule interface {
	Next(after time.Time) time.Time
}

// every is a fixed interval.
type every time.Duration

// Next returns after plus the interval.
func (e every) Next(after time.Time) time.Time { return after.Add(time.Duration(e)) }

// parseSchedule reads a five-field cron expression, a descriptor (@hourly, @daily, …) or
// "@every <duration>", with robfig/cron, the parser the inventory's schedules use too. A
// schedule that never fires, or fires more than once a second, is refused.
func parseSchedule(expr string) (schedule, error) {
	expr = strings.TrimSpace(expr)
	if d, ok := strings.CutPrefix(expr, "@every "); ok {
		if dur, err := time.ParseDuration(strings.TrimSpace(d)); err == nil && dur < time.Second {
			return nil, errors.New("@every needs at least 1s")
		}
	}
	s, err := cron.ParseStandard(expr)
	if err != nil {
		return nil, err
	}
	if s.Next(time.Now()).IsZero() {
		return nil, errors.New("the schedule never fires")
	}
	return s, nil
}
