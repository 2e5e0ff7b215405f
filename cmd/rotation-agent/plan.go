package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/rotation-agent/rotation-agent/agent"
	"github.com/rotation-agent/rotation-agent/events"
)

// runPlan implements `rotation-agent plan`: a dry run that reads Vault and writes nothing;
// with --offline it does not contact Vault at all.
func runPlan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	eventFile := fs.String("event", "", "change event file (JSON), or - for standard input")
	output := fs.String("output", "table", "table or json")
	offline := fs.Bool("offline", false, "match against the inventory and the event only, without contacting Vault (no login, no discovery)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *eventFile == "" || (*output != "table" && *output != "json") {
		fmt.Fprintln(stderr, "rotation-agent: plan needs --event FILE, --output table|json and optionally --offline")
		return exitUsage
	}
	payload, err := agent.ReadEventFile(*eventFile)
	if err != nil {
		return fail(stderr, exitUsage, err)
	}
	cfg, err := agent.Load()
	if err != nil {
		return fail(stderr, exitUsage, err)
	}
	impact, err := agent.PlanEvent(ctx, cfg, payload, agent.PlanOptions{Offline: *offline})
	if err != nil {
		return fail(stderr, exitFailed, err)
	}
	plans := impact.Credentials
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(impact); err != nil {
			return fail(stderr, exitFailed, err)
		}
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CREDENTIAL\tWHY\tSOURCE\tACTION\tCURRENT\tWOULD DO")
		for _, p := range plans {
			current := make([]string, 0, len(p.Current))
			for k, v := range p.Current {
				current = append(current, k+"="+v)
			}
			would := strings.Join(p.WouldDo, "; ")
			switch {
			case p.Error != "":
				would = "cannot: " + p.Error
			case *offline:
				would = "not checked (offline)"
			}
			sort.Strings(current)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Credential, p.MatchedBy, p.Source, p.Action, strings.Join(current, ","), would)
		}
		if err := tw.Flush(); err != nil {
			return fail(stderr, exitFailed, err)
		}
		fmt.Fprintf(stdout, "\nidentity impact: %s (%s)\n", impact.Level, strings.Join(impact.Reasons, "; "))
		if line := discoveryLine(impact.Discovery); line != "" {
			fmt.Fprintln(stdout, line)
		}
	}
	for _, p := range plans {
		if p.Error != "" {
			return exitFailed
		}
	}
	if d := impact.Discovery; d != nil && d.Status == events.DiscoveryIncomplete {
		return exitFailed
	}
	return exitOK
}

// discoveryLine says in the table which discovery sources the plan looked in; "" when no
// discovery is configured and none was skipped.
func discoveryLine(d *events.DiscoveryReport) string {
	if d == nil {
		return ""
	}
	sources := strings.Join(d.Sources, ", ")
	switch d.Status {
	case events.DiscoverySkipped:
		if sources == "" {
			return "discovery: skipped (offline: only the inventory and the event were matched; Vault was not contacted)"
		}
		return "discovery: skipped (offline: only the inventory and the event were matched; Vault was not contacted; not looked in: " + sources + ")"
	case events.DiscoveryIncomplete:
		failed := make([]string, 0, len(d.Failed))
		for _, f := range d.Failed {
			failed = append(failed, f.Source+": "+f.Error)
		}
		return "discovery: incomplete, credentials these sources would find are missing: " + strings.Join(failed, "; ")
	default:
		return "discovery: " + d.Status + " (" + sources + ")"
	}
}
