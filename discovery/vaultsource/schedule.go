package vaultsource

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// schedule says when the next refresh is due after a given time.
type schedule interface {
	Next(after time.Time) time.Time
}

// every is a fixed interval.
type every time.Duration

// Next returns after plus the interval.
func (e every) Next(after time.Time) time.Time { return after.Add(time.Duration(e)) }

// cron is a parsed five-field cron expression: minute, hour, day of month, month, day of
// week. Each field is a bit set of the values it accepts.
type cron struct {
	minute, hour, dom, month, dow uint64
	// domAny and dowAny record a "*" day field: with both fields restricted a day matches
	// when either does, as in Vixie cron.
	domAny, dowAny bool
}

var descriptors = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

type cronField struct {
	name     string
	min, max int
	names    []string // names[i] is the value min+i
}

var cronFields = []cronField{
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day of month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
	{name: "day of week", min: 0, max: 7, names: []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}

// parseSchedule reads a five-field cron expression, a descriptor (@hourly, @daily, @weekly,
// @monthly, @yearly) or "@every <duration>".
func parseSchedule(expr string) (schedule, error) {
	expr = strings.TrimSpace(expr)
	if d, ok := strings.CutPrefix(expr, "@every "); ok {
		dur, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil || dur < time.Second {
			return nil, fmt.Errorf("@every wants a duration of at least 1s, such as 15m")
		}
		return every(dur), nil
	}
	if strings.HasPrefix(expr, "@") {
		std, ok := descriptors[strings.ToLower(expr)]
		if !ok {
			return nil, fmt.Errorf("unknown descriptor (want @hourly, @daily, @weekly, @monthly, @yearly or @every <duration>)")
		}
		expr = std
	}
	parts := strings.Fields(expr)
	if len(parts) != len(cronFields) {
		return nil, fmt.Errorf("want 5 fields (minute hour day-of-month month day-of-week), got %d", len(parts))
	}
	var sets [5]uint64
	for i, p := range parts {
		set, err := parseCronField(p, cronFields[i])
		if err != nil {
			return nil, fmt.Errorf("%s field %q: %w", cronFields[i].name, p, err)
		}
		sets[i] = set
	}
	if sets[4]&(1<<7) != 0 { // 7 is Sunday too
		sets[4] |= 1
	}
	c := &cron{minute: sets[0], hour: sets[1], dom: sets[2], month: sets[3], dow: sets[4] &^ (1 << 7),
		domAny: parts[2] == "*" || parts[2] == "?", dowAny: parts[4] == "*" || parts[4] == "?"}
	if c.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, errors.New("never fires")
	}
	return c, nil
}

// parseCronField reads a comma-separated list of "*", "v", "a-b", each optionally "/step".
func parseCronField(s string, f cronField) (uint64, error) {
	var set uint64
	for _, item := range strings.Split(s, ",") {
		rng, stepText, hasStep := strings.Cut(item, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepText)
			if err != nil || n < 1 {
				return 0, fmt.Errorf("step %q is not a positive number", stepText)
			}
			step = n
		}
		lo, hi := f.min, f.max
		switch {
		case rng == "*" || rng == "?":
		case strings.Contains(rng, "-"):
			a, b, _ := strings.Cut(rng, "-")
			var err error
			if lo, err = cronValue(a, f); err != nil {
				return 0, err
			}
			if hi, err = cronValue(b, f); err != nil {
				return 0, err
			}
			if lo > hi {
				return 0, fmt.Errorf("range %q runs backwards", rng)
			}
		default:
			v, err := cronValue(rng, f)
			if err != nil {
				return 0, err
			}
			lo, hi = v, v
			if hasStep {
				hi = f.max
			}
		}
		for v := lo; v <= hi; v += step {
			set |= 1 << uint(v)
		}
	}
	return set, nil
}

func cronValue(s string, f cronField) (int, error) {
	for i, n := range f.names {
		if strings.EqualFold(s, n) {
			return f.min + i, nil
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < f.min || v > f.max {
		return 0, fmt.Errorf("%q is not a value from %d to %d", s, f.min, f.max)
	}
	return v, nil
}

func (c *cron) dayMatches(t time.Time) bool {
	dom := c.dom&(1<<uint(t.Day())) != 0
	dow := c.dow&(1<<uint(t.Weekday())) != 0
	if c.domAny || c.dowAny {
		return dom && dow
	}
	return dom || dow
}

// Next returns the first minute after after that the expression accepts, in after's time
// zone; the zero time when there is none within five years.
func (c *cron) Next(after time.Time) time.Time {
	loc := after.Location()
	t := after.Truncate(time.Minute).Add(time.Minute)
	limit := t.AddDate(5, 0, 0)
	for t.Before(limit) {
		switch {
		case c.month&(1<<uint(t.Month())) == 0:
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, loc)
		case !c.dayMatches(t):
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, loc)
		case c.hour&(1<<uint(t.Hour())) == 0:
			next := time.Date(t.Year(), t.Month(), t.Day(), t.Hour()+1, 0, 0, 0, loc)
			if !next.After(t) { // a clock change repeated the hour
				next = t.Add(time.Hour).Truncate(time.Hour)
			}
			t = next
		case c.minute&(1<<uint(t.Minute())) == 0:
			t = t.Add(time.Minute)
		default:
			return t
		}
	}
	return time.Time{}
}
