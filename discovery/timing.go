package discovery

import (
	"fmt"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rotation-agent/rotation-agent/schedule"
)

// timing reads a binding's max_age, break_glass, maintenance_windows and blackouts.
func (p *parser) timing(f map[string]*yaml.Node, b *Binding, where string) {
	if v := f["max_age"]; v != nil {
		d, err := time.ParseDuration(v.Value)
		switch {
		case err != nil || d <= 0:
			p.bad(v, where+".max_age", "%q is not a positive duration such as 720h", v.Value)
		case f["schedule"] != nil:
			p.bad(v, where+".max_age", "set schedule or max_age, not both")
		default:
			b.MaxAge = d
		}
	}
	if v := f["break_glass"]; v != nil {
		on, err := strconv.ParseBool(v.Value)
		if err != nil || v.Kind != yaml.ScalarNode {
			p.bad(v, where+".break_glass", "%q is not true or false", v.Value)
		}
		b.BreakGlass = on
	}
	var w schedule.Window
	if v := f["maintenance_windows"]; v != nil {
		if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
			p.bad(v, where+".maintenance_windows", "must be a non-empty list of {start, duration}")
		}
		for i, item := range v.Content {
			iw := fmt.Sprintf("%s.maintenance_windows[%d]", where, i)
			wf := p.fields(item, iw, "start", "duration")
			start, dur := wf["start"], wf["duration"]
			if start == nil || dur == nil {
				p.bad(item, iw, "start (a cron expression) and duration are required")
				continue
			}
			d, err := time.ParseDuration(dur.Value)
			if err != nil {
				p.bad(dur, iw+".duration", "%q is not a duration such as 4h", dur.Value)
				continue
			}
			r, err := schedule.ParseRecurring(start.Value, d)
			if err != nil {
				p.bad(start, iw, "%v", err)
				continue
			}
			w.Open = append(w.Open, r)
		}
	}
	if v := f["blackouts"]; v != nil {
		if v.Kind != yaml.SequenceNode {
			p.bad(v, where+".blackouts", "must be a list of {from, to}")
		}
		for i, item := range v.Content {
			iw := fmt.Sprintf("%s.blackouts[%d]", where, i)
			bf := p.fields(item, iw, "from", "to")
			var period schedule.Period
			ok := true
			for _, key := range []string{"from", "to"} {
				n := bf[key]
				if n == nil {
					p.bad(item, iw, "%s is required (an RFC 3339 time)", key)
					ok = false
					continue
				}
				t, err := time.Parse(time.RFC3339, n.Value)
				if err != nil {
					p.bad(n, iw+"."+key, "%q is not an RFC 3339 time such as 2026-12-24T00:00:00Z", n.Value)
					ok = false
					continue
				}
				if key == "from" {
					period.From = t
				} else {
					period.To = t
				}
			}
			if ok && !period.To.After(period.From) {
				p.bad(item, iw, "to must be after from")
				continue
			}
			if ok {
				w.Blackouts = append(w.Blackouts, period)
			}
		}
	}
	if !w.IsZero() {
		b.Window = &w
	}
}
