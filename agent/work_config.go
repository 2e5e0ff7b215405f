package agent

import (
	"fmt"
	"strings"
	"time"

	"github.com/rotation-agent/rotation-agent/schedule"
)

// Overdue actions of a post-change review.
const (
	// OverdueRevokeGranted revokes (or, for kinds that cannot revoke, rotates) the access the
	// emergency change granted.
	OverdueRevokeGranted = "revoke-granted"
	// OverdueNone only escalates.
	OverdueNone = "none"
)

// ScheduleConfig is the agent's own scheduled work: binding schedules, deferred credentials,
// review deadlines and the drift check.
type ScheduleConfig struct {
	// Interval is how often each replica looks for due work.
	Interval time.Duration `split_words:"true" default:"30s"`
	// Jitter spreads scheduled rotations: each binding runs up to this long after it is due,
	// at an offset fixed per binding, so replicas and bindings do not start together.
	Jitter time.Duration `split_words:"true" default:"5m"`
	// DriftCheck is the cron schedule of the global entitlement drift check; empty turns it off.
	DriftCheck string `split_words:"true" default:"@hourly"`
}

// ReviewConfig is the post-change review of emergency changes.
type ReviewConfig struct {
	// Deadline is how long reviewers have to attest an emergency change.
	Deadline time.Duration `split_words:"true" default:"24h"`
	// Deadlines overrides Deadline per environment ("production=4h,staging=72h"); a change
	// touching several gets the shortest.
	Deadlines string `split_words:"true"`
	// Reminders are published this long before the deadline, farthest first.
	Reminders []string `split_words:"true" default:"4h,1h"`
	// OverdueAction runs when the deadline passes or a reviewer rejects the change.
	OverdueAction string `split_words:"true" default:"revoke-granted"`
}

// ManualConfig is manual rotation on request.
type ManualConfig struct {
	// AuthFile is the YAML file naming who may rotate what; without it every request is refused.
	AuthFile string `split_words:"true"`
	// MaxRequestAge refuses signed requests issued longer ago (or further ahead) than this.
	MaxRequestAge time.Duration `split_words:"true" default:"5m"`
}

// validateWork adds the problems of the schedule, review and manual settings to bad.
func (c Config) validateWork(bad func(format string, a ...any)) {
	env := func(name string) string { return EnvPrefix + "_" + name }
	if c.Schedule.Interval < 100*time.Millisecond {
		bad("%s: must be at least 100ms", env("SCHEDULE_INTERVAL"))
	}
	if c.Schedule.Jitter < 0 {
		bad("%s: must not be negative", env("SCHEDULE_JITTER"))
	}
	if c.Schedule.DriftCheck != "" {
		if _, err := schedule.ParseCron(c.Schedule.DriftCheck); err != nil {
			bad("%s: %v", env("SCHEDULE_DRIFT_CHECK"), err)
		}
	}
	if c.Review.Deadline <= 0 {
		bad("%s: must be positive", env("REVIEW_DEADLINE"))
	}
	if _, err := c.Review.deadlines(); err != nil {
		bad("%s: %v", env("REVIEW_DEADLINES"), err)
	}
	if _, err := c.Review.reminders(); err != nil {
		bad("%s: %v", env("REVIEW_REMINDERS"), err)
	}
	if !oneOf(c.Review.OverdueAction, OverdueRevokeGranted, OverdueNone) {
		bad("%s: %q is not one of %s, %s", env("REVIEW_OVERDUE_ACTION"), c.Review.OverdueAction, OverdueRevokeGranted, OverdueNone)
	}
	checkFileBad(bad, env("MANUAL_AUTH_FILE"), c.Manual.AuthFile)
	if c.Manual.MaxRequestAge < time.Second {
		bad("%s: must be at least 1s", env("MANUAL_MAX_REQUEST_AGE"))
	}
}

func checkFileBad(bad func(format string, a ...any), name, path string) {
	var errs []error
	checkFile(&errs, name, path)
	for _, e := range errs {
		bad("%s", fmt.Sprint(e))
	}
}

// deadlines parses Deadlines ("production=4h,staging=72h").
func (r ReviewConfig) deadlines() (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	if strings.TrimSpace(r.Deadlines) == "" {
		return out, nil
	}
	for _, item := range strings.Split(r.Deadlines, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(item), "=")
		d, err := time.ParseDuration(value)
		if !ok || name == "" || err != nil || d <= 0 {
			return nil, fmt.Errorf("%q is not environment=duration (production=4h)", item)
		}
		out[name] = d
	}
	return out, nil
}

// reminders parses Reminders; they must be positive and farthest first.
func (r ReviewConfig) reminders() ([]time.Duration, error) {
	out := make([]time.Duration, 0, len(r.Reminders))
	for i, item := range r.Reminders {
		d, err := time.ParseDuration(strings.TrimSpace(item))
		if err != nil || d <= 0 || (i > 0 && d >= out[i-1]) {
			return nil, fmt.Errorf("%q: reminders must be positive durations, farthest first (4h,1h)", item)
		}
		out = append(out, d)
	}
	return out, nil
}
